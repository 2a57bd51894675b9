"""Peak memory of upscale beyond its input and output arrays (tracemalloc sees numpy's buffers).

Run: flock /tmp/srcnn_cpu.lock python dev/memory_check.py [side] [tile ...]
(default: a 2048 x 2048 gray input -> 4096 x 4096 output, tiles: automatic, 1024, 256).
"""
import sys
import time
import tracemalloc

import numpy as np

from srcnn_np.model import resolve_weights, upscale


def main():
    side = int(sys.argv[1]) if len(sys.argv) > 1 else 2048
    tiles = [None if t == "auto" else int(t) for t in sys.argv[2:]] or [None, 1024, 256]
    kw = resolve_weights(None, 2)
    upscale(np.zeros((8, 8), np.float32), kw)  # load the kernels before measuring
    image = np.random.default_rng(0).random((side, side), dtype=np.float32)
    for tile in tiles:
        tracemalloc.start()
        t = time.perf_counter()
        out = upscale(image, kw, tile=tile)
        seconds = time.perf_counter() - t
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"input {image.shape} -> output {out.shape}, tile {tile or 'auto'}: peak traced "
              f"{peak / 2**20:.0f} MiB, output {out.nbytes / 2**20:.0f} MiB, beyond the output "
              f"{(peak - out.nbytes) / 2**20:.0f} MiB, {seconds:.1f} s")
        del out


if __name__ == "__main__":
    main()
