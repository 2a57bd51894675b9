"""Side-by-side picture for the README: low-res input, bicubic, SRCNN, ground truth.

    python tools/make_comparison.py IMAGE [--scale 2] [--model astro] [--weights NPZ]
        [--zoom 2] [--out docs/comparison.png] [--force]

Written atomically with srcnn_np.io.imageio.write_image; an existing --out is replaced only with --force.

IMAGE is a ground truth (use one from the validation split, never trained on). The input is made
as `python -m srcnn_np evaluate` makes it (srcnn_np.eval.degrade.make_lr); the low-res panel is shown
with nearest-neighbour enlargement, every panel is enlarged --zoom times (nearest) so pixels stay
visible, and each is labelled with its PSNR on Y (scale-pixel border crop).
"""
import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from srcnn_np.color import luminance
from srcnn_np.eval.degrade import bicubic_rgb, load_rgb, make_lr, modcrop
from srcnn_np.io.imageio import write_image
from srcnn_np.eval.metrics import psnr
from srcnn_np.model import upscale
from srcnn_np.weights import MODELS, WeightsError, load_weights

LABEL_HEIGHT = 18


def panel(rgb: np.ndarray, size: tuple, label: str) -> Image.Image:
    """(h, w, 3) float32 -> labelled PIL panel, nearest-enlarged to size = (width, height)."""
    im = Image.fromarray(np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)).resize(size, Image.NEAREST)
    out = Image.new("RGB", (size[0], size[1] + LABEL_HEIGHT), "white")
    out.paste(im, (0, LABEL_HEIGHT))
    ImageDraw.Draw(out).text((4, 3), label, fill="black")
    return out


def comparison(hr: np.ndarray, weights, zoom: int) -> Image.Image:
    """Four labelled panels side by side for one (H, W, 3) float32 ground truth."""
    s = weights.scale
    hr = modcrop(hr, s)
    lr = make_lr(hr, s)
    bic = bicubic_rgb(lr, s)
    sr = upscale(lr, weights, mode="y", scale=s)
    y = luminance(hr)
    size = (hr.shape[1] * zoom, hr.shape[0] * zoom)
    panels = [panel(lr, size, f"input {lr.shape[1]}x{lr.shape[0]}"),
              panel(bic, size, f"bicubic {psnr(y, luminance(bic), s):.2f} dB"),
              panel(sr, size, f"SRCNN {psnr(y, luminance(sr), s):.2f} dB"),
              panel(hr, size, "ground truth")]
    sheet = Image.new("RGB", (4 * size[0] + 3 * 4, size[1] + LABEL_HEIGHT), "white")
    for i, p in enumerate(panels):
        sheet.paste(p, (i * (size[0] + 4), 0))
    return sheet


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", help="ground-truth image (from the validation split)")
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--model", default="astro", choices=MODELS)
    p.add_argument("--weights", help="weights file (default: the shipped --model weights)")
    p.add_argument("--zoom", type=int, default=2, help="nearest-neighbour enlargement of every panel")
    p.add_argument("--out", default="docs/comparison.png")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    args = p.parse_args(argv)
    out = Path(args.out)
    try:
        weights = load_weights(args.weights, scale=args.scale, model=args.model)
        sheet = comparison(load_rgb(args.image), weights, args.zoom)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_image(out, np.asarray(sheet, dtype=np.float32) / 255, "png", overwrite=args.force)
    except (ValueError, OSError, WeightsError) as e:
        print(f"make_comparison: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
