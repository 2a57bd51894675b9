"""A soak: thousands of small files, some bad, through one `srcnn-np upscale` batch, watched from outside.

    python tools/soak.py WORKDIR                        # 10,000 files, 5% bad, then kill and resume
    python tools/soak.py WORKDIR --files 300 --every 50

Makes WORKDIR/in (small PNG 8/16-bit, JPEG and TIFF images, gray to RGBA, and about --bad-fraction
bad files of assorted kinds: empty, truncated, random bytes, text, a GIF named .png, a multi-page
TIFF, a header claiming a huge or empty image, a dangling link), then:

1. runs the whole batch into WORKDIR/out in a subprocess and, every --every files it reports
   done, reads the process's resident memory (VmRSS in /proc/PID/status) and its count of open
   file descriptors (/proc/PID/fd): nothing is added to the CLI itself;
2. runs it again into WORKDIR/resumed, SIGKILLs it halfway, plants one stale temp file of the
   killed-run kind (".NAME.XXXXXXXX.tmp", an hour old) for an output still to do, and reruns with
   --skip-existing.

Prints the samples and a verdict per check; exits 1 if a check fails. `check_batch` and
`run_batch` are what tests/test_soak.py uses.
"""
import argparse
import io
import os
import random
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from srcnn_np.io import png
from srcnn_np.io.atomic import TEMP_NAME

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOOD_KINDS = ("gray.png", "rgb.png", "rgba.png", "gray16.png", "rgb.jpg", "gray.tif", "rgb.tif")
BAD_KINDS = ("empty.png", "truncated.png", "random.jpg", "text.png", "gif.png", "pages.tif",
             "huge_header.png", "empty_header.png", "truncated.jpg", "dangling.png")


@dataclass
class Sample:
    done: int  # files reported done so far
    rss_kib: int
    fds: int


@dataclass
class BatchRun:
    returncode: int
    done: list[str]  # sources reported done (stdout), in order
    stderr: str
    samples: list[Sample] = field(default_factory=list)


def encoded(array: np.ndarray, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **options)
    return buffer.getvalue()


def png_header_only(width: int, height: int, depth: int = 8, color_type: int = 2) -> bytes:
    """A PNG whose IHDR claims width x height (RGB unless color_type says), with no image data."""
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes((depth, color_type, 0, 0, 0))
    return b"".join((png.PNG_SIGNATURE, png.chunk(b"IHDR", ihdr),
                     png.chunk(b"IDAT", zlib.compress(b"")), png.chunk(b"IEND", b"")))


def good_file(kind: str, rng: np.random.Generator) -> bytes:
    """Bytes of a small valid image (8 to 24 pixels a side) of one of GOOD_KINDS."""
    h, w = rng.integers(8, 25, 2)
    channels = {"gray": None, "rgb": 3, "rgba": 4, "gray16": None}[kind.split(".")[0]]
    shape = (h, w) if channels is None else (h, w, channels)
    if kind == "gray16.png":
        buffer = io.BytesIO()
        png.write_png(buffer, rng.integers(0, 65536, shape, dtype=np.uint16), compression=6)
        return buffer.getvalue()
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    return encoded(pixels, {"png": "PNG", "jpg": "JPEG", "tif": "TIFF"}[kind.split(".")[1]])


