"""Measurement: file size, CPU and wall time of each --png-compression setting on one image,
against Pillow's level 6 (what the CLI wrote before) and level 1. Every encode is decoded and
compared with the input (lossless) before its numbers are printed.

Run: flock /tmp/srcnn_cpu.lock python dev/png_compression_sizes.py OUT.png [--reps 3]
where OUT.png is an 8-bit PNG the CLI wrote, e.g. for the table in docs/performance.md:
    python -c "from skimage import data; from PIL import Image; Image.fromarray(data.hubble_deep_field())
               .resize((2048, 2048), Image.Resampling.BICUBIC).save('hdf2048.png')"
    python -m srcnn_np upscale hdf2048.png -o hdf4096.png
    python dev/png_compression_sizes.py hdf4096.png
CPU seconds are summed over threads (time.process_time); each line is the run of least CPU.
"""
import argparse
import io
import os
import sys
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from srcnn_np.io.png import write_png  # noqa: E402


def measure(encode, reps: int) -> tuple[float, float, bytes]:
    """(CPU s, wall s, encoded bytes) of the run of least CPU time."""
    best = None
    for _ in range(reps):
        buffer = io.BytesIO()
        wall, cpu = time.perf_counter(), time.process_time()
        encode(buffer)
        run = (time.process_time() - cpu, time.perf_counter() - wall, buffer.getvalue())
        best = run if best is None or run[0] < best[0] else best
    return best


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("png", help="an 8-bit PNG, e.g. the network's output")
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    pixels = np.asarray(Image.open(args.png))
    write_png(io.BytesIO(), pixels[:2, :2], compression=1)  # Numba compiles or loads its cache
    encoders = {"Pillow, level 6 (before)": lambda f: Image.fromarray(pixels).save(f, format="PNG", compress_level=6),
                "Pillow, level 1": lambda f: Image.fromarray(pixels).save(f, format="PNG", compress_level=1)}
    for setting in ("rle", 0, 1, 2, 3, 4, 6, 9):
        encoders[f"srcnn_np, {setting}"] = lambda f, setting=setting: write_png(f, pixels, compression=setting)
    before = None
    print(f"{pixels.shape[1]}x{pixels.shape[0]} x {pixels.shape[2] if pixels.ndim == 3 else 1} channels, "
          f"{os.cpu_count()} CPUs")
    for name, encode in encoders.items():
        cpu, wall, data = measure(encode, args.reps)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), pixels), f"{name}: not lossless"
        before = before or len(data)
        print(f"{name:26s} {len(data) / 1e6:7.2f} MB {100 * (len(data) / before - 1):+6.1f}%  "
              f"CPU {cpu:6.2f} s  wall {wall:6.2f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
