from dataclasses import replace

import numpy as np
import pytest

from srcnn_np.batch import BatchOptions, run_file
from srcnn_np.model import Upscaler, bicubic, resolve_weights
from srcnn_np.options import ScienceOptions
from srcnn_np.weights import CONV_SHAPES, Weights

# The parity tolerance between torch and srcnn_np, float32 end to end (issue 2).
PARITY_TOL = 1e-4
BICUBIC_TOL = 1e-5


def random_weights(seed: int = 0, scale: int = 2) -> Weights:
    """Weights drawn like torch's default Conv2d init (uniform, +-1/sqrt(fan_in)), fixed seed."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, shape in CONV_SHAPES.items():
        fan_in = int(np.prod(CONV_SHAPES[name.replace("bias", "weight")][1:]))
        bound = 1.0 / np.sqrt(fan_in)
        arrays[name] = rng.uniform(-bound, bound, shape).astype(np.float32)
    return Weights.from_arrays(arrays, scale, {"note": f"random, seed {seed}"})


@pytest.fixture
def weights():
    return random_weights(0)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A weights file of random_weights(9) at x2, for tests that go through files and the CLI."""
    from srcnn_np.weights import save_weights

    path = tmp_path_factory.mktemp("weights") / "random.npz"
    save_weights(path, random_weights(9).arrays(), scale=2, meta={"note": "random weights for tests"})
    return str(path)


def sky(h, w, c=None, dtype=np.uint8, seed=0):
    """A sparse, star-field-like random image (H, W[, C]) of an unsigned integer dtype."""
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    shape = (h, w) if c is None else (h, w, c)
    return (rng.random(shape) ** 4 * top).astype(dtype)


def save_png(path, array: np.ndarray) -> None:
    """Write (H, W[, C]) uint8 | uint16 pixels to the file `path` with the package's PNG writer."""
    from srcnn_np.io.png import write_png

    with open(path, "wb") as f:
        write_png(f, array, compression=6)


@pytest.fixture(scope="session")
def hubble_gray():
    """scikit-image's Hubble Deep Field, as (H, W) float32 gray in [0, 1]."""
    data = pytest.importorskip("skimage.data")  # absent in the torch-free floor environment

    rgb = data.hubble_deep_field().astype(np.float32) / 255
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def pytest_terminal_summary(terminalreporter):
    """Print the worst differences the parity checks saw (the numbers a resolving note quotes)."""
    from .checks import WORST_ERRORS

    if WORST_ERRORS:
        terminalreporter.section("worst differences seen")
        for key, value in sorted(WORST_ERRORS.items()):
            terminalreporter.write_line(f"{key}: {value:.3e}")


class BicubicUpscaler(Upscaler):
    """An Upscaler whose network is plain bicubic: the package's route (batch.run_file, science
    mapping, header rescaling, writers) with an exact, known network."""

    def network(self, on_tile=None):
        return lambda plane: bicubic(plane, self.scale)


def bicubic_upscaler(scale: int, **choices) -> BicubicUpscaler:
    return BicubicUpscaler(resolve_weights(None, scale), label="bicubic", **choices)


def upscale_fits(src, dst, upscaler: Upscaler, *, method: str | None = None, hdu=None, overwrite: bool = False,
                 quantize_level: float = 0.0, **science) -> str:
    """`src` -> `dst` through batch.run_file with `upscaler` and the science options given
    (options.ScienceOptions fields); method: the weights' label in the provenance."""
    upscaler = replace(upscaler, science=ScienceOptions(**science), label=method or upscaler.label)
    options = BatchOptions(hdu=hdu, overwrite=overwrite, quantize_level=quantize_level, quiet=True)
    return run_file(src, dst, upscaler, options)


# What model.Upscaler.provenance gives a header: {KEYWORD: (value, comment)}
TEST_PROVENANCE = {"SRCNNVER": ("test", "srcnn_np version"), "SRCNNSCL": (2, "upscaling factor")}
