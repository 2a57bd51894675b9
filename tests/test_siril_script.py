"""The Siril wrappers in tools/siril (issue 27). The Siril 1.4 Python script cannot run against Siril
here (no Siril 1.4 to install), so it runs with a stand-in `sirilpy` module: it compiles, the
srcnn-np command line it builds upscales a file, its progress comes from srcnn-np's real JSON
lines, and its save / run / load round trip goes through files. The Siril 1.0.6 shell wrapper runs
with the real siril-cli (skipped where it is not installed)."""
import importlib.util
import os
import py_compile
import shlex
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest

fits = pytest.importorskip("astropy.io.fits")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tools", "siril", "srcnn_upscale.py")
WRAPPER = os.path.join(ROOT, "tools", "siril", "srcnn_upscale.sh")
SRCNN_NP = f"{shlex.quote(sys.executable)} -m srcnn_np"  # this checkout's srcnn_np (PYTHONPATH is inherited)


class FakeSiril:
    """Stands in for sirilpy.SirilInterface: records what the script asks of Siril. The loaded image
    is `image` (a FITS file's data); `save PATH` writes it to PATH, `load PATH` reads PATH into it."""

    def __init__(self, image_file: str | None = None):
        self.image_file = image_file
        self.image = fits.getdata(image_file) if image_file else None
        self.progress: list[float] = []
        self.log_lines: list[str] = []
        self.commands: list[tuple] = []
        self.resets = 0

    def connect(self):
        pass

    def is_image_loaded(self) -> bool:
        return self.image is not None

    def get_image_filename(self) -> str | None:
        return self.image_file

    def cmd(self, *args):
        self.commands.append(args)
        name, path = args[0], args[1].strip('"')
        if name == "save":
            fits.writeto(path, self.image)
        elif name == "load":
            self.image, self.image_file = fits.getdata(path), path

    def update_progress(self, message: str, fraction: float):
        assert isinstance(message, str)
        self.progress.append(fraction)

    def reset_progress(self):
        self.resets += 1

    def log(self, line: str):
        self.log_lines.append(line)


