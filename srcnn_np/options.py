"""The option vocabulary, written once: every choice a caller makes and its default.

Function signatures (model, science, chunked) and the CLI's choices both read these names, so a
new choice is one edit here. Numba-free, importing only numpy: any module may import it.
"""
from dataclasses import dataclass

import numpy as np

MODES = ("rgb", "y")  # rgb: every colour channel through the net; y: BT.601 luminance only
DEVICES = ("cpu", "cuda", "auto")  # auto: the GPU when one is usable, else the CPU
# How the network meets the image's border. The network zero-pads each conv (as torch does),
# which the 9-5-5 net turns into artifacts up to HALO output pixels deep wherever the image is
# not dark at its edge (on star fields with sky: 6 to 100 sky sigmas at x2 to x4, `evaluate
# --stars`). "replicate" (default) extends the input by geometry.edge_margin(scale) pixels that
# repeat its edge pixels, runs the network and crops: bicubic itself clamps at the border the same
# way, so only the zero padding is kept out. "zero": the network as torch runs it on the image.
EDGES = ("replicate", "zero")
STRETCHES = ("linear", "asinh")  # the map from a plane's physical range onto the network's [0, 1]
FLUX_UNITS = ("surface", "total")  # pixel values per unit area, or per pixel (counts)

DEFAULT_MODE, DEFAULT_DEVICE, DEFAULT_EDGES = "rgb", "cpu", "replicate"
DEFAULT_STRETCH, DEFAULT_FLUX_UNITS = "linear", "surface"


def check_choice(name: str, value, choices: tuple) -> None:
    """ValueError (one line) unless value is one of choices."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def in_unit_range(a) -> bool:
    """Whether float data is what the network takes as it is: every value finite and within [0, 1].

    The rule for float arrays at every entry (srcnn_np.upscale, srcnn_np.chunked, the viewer,
    evaluate, the writers): data that is not is in physical units; it is never clipped, but mapped
    into [0, 1] by its finite range and back (srcnn_np.science), or refused with one line.
    """
    a = np.asarray(a)
    return bool(a.size == 0 or (np.isfinite(a).all() and a.min() >= 0 and a.max() <= 1))


@dataclass(frozen=True)
class ScienceOptions:
    """How data in physical units (FITS, float TIFF, float arrays outside [0, 1]) goes through the
    network and comes back: see srcnn_np.science.

    stretch: linear or asinh map of each plane's finite range onto [0, 1].
    conserve_flux: shift each s x s output block so it averages (surface) or sums (total) exactly
        to its input pixel.
    flux_units: "surface" keeps values per unit area; "total" divides the output by s * s.
    """

    stretch: str = DEFAULT_STRETCH
    conserve_flux: bool = False
    flux_units: str = DEFAULT_FLUX_UNITS

    def __post_init__(self):
        check_choice("stretch", self.stretch, STRETCHES)
        check_choice("flux_units", self.flux_units, FLUX_UNITS)
