"""The degradation of the super-resolution protocol: ground truth -> the low-resolution input.

`python -m srcnn_np evaluate` scores the model on exactly these inputs, and reference/data.py and
tools/prepare_dataset.py build the training pairs with the same functions, so the model is trained
on the degradation it is evaluated on:

    load_rgb    an image file -> (H, W, 3) float32 RGB in [0, 1]
    modcrop     crop to multiples of the scale
    make_lr     (H, W[, C]) -> (H/s, W/s[, C]) float32, antialiased bicubic (Pillow, float 'F' mode)
    bicubic_rgb the plain bicubic baseline back up, per channel

NumPy and Pillow only; the network's module (Numba) is imported inside the functions that need it.
"""
import numpy as np
from PIL import Image

from ..io.formats import FORMATS
from ..io.imageio import read_image

# Extensions of the files load_rgb reads: the photographic formats (XISF and FITS hold science data)
EXTENSIONS = tuple(ext for name in ("png", "jpeg", "tiff") for ext in FORMATS[name].extensions)


def load_rgb(path) -> np.ndarray:
    """An image file -> (H, W, 3) float32 RGB in [0, 1]; alpha dropped, gray replicated.

    Float data outside [0, 1] (a float TIFF in physical units) is mapped onto [0, 1] channel by
    channel as srcnn_np.upscale maps it for the network (in_network_range), never clipped.
    Raises imageio.ImageIOError (a ValueError) naming the file when it cannot be read, ValueError
    for float data with NaN/inf pixels (a ground truth needs every pixel).
    """
    from ..model import to_float01  # here, not at the top: `srcnn-np --help` does not import Numba

    pixels = read_image(path).pixels
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    colour = pixels[:, :, :1] if pixels.shape[2] <= 2 else pixels[:, :, :3]
    colour = in_network_range(colour, path) if colour.dtype.kind == "f" else to_float01(colour)
    if colour.shape[2] == 1:
        colour = np.repeat(colour, 3, axis=2)
    return np.ascontiguousarray(colour)


def in_network_range(colour: np.ndarray, path) -> np.ndarray:
    """(H, W, C) float data -> (H, W, C) float32 in [0, 1] as the network sees it in srcnn_np.upscale:
    unchanged when within [0, 1], else each channel mapped linearly from its range
    (science.channel_ranges). ValueError naming the file when a pixel is NaN or inf."""
    from ..science import channel_ranges, plane_to_unit

    if not np.isfinite(colour).all():
        raise ValueError(f"{path}: NaN or inf pixels: a ground truth needs a value at every pixel")
    ranges = channel_ranges(colour.min(axis=(0, 1)), colour.max(axis=(0, 1)))
    return np.stack([plane_to_unit(colour[:, :, c], data_range=r).unit for c, r in enumerate(ranges)], axis=2)


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """(H, W, ...) -> (H - H % scale, W - W % scale, ...), cropping the bottom and right edges."""
    h, w = image.shape[0] - image.shape[0] % scale, image.shape[1] - image.shape[1] % scale
    return image[:h, :w]


def resize(image: np.ndarray, shape: tuple) -> np.ndarray:
    """(H, W) or (H, W, C) float32 -> (h, w) or (h, w, C) float32, Pillow bicubic.

    Pillow widens the bicubic kernel by the reduction factor when downscaling (antialiasing).
    """
    h, w = shape
    a = np.asarray(image, dtype=np.float32)
    planes = a[:, :, None] if a.ndim == 2 else a
    out = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(planes[:, :, c]))
                               .resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)
                    for c in range(planes.shape[2])], axis=2)
    return out[:, :, 0] if a.ndim == 2 else out


def make_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """The low-resolution input of a ground truth: (H, W[, C]) -> (H/s, W/s[, C]) float32.

    H and W must be multiples of `scale` (see modcrop).
    """
    if hr.shape[0] % scale or hr.shape[1] % scale:
        raise ValueError(f"ground truth shape {hr.shape[:2]} is not a multiple of scale {scale}")
    return resize(hr, (hr.shape[0] // scale, hr.shape[1] // scale))


def bicubic_rgb(lr: np.ndarray, scale: int) -> np.ndarray:
    """(h, w, 3) float32 -> (s*h, s*w, 3) float32, plain bicubic per channel, clipped to [0, 1]."""
    from ..model import bicubic

    up = np.stack([bicubic(lr[:, :, c], scale) for c in range(lr.shape[2])], axis=2)
    return np.clip(up, 0.0, 1.0)
