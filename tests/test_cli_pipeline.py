"""The CLI's write path: --png-compression, --timings, outputs written on the writer thread while
the next input is computed (order, failures, interrupts), and --help without Numba."""
import os
import re
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

from srcnn_np import batch
from srcnn_np.cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, main
from srcnn_np.io import formats, imageio, png

from .conftest import random_weights, save_png, sky
from .test_cli import run


def expected_output(pixels: np.ndarray) -> np.ndarray:
    """What the CLI should write for 8-bit pixels with the weights_file weights: uint8, rounded."""
    from srcnn_np import upscale

    return np.rint(np.clip(upscale(pixels, random_weights(9)), 0, 1) * 255).astype(np.uint8)


@pytest.mark.parametrize("value", ["10", "-1", "x", "1.5", "", "RLE", " 1"])
def test_bad_png_compression_is_a_one_line_usage_error(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as e:
        main(["upscale", "in.png", "-o", str(tmp_path / "o.png"), "--png-compression", value])
    err = capsys.readouterr().err
    assert e.value.code == EXIT_USAGE and len(err.strip().splitlines()) == 1, err
    assert "--png-compression" in err, err


@pytest.mark.parametrize("depth", [8, 16])
def test_every_png_compression_writes_the_same_pixels(tmp_path, weights_file, capsys, depth):
    """Lossless at every setting: the decoded output is what was meant to be written; sizes shrink
    with the level; the default is rle."""
    source = tmp_path / "in.png"
    pixels = sky(24, 20, 3, np.uint16 if depth == 16 else np.uint8)
    save_png(source, pixels) if depth == 16 else Image.fromarray(pixels).save(source)
    decoded, sizes = [], {}
    for level in (0, "rle", 1, 9, None):
        target = tmp_path / f"out{level}.png"
        code, _, err = run(["upscale", str(source), "-o", str(target), "--weights", weights_file]
                           + ([] if level is None else ["--png-compression", str(level)]), capsys)
        assert code == EXIT_OK, err
        decoded.append(png.read_png16(str(target)) if depth == 16 else np.asarray(Image.open(target)))
        sizes[level] = target.stat().st_size
    if depth == 8:
        np.testing.assert_array_equal(decoded[0], expected_output(pixels))
    for other in decoded[1:]:
        np.testing.assert_array_equal(other, decoded[0])
    assert sizes[0] > sizes[1] >= sizes[9], sizes
    assert (tmp_path / "outNone.png").read_bytes() == (tmp_path / "outrle.png").read_bytes()


def test_timings_print_each_phase_and_the_batch(tmp_path, weights_file, capsys):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(2):
        Image.fromarray(sky(12, 12, 3, seed=i)).save(src / f"img{i}.png")
    code, out, err = run(["upscale", str(src), "-o", str(tmp_path / "out"), "--weights", weights_file,
                          "--timings"], capsys)
    assert code == EXIT_OK, err
    phase = r"srcnn-np: timings .*img{}\.png: decode \d+\.\d\d s, network \d+\.\d\d s, encode \d+\.\d\d s"
    lines = err.strip().splitlines()
    assert len(lines) == 3, err
    assert re.fullmatch(phase.format(0), lines[0]) and re.fullmatch(phase.format(1), lines[1]), err
    assert re.fullmatch(r"srcnn-np: timings: 2 input\(s\) in \d+\.\d\d s wall, \d+\.\d\d s per input", lines[2]), err
    code, _, err = run(["upscale", str(src), "-o", str(tmp_path / "out2"), "--weights", weights_file], capsys)
    assert code == EXIT_OK and err == "", err  # nothing without the flag


def test_pipelined_batch_outputs_in_order_with_failures_in_the_middle(tmp_path, weights_file, capsys, monkeypatch):
    """Five inputs: the 2nd cannot be decoded, the 4th's write fails (on the writer thread). The
    other three outputs are complete and right; stdout and the failure report keep the input order."""
    src = tmp_path / "src"
    src.mkdir()
    images = {f"img{i}.png": sky(16, 14, 3, seed=i) for i in range(5)}
    for name, pixels in images.items():
        Image.fromarray(pixels).save(src / name)
    (src / "img1.png").write_bytes(b"not a png")
    real_write = formats.write_any
    writer_threads = set()

    def failing_write(path, *args, **kwargs):
        writer_threads.add(threading.current_thread().name)
        if os.path.basename(path) == "img3_x2.png":
            raise imageio.ImageIOError(f"{path}: cannot write (injected)")
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr(batch, "write_any", failing_write)
    code, out, err = run(["upscale", str(src), "-o", str(tmp_path / "out"), "--weights", weights_file], capsys)
    assert code == EXIT_FAILED
    assert [line.split(" -> ")[0] for line in out.splitlines()] == [str(src / f"img{i}.png") for i in (0, 2, 4)], out
    report = err.strip().splitlines()
    assert report[0] == "srcnn-np: 2 input(s) failed, 3 done:", err
    assert "img1.png: not a readable image" in report[1] and "img3_x2.png: cannot write (injected)" in report[2], err
    assert sorted(os.listdir(tmp_path / "out")) == ["img0_x2.png", "img2_x2.png", "img4_x2.png"]
    for i in (0, 2, 4):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / f"img{i}_x2.png")),
                                      expected_output(images[f"img{i}.png"]))
    assert writer_threads and all(n.startswith("srcnn-np-writer") for n in writer_threads), writer_threads


def test_interrupt_while_a_write_is_in_flight_finishes_that_write(tmp_path, weights_file, capsys, monkeypatch):
    """Ctrl-C while the 2nd input is upscaled and the 1st output is still being written (slowly):
    the 1st output is completed, nothing else is written, no temp file, exit 130."""
    import srcnn_np.model

    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        Image.fromarray(sky(16, 16, 3, seed=i)).save(src / f"img{i}.png")
    real_write, real_upscale = formats.write_any, srcnn_np.model.Upscaler.__call__
    writing = threading.Event()
    calls = []

    def slow_write(*args, **kwargs):
        writing.set()
        time.sleep(0.5)
        return real_write(*args, **kwargs)

    def interrupted_second_upscale(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            assert writing.wait(10), "the 1st write never started"
            raise KeyboardInterrupt
        return real_upscale(*args, **kwargs)

    monkeypatch.setattr(batch, "write_any", slow_write)
    monkeypatch.setattr(srcnn_np.model.Upscaler, "__call__", interrupted_second_upscale)
    code, _, err = run(["upscale", str(src), "-o", str(tmp_path / "out"), "-q", "--weights", weights_file], capsys)
    assert code == EXIT_INTERRUPTED and err.strip() == "srcnn-np: interrupted", err
    assert sorted(os.listdir(tmp_path / "out")) == ["img0_x2.png"]  # complete, and no temp file beside it
    with Image.open(tmp_path / "out" / "img0_x2.png") as im:
        im.load()
        assert im.size == (32, 32)


@pytest.mark.parametrize("argv", [["--help"], ["upscale", "--help"], ["evaluate", "--help"]])
def test_help_does_not_import_numba(argv):
    """--help in a fresh process: the help text, and Numba never imported (-X importtime lists
    every module imported)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "srcnn_np", *argv], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "srcnn_np.cli" in imported, sorted(imported)[:20]  # the listing is there, and lists our modules
    assert not {m for m in imported if m.split(".")[0] in ("numba", "llvmlite")}, sorted(
        m for m in imported if m.split(".")[0] in ("numba", "llvmlite"))
    if argv == ["upscale", "--help"]:
        assert "--png-compression" in done.stdout and "--timings" in done.stdout