def write_bad_file(path: str, kind: str, rng: np.random.Generator) -> None:
    """A bad input of one of BAD_KINDS at path (a dangling link for "dangling.png")."""
    valid_png = encoded(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8), "PNG")
    valid_jpg = encoded(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8), "JPEG")
    if kind == "dangling.png":
        os.symlink(path + ".missing", path)
        return
    data = {
        "empty.png": lambda: b"",
        "truncated.png": lambda: valid_png[:len(valid_png) // 2],
        "random.jpg": lambda: rng.bytes(2000),
        "text.png": lambda: b"not an image\n" * 40,
        "gif.png": lambda: encoded(rng.integers(0, 256, (8, 8), dtype=np.uint8), "GIF"),
        "pages.tif": lambda: encoded(np.zeros((8, 8), np.uint8), "TIFF", save_all=True,
                                     append_images=[Image.new("L", (8, 8))]),
        "huge_header.png": lambda: png_header_only(40000, 40000),
        "empty_header.png": lambda: png_header_only(0, 7),
        "truncated.jpg": lambda: valid_jpg[:len(valid_jpg) // 3],
    }[kind]()
    with open(path, "wb") as f:
        f.write(data)


def make_corpus(directory: str, files: int, bad_fraction: float, seed: int = 0) -> tuple[list[str], list[str]]:
    """files inputs in `directory` (created), about bad_fraction of them bad, shuffled by name.

    Returns (good paths, bad paths). Names are file00000_KIND: the batch's sorted order mixes kinds.
    """
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    shuffle = random.Random(seed)
    good, bad = [], []
    for i in range(files):
        is_bad = shuffle.random() < bad_fraction
        kind = shuffle.choice(BAD_KINDS if is_bad else GOOD_KINDS)
        path = os.path.join(directory, f"file{i:05d}_{kind.replace('.', '_')}.{kind.split('.')[1]}")
        if is_bad:
            write_bad_file(path, kind, rng)
            bad.append(path)
        else:
            with open(path, "wb") as f:
                f.write(good_file(kind, rng))
            good.append(path)
    return good, bad


def process_figures(pid: int) -> tuple[int, int]:
    """(VmRSS in KiB, open file descriptors) of a live process, read from /proc."""
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def run_batch(source: str, output: str, *extra: str, every: int = 500, kill_after: int | None = None) -> BatchRun:
    """`srcnn-np upscale SOURCE -o OUTPUT --threads 1 EXTRA...` in a subprocess, sampled every
    `every` files done; SIGKILLed once `kill_after` files are done (if given)."""
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "srcnn_np", "upscale", source, "-o", output, "--threads", "1",
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    run = BatchRun(0, [], "")
    for line in proc.stdout:
        run.done.append(line.split(" -> ")[0])
        if len(run.done) % every == 0:
            try:
                run.samples.append(Sample(len(run.done), *process_figures(proc.pid)))
            except (OSError, StopIteration):  # it ended meanwhile
                pass
        if kill_after is not None and len(run.done) >= kill_after:
            proc.kill()
            break
    run.stderr = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    run.returncode = proc.wait()
    return run


def output_name(source: str) -> str:
    """The name the batch gives source's output: NAME_x2.EXT."""
    stem, ext = os.path.splitext(os.path.basename(source))
    return f"{stem}_x2{ext}"


def check_batch(run: BatchRun, good: list[str], bad: list[str], output: str, skipped: int = 0) -> list[str]:
    """What is wrong with a finished batch run (an empty list when nothing is): every good input
    reported done once (or skipped, `skipped` of them) and its output there, every bad one named
    once on stderr, the right exit status and summary, no temp file left."""
    problems = []
    done = set(run.done)
    if len(run.done) != len(done):
        problems.append(f"{len(run.done) - len(done)} input(s) reported done twice")
    if not done <= set(good) or len(done) + skipped != len(good):
        problems.append(f"done {len(done)} + skipped {skipped} of {len(good)} good; "
                        f"not good: {sorted(done - set(good))[:5]}")
    for path in bad:
        named = run.stderr.count(path + ":")
        if named != 1:
            problems.append(f"{path} named {named} times on stderr")
    summary = f"{len(bad)} input(s) failed, {len(done)} done" + (f", {skipped} skipped" if skipped else "")
    if summary not in run.stderr:
        problems.append(f"no summary {summary!r} on stderr: {run.stderr[:300]!r}")
    if run.returncode != 1:
        problems.append(f"exit status {run.returncode}, want 1 (some inputs failed)")
    outputs = set(os.listdir(output))
    temps = sorted(n for n in outputs if TEMP_NAME.fullmatch(n))
    if temps:
        problems.append(f"temp files left: {temps[:5]}")
    want = {output_name(g) for g in good}
    if outputs - set(temps) != want:
        problems.append(f"outputs missing {sorted(want - outputs)[:5]}, unexpected {sorted(outputs - want)[:5]}")
    return problems


def flatness(samples: list[Sample]) -> tuple[int, int]:
    """(RSS growth in KiB, fd growth) from the first sample to the highest later one."""
    first = samples[0]
    return (max(s.rss_kib for s in samples) - first.rss_kib, max(s.fds for s in samples) - first.fds)


def plant_stale_temp(output: str, target_name: str) -> str:
    """A temp file of the kind a killed run leaves for target_name, an hour old; its path."""
    path = os.path.join(output, f".{target_name}.k1ll3d_x.tmp")
    with open(path, "wb") as f:
        f.write(b"half an image")
    old = time.time() - 3600
    os.utime(path, (old, old))
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir")
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--bad-fraction", type=float, default=0.05)
    parser.add_argument("--every", type=int, default=500, help="sample memory and descriptors every N files done")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    source = os.path.join(args.workdir, "in")
    started = time.monotonic()
    good, bad = make_corpus(source, args.files, args.bad_fraction, args.seed)
    print(f"corpus: {len(good)} good, {len(bad)} bad in {source} ({time.monotonic() - started:.0f} s)")

    started = time.monotonic()
    run = run_batch(source, os.path.join(args.workdir, "out"), every=args.every)
    print(f"batch: exit {run.returncode}, {len(run.done)} done in {time.monotonic() - started:.0f} s")
    print(f"{'files done':>10} {'VmRSS MiB':>10} {'open fds':>9}")
    for s in run.samples:
        print(f"{s.done:>10} {s.rss_kib / 1024:>10.1f} {s.fds:>9}")
    problems = check_batch(run, good, bad, os.path.join(args.workdir, "out"))
    rss_growth, fd_growth = flatness(run.samples)
    print(f"from {run.samples[0].done} to {run.samples[-1].done} files: RSS +{rss_growth / 1024:.1f} MiB, "
          f"fds +{fd_growth}")

    resumed = os.path.join(args.workdir, "resumed")
    killed = run_batch(source, resumed, every=args.every, kill_after=len(good) // 2)
    todo = sorted(set(good) - set(killed.done))
    stale = plant_stale_temp(resumed, output_name(todo[0]))
    left = [n for n in os.listdir(resumed) if TEMP_NAME.fullmatch(n)]
    rerun = run_batch(source, resumed, "--skip-existing", every=args.every)
    print(f"killed after {len(killed.done)} done (exit {killed.returncode}), {len(left)} temp file(s) there "
          f"(one planted); rerun with --skip-existing: exit {rerun.returncode}, {len(rerun.done)} done")
    problems += [f"resumed: {p}" for p in check_batch(rerun, good, bad, resumed, skipped=len(killed.done))]
    if os.path.exists(stale):
        problems.append(f"the stale temp file {stale} is still there")
    for p in problems:
        print(f"PROBLEM: {p}")
    print("all checks passed" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
