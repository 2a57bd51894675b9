"""Write a large synthetic sky plane to Zarr, tile by tile, for out-of-core runs (issue 8).

    python tools/make_big_sky.py big_sky.zarr --size 16384 [--tile 1024] [--blank]

Each tile x tile block is its own srcnn_np.eval.synthetic.synthetic_sky (seeded by the block index,
luminance of the RGB image, float32 in [0, 1]); only one block is ever in memory. --blank puts a
NaN hole in the middle of the plane (blank-pixel handling at scale). Not used by the tests.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from srcnn_np.color import rgb_to_ycbcr  # noqa: E402
from srcnn_np.eval.synthetic import synthetic_sky  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("output", help="the .zarr array to create (must not exist)")
    p.add_argument("--size", type=int, default=16384, help="side of the square plane (default 16384)")
    p.add_argument("--tile", type=int, default=1024, help="block side = Zarr chunk side (default 1024)")
    p.add_argument("--blank", action="store_true", help="a NaN hole of size/16 in the middle")
    args = p.parse_args(argv)
    import zarr

    if os.path.exists(args.output):
        p.error(f"{args.output} exists")
    z = zarr.open_array(args.output, mode="w-", shape=(args.size, args.size), chunks=(args.tile, args.tile),
                        dtype=np.float32, fill_value=np.nan)
    blocks = -(-args.size // args.tile)
    for by in range(blocks):
        for bx in range(blocks):
            y0, x0 = by * args.tile, bx * args.tile
            h, w = min(args.tile, args.size - y0), min(args.tile, args.size - x0)
            luma = rgb_to_ycbcr(synthetic_sky(h, w, seed=by * blocks + bx))[:, :, 0]
            z[y0:y0 + h, x0:x0 + w] = luma.astype(np.float32)
        print(f"row {by + 1}/{blocks}", file=sys.stderr, flush=True)
    if args.blank:
        c, r = args.size // 2, args.size // 32
        z[c - r:c + r, c - r:c + r] = np.nan
    return 0


if __name__ == "__main__":
    sys.exit(main())