@pytest.fixture
def script(monkeypatch):
    """tools/siril/srcnn_upscale.py imported with a stand-in sirilpy; .siril is the FakeSiril its
    SirilInterface() returns (set it before calling main)."""
    sirilpy = types.ModuleType("sirilpy")
    sirilpy.SirilConnectionError = type("SirilConnectionError", (Exception,), {})
    holder = types.SimpleNamespace(siril=None)
    sirilpy.SirilInterface = lambda: holder.siril
    monkeypatch.setitem(sys.modules, "sirilpy", sirilpy)
    spec = importlib.util.spec_from_file_location("srcnn_upscale_siril", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.holder = holder
    monkeypatch.setenv("SRCNN_NP", SRCNN_NP)
    return module


def star_image(shape=(40, 48), seed=0) -> np.ndarray:
    """Float data in [0, 1] as Siril holds it: faint background and a few stars."""
    rng = np.random.default_rng(seed)
    image = rng.normal(0.1, 0.01, shape)
    for y, x in rng.integers(4, min(shape) - 4, (5, 2)):
        image[y - 1:y + 2, x - 1:x + 2] += 0.5
    return np.clip(image, 0, 1).astype(np.float32)


def test_the_siril_14_script_compiles():
    py_compile.compile(SCRIPT, doraise=True)


def test_the_command_it_builds_runs_and_its_progress_reads_real_json_lines(tmp_path, script):
    fits.writeto(tmp_path / "in.fits", star_image((60, 70)))
    siril = FakeSiril()
    command = script.build_command(script.srcnn_np_command(), str(tmp_path / "in.fits"), str(tmp_path / "out.fits"))
    assert command == [*shlex.split(SRCNN_NP), "upscale", str(tmp_path / "in.fits"), "-o", str(tmp_path / "out.fits"),
                       "--scale", "2", "--model", "astro", "--progress", "json"], command
    end = script.run_srcnn_np(command + ["--tile", "32"], siril)  # small tiles: several progress lines
    assert end is not None and end["exit_code"] == 0 and end["done"] == 1, (end, siril.log_lines)
    assert fits.getdata(tmp_path / "out.fits").shape == (120, 140)
    assert len(siril.progress) >= 4 and siril.progress[-1] == 1.0, siril.progress
    assert all(a < b for a, b in zip(siril.progress, siril.progress[1:])), siril.progress
    assert siril.resets == 1


def test_a_failing_run_is_logged_and_reported(tmp_path, script):
    (tmp_path / "in.fits").write_bytes(b"SIMPLE  = not a FITS file")
    siril = FakeSiril()
    end = script.run_srcnn_np(script.build_command(script.srcnn_np_command(), str(tmp_path / "in.fits"),
                                                   str(tmp_path / "out.fits")), siril)
    assert end is not None and end["exit_code"] == 1 and end["failed"] == 1, end
    assert any(line.startswith("srcnn-np failed: ") and "in.fits" in line for line in siril.log_lines), siril.log_lines
    assert not (tmp_path / "out.fits").exists()
    siril = FakeSiril()  # a command srcnn-np refuses (exit 2, before any JSON): its message reaches the log
    assert script.run_srcnn_np(script.build_command(script.srcnn_np_command(), "in.fits", "out.fits", scale=5),
                               siril) is None
    assert any("--scale" in line for line in siril.log_lines) and "srcnn-np exited with status 2" in siril.log_lines


def test_main_saves_runs_and_loads_the_result_beside_the_image(tmp_path, script):
    image = star_image()
    fits.writeto(tmp_path / "m51 stack.fits", image)  # a space in the name: quoted for Siril
    siril = script.holder.siril = FakeSiril(str(tmp_path / "m51 stack.fits"))
    assert script.main() == 0, siril.log_lines
    target = str(tmp_path / "m51 stack_srcnn_x2.fits")
    assert [c[0] for c in siril.commands] == ["save", "load"] and siril.commands[1] == ("load", f'"{target}"')
    assert siril.image_file == target and siril.image.shape == (80, 96)
    assert not os.path.exists(siril.commands[0][1].strip('"'))  # the temporary copy is gone
    assert siril.progress and siril.progress[-1] == 1.0
    # the result is in the image's units ([0, 1] here): what Siril loads is a plausible upscale
    assert abs(float(np.mean(siril.image)) - float(np.mean(image))) < 0.01
    siril = script.holder.siril = FakeSiril(str(tmp_path / "m51 stack.fits"))  # again: the result exists
    assert script.main() == 1 and siril.commands == [] and "exists" in siril.log_lines[-1]


SIRIL = shutil.which("siril-cli")


@pytest.mark.skipif(SIRIL is None, reason="siril-cli not installed (Debian: apt-get install siril)")
def test_the_siril_106_shell_wrapper(tmp_path):
    fits.writeto(tmp_path / "light.fits", star_image((30, 40)))
    (tmp_path / "preprocess.ssf").write_text("requires 1.0.0\nload light\nsave result\n")
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / ".config"), "SRCNN_NP": SRCNN_NP}
    done = subprocess.run(["sh", WRAPPER, str(tmp_path), "preprocess.ssf", "3"], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert fits.getdata(tmp_path / "result_x3.fit").shape == (90, 120)
    from srcnn_np.io.formats import read_any

    stretched = read_any(tmp_path / "result_x3_asinh.tif").pixels
    assert stretched.shape == (90, 120) and stretched.dtype == np.uint16
    again = subprocess.run(["sh", WRAPPER, str(tmp_path), "preprocess.ssf", "3"], capture_output=True, text=True,
                           env=env, timeout=300)  # result_x3.fit exists: srcnn-np refuses, the wrapper stops
    assert again.returncode != 0 and "result_x3.fit: exists" in again.stderr, again.stderr[-2000:]
