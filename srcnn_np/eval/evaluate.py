"""`python -m srcnn_np evaluate`: PSNR / SSIM of the model against bicubic, the standard SR protocol.

For every ground truth in --hr DIR:
    hr  (H, W, 3) float32 RGB, cropped to multiples of the scale (degrade.modcrop)
    lr  degrade.make_lr(hr, scale): antialiased bicubic downscale (Pillow, float 'F' mode, per channel)
    bicubic baseline: srcnn_np.model.bicubic per channel; model: srcnn_np.upscale(mode="y")
    scores on the BT.601 Y channel with a `scale`-pixel border crop.
With --stars it runs the science-fidelity evaluation instead (srcnn_np.eval.star_eval: photutils
photometry and astrometry of star fields, the [science] extra).
Torch-free: NumPy, Numba and Pillow only. reference/data.py builds training inputs with the same
degrade.make_lr, so the model is trained on exactly the degradation it is evaluated on.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..color import luminance
from ..weights import MODELS, SUPPORTED_SCALES, WeightsError, load_weights
from .degrade import EXTENSIONS, bicubic_rgb, load_rgb, make_lr, modcrop
from .metrics import psnr, ssim


def evaluate_image(hr: np.ndarray, kernel_weights, scale: int) -> dict:
    """Scores of one (H, W, 3) float32 ground truth: {'bicubic_psnr', 'bicubic_ssim', 'model_psnr', ...}."""
    from ..model import Upscaler

    hr = modcrop(hr, scale)
    lr = make_lr(hr, scale)
    y_true = luminance(hr)
    y_bicubic = luminance(bicubic_rgb(lr, scale))
    y_model = luminance(Upscaler.load(kernel_weights, scale=scale, mode="y")(lr))
    return {
        "bicubic_psnr": psnr(y_true, y_bicubic, border=scale),
        "bicubic_ssim": ssim(y_true, y_bicubic, border=scale),
        "model_psnr": psnr(y_true, y_model, border=scale),
        "model_ssim": ssim(y_true, y_model, border=scale),
    }


def image_files(hr_dir) -> list:
    """The image files in hr_dir, sorted; ValueError when it is not a directory or has none."""
    if not Path(hr_dir).is_dir():
        raise ValueError(f"{hr_dir}: not a directory")
    files = sorted(p for p in Path(hr_dir).iterdir() if p.suffix.lower() in EXTENSIONS)
    if not files:
        raise ValueError(f"{hr_dir}: no images ({', '.join(EXTENSIONS)})")
    return files


def evaluate_dir(hr_dir, kernel_weights, scale: int) -> dict:
    """Evaluate every image in hr_dir: {'images': [{'name', scores...}], 'mean': {...}}."""
    files = image_files(hr_dir)
    rows = [{"name": p.name, **evaluate_image(load_rgb(p), kernel_weights, scale)} for p in files]
    keys = [k for k in rows[0] if k != "name"]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    mean["psnr_gain"] = mean["model_psnr"] - mean["bicubic_psnr"]
    mean["ssim_gain"] = mean["model_ssim"] - mean["bicubic_ssim"]
    return {"images": rows, "mean": mean}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hr", metavar="DIR", help="directory of ground-truth images (required without --stars; "
                        "with --stars, real images to add to the synthetic star fields)")
    parser.add_argument("--scale", type=int, default=2, choices=SUPPORTED_SCALES)
    parser.add_argument("--weights", metavar="NPZ", help="weights file (default: shipped --model weights)")
    parser.add_argument("--model", default="astro", choices=MODELS,
                        help="which shipped weights to use when --weights is not given")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    stars = parser.add_argument_group("science fidelity (--stars; pip install \"srcnn_np[science]\")")
    stars.add_argument("--stars", action="store_true",
                       help="photometry and astrometry with photutils on synthetic star fields (and --hr "
                       "images): flux ratio, centroid error, FWHM, false and lost detections, sky noise, "
                       "for bicubic, Lanczos and SRCNN with and without --conserve-flux, linear and asinh")
    stars.add_argument("--size", type=int, default=96, help="side of each synthetic field in low-res pixels (default 96)")
    stars.add_argument("--seed", type=int, default=0, help="random seed of the synthetic fields (default 0)")
    stars.add_argument("--hdf", action="store_true",
                       help="add scikit-image's Hubble Deep Field as a real image (needs scikit-image)")


def format_table(result: dict, scale: int, source: str) -> str:
    lines = [f"scale x{scale}, weights {source}; PSNR (dB) / SSIM on Y, {scale}-pixel border crop",
             (f"{'image':<32} {'bicubic PSNR':>12} {'SRCNN PSNR':>11} {'gain':>6} "
              f"{'bicubic SSIM':>12} {'SRCNN SSIM':>11}")]
    for r in result["images"] + [{"name": "mean", **result["mean"]}]:
        lines.append(f"{r['name'][:32]:<32} {r['bicubic_psnr']:12.2f} {r['model_psnr']:11.2f} "
                     f"{r['model_psnr'] - r['bicubic_psnr']:+6.2f} {r['bicubic_ssim']:12.4f} "
                     f"{r['model_ssim']:11.4f}")
    return "\n".join(lines)


def hubble_deep_field() -> np.ndarray:
    """scikit-image's Hubble Deep Field as (H, W) float32 luminance in [0, 1]."""
    try:
        from skimage.data import hubble_deep_field as load
    except ImportError as e:
        raise ImportError("--hdf needs scikit-image: pip install scikit-image") from e
    from ..model import to_float01

    return luminance(to_float01(load()))


def finite_or_none(value):
    """JSON-ready copy of nested dicts/lists of numbers: NaN becomes None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def run_stars(args) -> int:
    """`evaluate --stars`: the science-fidelity suite (srcnn_np.eval.star_eval); returns the exit status."""
    try:
        from . import star_eval

        real = [(p.name, luminance(load_rgb(p))) for p in image_files(args.hr)] if args.hr else []
        if args.hdf:
            real.append(("hubble_deep_field", hubble_deep_field()))
        if args.size < 32:
            raise ValueError(f"--size {args.size}: fields need at least 32 low-res pixels a side")
        result = star_eval.run_suite(args.scale, size=args.size, seed=args.seed, real_images=real,
                                     weights=args.weights, log=None if args.json else star_eval.log_stderr)
    except (ImportError, WeightsError, ValueError, OSError) as e:
        print(f"srcnn-np evaluate: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(finite_or_none(result), indent=2) if args.json else star_eval.format_results(result))
    return 0


def run(args) -> int:
    """Run the evaluation for parsed `args` (see add_arguments); returns the exit status."""
    if args.stars:
        return run_stars(args)
    from ..model import resolve_weights

    try:
        if not args.hr:
            raise ValueError("--hr DIR is required (or --stars for the science-fidelity evaluation)")
        weights = load_weights(args.weights, scale=args.scale, model=args.model)
        result = evaluate_dir(args.hr, resolve_weights(weights), args.scale)
    except (WeightsError, ValueError, OSError) as e:
        print(f"srcnn-np evaluate: error: {e}", file=sys.stderr)
        return 2
    result.update(scale=args.scale, weights=weights.source, hr=str(args.hr))
    print(json.dumps(result, indent=2) if args.json else format_table(result, args.scale, weights.source))
    return 0
