"""srcnn_np: torch-free SRCNN super-resolution for astronomical images (NumPy + Numba)."""
from .config import __version__
from .options import ScienceOptions
from .weights import FORMAT_VERSION, Weights, WeightsError, load_weights, save_weights

MODEL_NAMES = ("Upscaler", "upscale", "srcnn_forward", "KernelWeights")  # from .model, imported on first use: it imports Numba


def __getattr__(name):
    if name in MODEL_NAMES:
        from . import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def bicubic_upsample(img2d, scale: int):
    """(H, W) float32 -> (scale*H, scale*W) float32, torch's bicubic with align_corners=False."""
    from .model import bicubic

    return bicubic(img2d, scale)


def set_num_threads(n: int) -> None:
    """Threads the Numba kernels use (default: all cores)."""
    import numba

    numba.set_num_threads(n)


__all__ = ["__version__", "Upscaler", "ScienceOptions", "upscale", "srcnn_forward", "bicubic_upsample", "load_weights", "save_weights",
           "Weights", "KernelWeights", "WeightsError", "FORMAT_VERSION", "set_num_threads"]
