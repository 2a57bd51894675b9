"""Siril 1.4 Python script: upscale the image loaded in Siril with srcnn-np (SRCNN, x2/x3/x4).

The file round trip Siril's own scripts use for external programs (GraXpert, Cosmic Clarity):
save the loaded image as a FITS file in a temporary folder, run
`srcnn-np upscale IN.fits -o OUT.fits --progress json`, follow its JSON progress lines in Siril's
progress bar (other lines go to Siril's log), and load the result, written beside the loaded
image as NAME_srcnn_x2.fits (never over an existing file).

Install srcnn-np where Siril can run it: on PATH, or name the command in the environment variable
SRCNN_NP (e.g. SRCNN_NP="/home/me/venv/bin/srcnn-np", or "/usr/bin/python3 -m srcnn_np").
Copy this file into a folder listed in Siril's script paths (Preferences > Scripts), or run it
with `pyscript srcnn_upscale.py` from a Siril script.

NOT RUN AGAINST SIRIL: Siril 1.4 could not be installed where srcnn_np is developed (only Debian's
siril-cli 1.0.6). tests/test_siril_script.py checks what can be checked without it, with a stand-in
`sirilpy` module: the file compiles, the command it builds runs on a file, and the progress it
reports comes from real srcnn-np JSON lines. See docs/siril.md.
"""
import json
import os
import shlex
import subprocess
import tempfile

import sirilpy as s

SCALE = 2  # 2, 3 or 4
MODEL = "astro"  # srcnn-np's shipped weights: "astro" (Hubble-tuned) or "general"


def srcnn_np_command() -> list[str]:
    """The srcnn-np program: $SRCNN_NP split like a shell command line, else `srcnn-np` on PATH."""
    return shlex.split(os.environ.get("SRCNN_NP", "srcnn-np"))


def build_command(program: list[str], source: str, target: str, scale: int = SCALE, model: str = MODEL) -> list[str]:
    """The srcnn-np command line that upscales FITS `source` into `target`, with JSON progress."""
    return [*program, "upscale", source, "-o", target, "--scale", str(scale), "--model", model, "--progress", "json"]


def follow_progress(lines, siril) -> dict | None:
    """Read srcnn-np's output lines as they come: `progress` events move Siril's progress bar
    (batch_fraction, 0..1), a failed file is logged, other text lines go to Siril's log.
    Returns srcnn-np's final `end` event, or None if it never came (srcnn-np stopped early)."""
    end = None
    for line in lines:
        line = line.rstrip("\n")
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if not isinstance(event, dict) or "event" not in event:
            if line.strip():
                siril.log(line)  # srcnn-np's own messages (errors, warnings) on stderr
            continue
        if event["event"] == "progress":
            siril.update_progress("srcnn-np: upscaling", event["batch_fraction"])
        elif event["event"] == "file_end" and event["status"] == "failed":
            siril.log(f"srcnn-np failed: {event['message']}")
        elif event["event"] == "end":
            end = event
    return end


def run_srcnn_np(command: list[str], siril) -> dict | None:
    """Run `command` (see build_command), its stderr merged into its stdout, following its progress;
    srcnn-np's end event (None if it stopped before one, e.g. a bad command line)."""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as process:
        end = follow_progress(process.stdout, siril)
    siril.reset_progress()
    if process.returncode != 0 and end is None:
        siril.log(f"srcnn-np exited with status {process.returncode}")
    return end


def siril_argument(path: str) -> str:
    """A file name as one Siril command argument: in double quotes when it holds a space."""
    return f'"{path}"' if any(c.isspace() for c in path) else path


def output_path(image_file: str, scale: int = SCALE) -> str:
    """Where the result goes: beside the loaded image, NAME_srcnn_x2.fits."""
    stem = os.path.basename(image_file).split(".")[0] or "image"
    return os.path.join(os.path.dirname(os.path.abspath(image_file)), f"{stem}_srcnn_x{scale}.fits")


def main() -> int:
    siril = s.SirilInterface()
    try:
        siril.connect()
    except s.SirilConnectionError as e:
        print(f"cannot connect to Siril: {e}")
        return 1
    if not siril.is_image_loaded():
        siril.log("srcnn-np: no image loaded")
        return 1
    target = output_path(siril.get_image_filename() or "image.fits")
    if os.path.exists(target):
        siril.log(f"srcnn-np: {target} exists; move it away first")
        return 1
    with tempfile.TemporaryDirectory(prefix="srcnn_np_siril_") as folder:
        source = os.path.join(folder, "input.fits")
        siril.cmd("save", siril_argument(source))
        try:
            end = run_srcnn_np(build_command(srcnn_np_command(), source, target), siril)
        except OSError as e:  # no such program
            siril.log(f"srcnn-np: cannot run {srcnn_np_command()[0]} ({e.strerror}); set SRCNN_NP")
            return 1
    if end is None or end["exit_code"] != 0:
        return 1
    siril.cmd("load", siril_argument(target))
    siril.log(f"srcnn-np: upscaled x{SCALE} with the {MODEL} model in {end['seconds']:.1f} s: {target}")
    return 0


if __name__ == "__main__":
    main()
