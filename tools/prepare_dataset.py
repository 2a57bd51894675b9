"""Prepare a super-resolution dataset from a directory of images, as the seed project did.

    python tools/prepare_dataset.py SRC DST --scale 2 [--size 256] [--val-fraction 0.2]
        [--seed 0] [--exclude FILTER.txt] [--force]

Every usable image in SRC becomes
    DST/{train,val}/hr/NAME.png  ground truth: RGB, centre-cropped square, downscaled to --size
                                 when larger, kept at its own size when smaller (never enlarged),
                                 cropped to a multiple of the scale
    DST/{train,val}/lr/NAME.png  the input: srcnn_np.eval.degrade.make_lr (antialiased bicubic / scale)
and DST/manifest.json records every source (size, SHA-256, split) and every exclusion with its
reason. The split is a hash of --seed and the file name (reference.data.split_of), so it does not
depend on file order and reference/train.py reproduces it. --exclude names files to drop (one
name per line, '#' comments), the seed's manual sorting; an automatic guard drops images that look
like diagrams or illustrations (large flat areas, white backgrounds). DST is built in a temporary
directory and renamed into place; an existing DST is replaced only with --force.
"""
import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from reference.data import (
    GT_SIZE,
    VAL_FRACTION,
    image_files,
    make_ground_truth,
    split_of,
)
from srcnn_np.io.atomic import current_umask
from srcnn_np.color import luminance
from srcnn_np.eval.degrade import load_rgb, make_lr
from srcnn_np.io.imageio import write_image

MAX_FLAT_FRACTION = 0.4  # lit pixels equal to their left and upper neighbours: flat fills of drawn graphics
DARK = 0.1  # Y below this is sky background, flat in photographs too
MAX_WHITE_FRACTION = 0.3  # pixels with Y > 0.95: the white page of a diagram


def illustration_reason(rgb: np.ndarray):
    """Why an (H, W, 3) float32 image looks like a diagram rather than a sky photograph, or None."""
    q = np.round(rgb * 255).astype(np.int16)
    y = luminance(rgb)
    lit = y[1:, 1:] > DARK
    if lit.any():
        same = np.all(q[1:, 1:] == q[1:, :-1], axis=2) & np.all(q[1:, 1:] == q[:-1, 1:], axis=2)
        flat = float(same[lit].mean())
        if flat > MAX_FLAT_FRACTION:
            return f"looks like a drawing: {flat:.0%} of lit pixels equal their left and upper neighbours"
    white = float((y > 0.95).mean())
    if white > MAX_WHITE_FRACTION:
        return f"looks like a diagram: {white:.0%} of pixels are white"
    return None


def read_filter(path) -> set:
    """File names to exclude, one per line; blank lines and '#' comments ignored."""
    names = set()
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(line)
    return names


def prepare(src, dst, scale, size=GT_SIZE, val_fraction=VAL_FRACTION, seed=0, exclude=(), force=False):
    """Build the dataset; returns the manifest dict. Raises ValueError for unusable arguments."""
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise ValueError(f"{src}: not a directory")
    if dst.exists() and not force:
        raise ValueError(f"{dst}: already exists (use --force to replace it)")
    if size < 2 * scale:
        raise ValueError(f"--size {size} is too small for scale {scale}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dst.parent, prefix=f".tmp-{dst.name}-"))
    os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it private; the dataset is not
    manifest = {"source_dir": str(src), "scale": scale, "size": size, "val_fraction": val_fraction,
                "seed": seed, "lr": "srcnn_np.eval.degrade.make_lr (Pillow bicubic, antialiased)",
                "images": [], "excluded": []}
    try:
        for split in ("train", "val"):
            for kind in ("hr", "lr"):
                (tmp / split / kind).mkdir(parents=True)
        for path in image_files(src):
            raw = path.read_bytes()
            record = {"source": path.name, "sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw)}
            if path.name in exclude:
                manifest["excluded"].append({**record, "reason": "in the filter list"})
                continue
            try:
                rgb = load_rgb(path)
            except ValueError as e:
                manifest["excluded"].append({**record, "reason": str(e)})
                continue
            reason = illustration_reason(rgb)
            if reason is None and min(rgb.shape[:2]) < 4 * scale:
                reason = f"too small ({rgb.shape[1]}x{rgb.shape[0]})"
            if reason:
                manifest["excluded"].append({**record, "reason": reason})
                continue
            hr = make_ground_truth(rgb, scale, size)
            lr = make_lr(hr, scale)
            split = split_of(path.name, val_fraction, seed)
            out_name = path.stem + ".png"
            write_image(tmp / split / "hr" / out_name, hr, "png")
            write_image(tmp / split / "lr" / out_name, lr, "png")
            manifest["images"].append({**record, "source_size": [rgb.shape[1], rgb.shape[0]], "split": split,
                                       "hr": f"{split}/hr/{out_name}", "hr_size": [hr.shape[1], hr.shape[0]],
                                       "lr": f"{split}/lr/{out_name}", "lr_size": [lr.shape[1], lr.shape[0]],
                                       "enlarged": False})
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if dst.exists():
            shutil.rmtree(dst)
        os.replace(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="directory of source images")
    p.add_argument("dst", help="dataset directory to create")
    p.add_argument("--scale", type=int, default=2, choices=(2, 3, 4))
    p.add_argument("--size", type=int, default=GT_SIZE, help="ground-truth side (images are never enlarged)")
    p.add_argument("--val-fraction", type=float, default=VAL_FRACTION)
    p.add_argument("--seed", type=int, default=0, help="salts the file-name hash of the split")
    p.add_argument("--exclude", metavar="FILE", help="file names to exclude, one per line")
    p.add_argument("--force", action="store_true", help="replace DST if it exists")
    args = p.parse_args(argv)
    try:
        exclude = read_filter(args.exclude) if args.exclude else set()
        m = prepare(args.src, args.dst, args.scale, args.size, args.val_fraction, args.seed, exclude, args.force)
    except (ValueError, OSError) as e:
        print(f"prepare_dataset: error: {e}", file=sys.stderr)
        return 2
    n_val = sum(r["split"] == "val" for r in m["images"])
    print(f"{args.dst}: {len(m['images']) - n_val} train, {n_val} val, {len(m['excluded'])} excluded")
    for r in m["excluded"]:
        print(f"  excluded {r['source']}: {r['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
