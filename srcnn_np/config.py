"""The package's version, Numba compilation flags for every CPU kernel, and size limits, defined once.

fastmath: we allow reassociation and contraction (so reductions vectorize and multiply-adds fuse)
but not 'nnan'/'ninf': NaN and inf must still propagate, the way torch's kernels do.
"""
__version__ = "0.1.0"  # written into every output's provenance (model.Upscaler.provenance)

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

# Options for every @njit kernel: cached on disk so a fresh process does not recompile; no C-callable
# wrapper (the kernels are called from Python or from each other: it would only add compile time).
JIT_OPTIONS = dict(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy", no_cfunc_wrapper=True)

# Inputs larger than this many pixels are refused before decoding (the CLI's --max-pixels).
MAX_PIXELS_DEFAULT = 200_000_000

# Upscaled pixels the before/after viewer embeds by default (compare --max-pixels).
MAX_VIEW_PIXELS = 2048 * 2048
