"""Training data for reference/train.py: image sources, the train/validation split, patch sampling.

NumPy + Pillow only (no torch), so tools/prepare_dataset.py shares the same rules:

    ground truth  (H, W, 3) float32 RGB in [0, 1], H, W <= GT_SIZE, multiples of the scale,
                  made by centre-cropping to a square and downscaling; never enlarged
    LR input      srcnn_np.eval.degrade.make_lr(ground truth, scale): antialiased bicubic downscale,
                  exactly what `python -m srcnn_np evaluate` feeds the model
    training pair (Y channel) LR patch (p, p) float32 and HR patch (s*p, s*p) float32
"""
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from srcnn_np.color import luminance
from srcnn_np.eval.degrade import load_rgb, make_lr, modcrop, resize

GT_SIZE = 256
VAL_FRACTION = 0.2
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")

# Natural images shipped inside package wheels (no download): scikit-image's, plus photographs
# from scikit-learn (china, flower), PyWavelets (aero, ascent) and matplotlib (grace_hopper),
# which the reference extra installs. The general model's >= 2 dB check uses the held-out ones,
# which pre-training never sees.
NATURAL_TRAIN = ("astronaut", "camera", "coffee", "coins", "grass", "gravel", "brick",
                 "immunohistochemistry", "retina", "cell", "page", "text", "microaneurysms",
                 "stereo_motorcycle", "china", "flower", "aero", "ascent", "grace_hopper")
# Ground-truth sides the general stage trains on besides full resolution (GT_SIZE is the dataset
# protocol; 384 adds a scale in between)
NATURAL_GT_SIZES = (GT_SIZE, 384)
NATURAL_HELD_OUT = ("chelsea", "rocket", "clock")
# scikit-image's astronomical images, used for fine-tuning only
SKIMAGE_ASTRO = ("hubble_deep_field", "moon")


def release_group(name: str) -> str:
    """The press-release id of an archive file name: 'heic0206a.png' -> 'heic0206'.

    Images of one release (a, b, c, ...) often show the same object, so they share a split.
    """
    stem = Path(name).stem
    m = re.fullmatch(r"(.*\d)[a-z]", stem)
    return m.group(1) if m else stem


def split_of(name: str, val_fraction: float = VAL_FRACTION, seed: int = 0) -> str:
    """'train' or 'val' for a file name, fixed by a hash of seed and release_group(name), so
    the split depends neither on file order nor on RNG state, and related images stay together."""
    key = f"{seed}/{release_group(name)}".encode()
    h = int.from_bytes(hashlib.sha256(key).digest()[:8], "big")
    return "val" if h / 2 ** 64 < val_fraction else "train"


def make_ground_truth(rgb: np.ndarray, scale: int, size: int = GT_SIZE) -> np.ndarray:
    """(H, W, 3) float32 -> (g, g, 3) float32 ground truth, g <= size, g % scale == 0.

    Centre-crops to a square, downscales (antialiased bicubic) when larger than `size`, keeps the
    image's own size when smaller: a ground truth is never made by enlarging an image.
    """
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = rgb[top:top + side, left:left + side]
    if side > size:
        square = resize(square, (size, size))
    return modcrop(np.clip(square, 0.0, 1.0), scale)


def _skimage(name: str):
    import skimage.data

    a = getattr(skimage.data, name)()
    return a[0] if name == "stereo_motorcycle" else a  # (left, right, disparity): the left view


def _sklearn(file: str):
    from sklearn.datasets import load_sample_image

    return load_sample_image(file)


def _pywt(name: str):
    import pywt.data

    return getattr(pywt.data, name)()


def _matplotlib(file: str):
    from matplotlib.cbook import get_sample_data
    from PIL import Image

    with get_sample_data(file) as f:
        return Image.open(f).convert("RGB")


# images that are not scikit-image's: name -> loader returning (H, W[, C]) uint8
OTHER_PACKAGE_IMAGES = {
    "china": lambda: _sklearn("china.jpg"),
    "flower": lambda: _sklearn("flower.jpg"),
    "aero": lambda: _pywt("aero"),
    "ascent": lambda: _pywt("ascent"),
    "grace_hopper": lambda: _matplotlib("grace_hopper.jpg"),
}


