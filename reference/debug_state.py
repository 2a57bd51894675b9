"""Write a debug-state file: one input through the torch reference, with every activation.

    python -m reference.debug_state OUT.npz [--weights W.npz] [--height 37 --width 53] [--seed 0]

The file (.npz, no pickles) holds, NCHW float32 as torch computes them:
    input      (1, 1, H, W)        upsampled (1, 1, sH, sW)
    conv1      (1, 64, sH, sW)     conv2     (1, 32, sH, sW)      output (1, 1, sH, sW)
plus the weights themselves under their contract names (conv1.weight, ...) and `scale`.
tests/test_parity.py checks srcnn_np against such a file stage by stage.
"""
import argparse

import numpy as np
import torch

from srcnn_np.weights import load_weights

from .model import from_weights


def debug_state(weights, image: np.ndarray) -> dict:
    """{stage: NCHW float32 array} for an (H, W) float32 image, plus the weights."""
    model = from_weights(weights)
    with torch.no_grad():
        stages = model.forward_stages(torch.from_numpy(np.ascontiguousarray(image, np.float32))[None, None])
    state = {name: t.numpy() for name, t in stages.items()}
    state.update(weights.arrays())
    state["scale"] = np.int32(weights.scale)
    return state


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("output")
    p.add_argument("--weights", help="weights .npz (default: shipped x2)")
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--height", type=int, default=37)
    p.add_argument("--width", type=int, default=53)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    image = np.random.default_rng(args.seed).random((args.height, args.width), dtype=np.float32)
    np.savez(args.output, **debug_state(load_weights(args.weights, scale=args.scale), image))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