def natural_rgb(name: str) -> np.ndarray:
    """A bundled image (scikit-image's or OTHER_PACKAGE_IMAGES) as (H, W, 3) float32 RGB in [0, 1]
    (alpha dropped). A missing package raises ImportError naming the extra that installs it."""
    try:
        a = np.asarray(OTHER_PACKAGE_IMAGES.get(name, lambda: _skimage(name))())
    except ImportError as e:
        raise ImportError(f"training image {name!r} needs {e.name}: pip install -e '.[reference]'") from e
    a = a.astype(np.float32) / (255.0 if a.dtype == np.uint8 else 1.0)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    return np.ascontiguousarray(a[:, :, :3])


def image_files(directory) -> list:
    """Image files directly in `directory`, sorted by name."""
    return sorted(p for p in Path(directory).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


@dataclass
class TrainImage:
    """One ground truth as the trainer uses it: Y channel HR and its LR, both (H, W) float32."""

    name: str
    hr: np.ndarray  # (s*h, s*w) float32 Y
    lr: np.ndarray  # (h, w) float32 Y, make_lr of hr


def train_image(name: str, rgb: np.ndarray, scale: int) -> TrainImage:
    """Ground truth RGB (H, W, 3), H and W multiples of scale -> Y-channel training pair."""
    hr = np.ascontiguousarray(luminance(modcrop(rgb, scale)), dtype=np.float32)
    return TrainImage(name, hr, make_lr(hr, scale))


def natural_images(scale: int, names=NATURAL_TRAIN, size=None) -> list:
    """Bundled images (natural_rgb) as TrainImages: full resolution (size=None, named 'camera'), or as
    make_ground_truth(size) makes them (named 'camera@256'), the dataset protocol."""
    out = []
    for n in names:
        rgb = natural_rgb(n)
        if size:
            out.append(train_image(f"{n}@{size}", make_ground_truth(rgb, scale, size), scale))
        else:
            out.append(train_image(n, modcrop(rgb, scale), scale))
    return out


def astro_dir_images(directory, scale: int, split: str) -> list:
    """Ground truths (make_ground_truth) of the images in `directory` whose split_of is `split`."""
    out = []
    for p in image_files(directory):
        if split_of(p.name) == split:
            out.append(train_image(p.name, make_ground_truth(load_rgb(p), scale), scale))
    return out


class PatchSampler:
    """Random aligned LR/HR patch pairs with random flips and 90-degree rotations.

    Every image is equally likely to supply a patch, whatever its size (one huge image must not
    drown the rest). A batch is
    (lr (n, p, p) float32, hr (n, s*p, s*p) float32); the LR patch is cropped from the LR of
    the whole image, so patch edges hold real image content, as at inference.
    """

    def __init__(self, images: list, scale: int, lr_patch: int, rng: np.random.Generator):
        self.images = [im for im in images if min(im.lr.shape) >= lr_patch]
        if not self.images:
            raise ValueError(f"no training image has an LR side >= {lr_patch}")
        self.scale, self.p, self.rng = scale, lr_patch, rng

    def batch(self, n: int):
        s, p, rng = self.scale, self.p, self.rng
        lr = np.empty((n, p, p), dtype=np.float32)
        hr = np.empty((n, s * p, s * p), dtype=np.float32)
        for k, i in enumerate(rng.integers(0, len(self.images), size=n)):
            im = self.images[i]
            y = int(rng.integers(0, im.lr.shape[0] - p + 1))
            x = int(rng.integers(0, im.lr.shape[1] - p + 1))
            a = im.lr[y:y + p, x:x + p]
            b = im.hr[s * y:s * (y + p), s * x:s * (x + p)]
            rot, flip = int(rng.integers(4)), bool(rng.integers(2))
            a, b = np.rot90(a, rot), np.rot90(b, rot)
            if flip:
                a, b = a[:, ::-1], b[:, ::-1]
            lr[k], hr[k] = a, b
        return lr, hr
