"""Dask: images larger than memory, chunk by chunk (the documented successor of srcnn_np.dask).

`upscale` maps an Upscaler (srcnn_np.model) over a dask.array with `map_overlap`:

    dask.array (H, W[, C])                       chunks (cy, cx[, C])
    -> every block grown by `overlap_depth(s)` input pixels of its neighbours (boundary "none":
       nothing is added at the image's own borders)
    -> the Upscaler on the grown block
    -> the s * depth output pixels on each grown side cropped away
    -> dask.array (sH, sW[, C]) float32            chunks (s cy, s cx[, C])

Why that depth: an output pixel depends on the upsampled image within HALO output pixels
(the 9x9, 5x5, 5x5 convs), and an upsampled pixel on the input within 2 pixels (bicubic taps), so
on the input within about HALO / s + 2 pixels (exactly: `overlap_depth`). A grown block's outer
edge is wrong only where the convs' zero padding and the bicubic clamp reach, which the crop
removes; a block edge that is the image's border is not grown, so there the network sees the same
padding and clamp as the whole image. The result equals the in-memory `srcnn_np.upscale` (to
float rounding, tested <= 1e-5) for any chunking: axes whose chunks are smaller than the depth
are rechunked first.

Data in physical units (srcnn_np.science) is mapped onto [0, 1] with the finite min/max of the
WHOLE array (one cheap reduction pass, never per chunk) and passed to every block as its
data_ranges; blank pixels are filled locally (so blocks grow by science.FILL_ROUNDS more pixels)
and come back NaN. `upscale_science` does that for one (H, W) science plane.

Out of core: `upscale_file` reads a Zarr array or FITS HDU lazily (srcnn_np.io.zarr_io.open_array)
and writes Zarr chunk by chunk (write_zarr) or FITS, for the CLI (`upscale big.fits -o big.zarr`).
Batches of files on a cluster: srcnn_np.cluster.

dask[array], distributed and zarr are an optional extra: pip install "srcnn_np[dask]"; they are
imported inside the functions.
"""
import math
import os
from functools import partial

import numpy as np

from .errors import exists
from .cluster import one_kernel_thread
from .geometry import HALO
from .io.zarr_io import DaskIOError, dask_array, is_zarr, open_array, write_zarr
from .model import Upscaler
from .options import DEFAULT_EDGES, DEFAULT_FLUX_UNITS, DEFAULT_MODE, DEFAULT_STRETCH, ScienceOptions
from .progress import Progress
from .science import FILL_ROUNDS, BlankImageError, channel_ranges


def overlap_depth(scale: int) -> int:
    """Input pixels each block needs from its neighbours at `scale`: 6 at x2, 4 at x3 and x4.

    At a grown block's edge the bicubic clamps: the first ceil(1.5 s - 0.5) = 3s // 2 upsampled
    pixels have a tap outside the block; the convs then spread that (and their own zero padding)
    HALO pixels further. The crop s * depth must cover HALO + 3s // 2 output pixels.
    """
    return math.ceil((HALO + 3 * scale // 2) / scale)


def _chunks_at_least(chunks: tuple, depth: int) -> tuple:
    """One axis's chunks merged so that every chunk holds >= depth pixels (or one chunk in all)."""
    if len(chunks) == 1 or min(chunks) >= depth:
        return chunks
    from dask.array.overlap import ensure_minimum_chunksize

    try:
        return ensure_minimum_chunksize(depth, chunks)
    except ValueError:  # the whole axis is shorter than the depth
        return (sum(chunks),)


def _prepared(array, depth: int):
    """(H, W[, C]) dask array rechunked for map_overlap: spatial chunks >= depth, channels whole.

    Returns (array, {axis: depth}) with depth 0 along an axis held in one chunk.
    """
    chunks = [_chunks_at_least(array.chunks[0], depth), _chunks_at_least(array.chunks[1], depth)]
    if array.ndim == 3:
        chunks.append((array.shape[2],))
    array = array.rechunk(tuple(chunks))
    depths = {axis: (depth if len(array.chunks[axis]) > 1 else 0) for axis in range(array.ndim)}
    return array, depths


def _crop_grown(out: np.ndarray, block_info: dict, depths: dict, scale: int) -> np.ndarray:
    """Crop from an (s h, s w, ...) block output the s * depth pixels of each side that was grown.

    A side is grown unless it is the image's border (boundary "none"); block_info[0] is the
    grown input's chunk grid, the same grid as the array before growing.
    """
    location, count = block_info[0]["chunk-location"], block_info[0]["num-chunks"]
    index = []
    for axis in (0, 1):
        before = scale * depths[axis] if location[axis] > 0 else 0
        after = scale * depths[axis] if location[axis] < count[axis] - 1 else 0
        index.append(slice(before, out.shape[axis] - after))
    return out[tuple(index)]


def as_upscaler(weights=None, *, scale: int = 2, mode: str = DEFAULT_MODE, tile: int | None = None,
                edges: str = DEFAULT_EDGES, stretch: str = DEFAULT_STRETCH, conserve_flux: bool = False,
                flux_units: str = DEFAULT_FLUX_UNITS) -> Upscaler:
    """An Upscaler given as `weights`, as it is (it carries every choice: the others are not used),
    or Upscaler.load(weights, ...) with these choices for weights None, a path, Weights or KernelWeights."""
    if isinstance(weights, Upscaler):
        return weights
    return Upscaler.load(weights, scale=scale, mode=mode, tile=tile, edges=edges,
                         science=ScienceOptions(stretch, conserve_flux, flux_units))


def _upscale_block(block, upscaler: Upscaler, depths: dict, data_ranges, out_dtype, block_info=None):
    """One grown (h, w[, C]) block -> its core's (s h, s w[, C]) output: the Upscaler on the block,
    data in physical units mapped with the whole image's data_ranges (None: the block is taken
    as it is); NaN where a mapped block is all blank."""
    s = upscaler.scale
    if data_ranges is not None and not np.isfinite(block).any():
        out = np.full((block.shape[0] * s, block.shape[1] * s) + block.shape[2:], np.nan, dtype=out_dtype)
    else:
        with one_kernel_thread():
            out = upscaler(block, data_ranges=data_ranges)
    return _crop_grown(out, block_info, depths, s).astype(out_dtype, copy=False)


def _map_blocks(array, upscaler: Upscaler, depth: int, data_ranges, out_dtype):
    """_upscale_block over every block of an (H, W[, C]) dask array grown by `depth` input pixels."""
    da = dask_array()
    array, depths = _prepared(array, depth)
    out_chunks = tuple(tuple(upscaler.scale * c for c in ax) for ax in array.chunks[:2]) + array.chunks[2:]
    return da.map_overlap(_upscale_block, array, depth=depths, boundary="none", trim=False,
                          chunks=out_chunks, dtype=out_dtype, meta=np.empty((0,) * array.ndim, out_dtype),
                          upscaler=upscaler, depths=depths, data_ranges=data_ranges, out_dtype=out_dtype)


def channel_data_ranges(array) -> list:
    """The (low, high) each colour channel of a float (H, W[, C]) dask array maps onto [0, 1]
    (science.channel_ranges), or None when the array is finite and within [0, 1] (taken as it is).
    One pass over the data. Raises BlankImageError when no value is finite."""
    import dask

    da = dask_array()
    colour = array[:, :, None] if array.ndim == 2 else array[:, :, : 1 if array.shape[2] <= 2 else 3]
    finite = da.where(da.isfinite(colour), colour, np.nan).astype(np.float64)
    lows, highs, all_finite = dask.compute(da.nanmin(finite, axis=(0, 1)), da.nanmax(finite, axis=(0, 1)),
                                           da.isfinite(array).all())
    if not np.isfinite(lows).any():
        raise BlankImageError("every pixel is NaN or inf: no finite range to map into the network's [0, 1]")
    if all_finite and lows.min() >= 0 and highs.max() <= 1:
        return None
    return channel_ranges(lows, highs)


def upscale(array, weights=None, *, mode: str = DEFAULT_MODE, scale: int = 2, tile: int | None = None,
            edges: str = DEFAULT_EDGES, stretch: str = DEFAULT_STRETCH, conserve_flux: bool = False,
            flux_units: str = DEFAULT_FLUX_UNITS):
    """Super-resolve a dask array chunk by chunk; equal to `srcnn_np.upscale` on the whole image.

    array: dask.array (H, W) or (H, W, C), uint8, uint16 or float, any chunking (spatial chunks
           smaller than overlap_depth(scale) are merged; channels become one chunk). Float data
           outside [0, 1] or with NaN/inf is mapped as the Upscaler maps it, with each channel's
           range over the WHOLE array (one pass over float data to find it).
    weights: an srcnn_np.model.Upscaler, used as it is (the other arguments are then not used),
    or None, a path, Weights or KernelWeights for Upscaler.load with mode, scale, tile, edges,
    stretch, conserve_flux, flux_units: as for srcnn_np.upscale (tile: the network's tile inside
    a block; edges: at the image's border, block edges inside the image are grown and cropped).
    Returns a lazy dask.array (sH, sW[, C]) float32 in [0, 1] (mapped data: in its own units,
    float64 for float64 input), chunks s times the (merged) input's.
    """
    da = dask_array()
    upscaler = as_upscaler(weights, scale=scale, mode=mode, tile=tile, edges=edges, stretch=stretch,
                           conserve_flux=conserve_flux, flux_units=flux_units)
    array = da.asarray(array)
    if array.ndim not in (2, 3) or min(array.shape[:2], default=0) < 1:
        raise ValueError(f"array must be (H, W) or (H, W, C) with H, W >= 1, got shape {array.shape}")
    if array.ndim == 3 and array.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"array must have 1 to 4 channels, got {array.shape[2]}")
    # None for pixel levels and float data within [0, 1]: every block then maps (science options)
    # from [0, 1] as the whole image does
    data_ranges = channel_data_ranges(array) if array.dtype.kind == "f" else None
    if data_ranges is None:
        return _map_blocks(array, upscaler, overlap_depth(upscaler.scale), None, np.float32)
    out_dtype = np.float64 if array.dtype == np.float64 else np.float32
    # blank filling looks FILL_ROUNDS pixels further than the network
    return _map_blocks(array, upscaler, overlap_depth(upscaler.scale) + FILL_ROUNDS, data_ranges, out_dtype)


def finite_range(array) -> tuple[float, float]:
    """(min, max) of the finite values of a dask array, in one pass over it (float64).

    Raises BlankImageError when no value is finite.
    """
    import dask

    da = dask_array()
    finite = da.where(da.isfinite(array), array, np.nan).astype(np.float64)
    low, high = dask.compute(da.nanmin(finite), da.nanmax(finite))
    if not np.isfinite(low):
        raise BlankImageError("every pixel is blank (NaN or inf): nothing to upscale")
    return float(low), float(high)


def upscale_science(array, weights=None, *, scale: int = 2, conserve_flux: bool = False,
                    flux_units: str = DEFAULT_FLUX_UNITS, stretch: str = DEFAULT_STRETCH, tile: int | None = None,
                    edges: str = DEFAULT_EDGES, data_range: tuple[float, float] | None = None):
    """Upscale an (H, W) science plane in physical units; equal to Upscaler.science_data on the
    whole plane (srcnn_np.science.upscale_science).

    array: dask.array (H, W), any real dtype, NaN/inf for blank pixels, any chunking.
    weights: an Upscaler, used as it is (its science options apply), or weights for Upscaler.load
        with scale, conserve_flux, flux_units, stretch (as for srcnn_np.science.upscale_science),
        tile, edges (as for srcnn_np.upscale).
    data_range: the plane's finite (min, max) if already known; None computes it (finite_range,
        one pass over the data).
    Returns a lazy dask.array (sH, sW): float64 for float64 data, float32 otherwise, NaN over
    blank pixels' s x s blocks. Raises BlankImageError when every pixel is blank.
    """
    da = dask_array()
    upscaler = as_upscaler(weights, scale=scale, tile=tile, edges=edges, stretch=stretch,
                           conserve_flux=conserve_flux, flux_units=flux_units)
    array = da.asarray(array)
    if array.ndim != 2 or min(array.shape) < 1:
        raise ValueError(f"science data must be one (H, W) plane with H, W >= 1, got shape {array.shape}")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"unsupported data dtype {array.dtype}: use integer or float data")
    data_range = finite_range(array) if data_range is None else data_range
    out_dtype = np.float64 if array.dtype == np.float64 else np.float32
    if array.dtype.kind != "f":  # integers here are physical values, not uint8/uint16 pixel levels
        array = array.astype(np.float64)
    return _map_blocks(array, upscaler, overlap_depth(upscaler.scale) + FILL_ROUNDS, [data_range], out_dtype)


def compute(collection, *, client=None, progress: bool = False, label: str = "upscale", counter=None):
    """Compute a dask collection: on `client` (a dask.distributed Client) or here with threads.

    Here, dask runs one task per core (each block's kernels single-threaded), which keeps every
    core busy through reads and writes too. progress: a bar on stderr when it is a terminal
    (srcnn_np.progress here, counting tasks; distributed's own on a cluster). counter: instead of
    the bar here, a function (number of tasks) -> object with update() (after each task) and
    close(), e.g. srcnn_np.progress.JsonProgress.tiles; not used on a cluster.
    Interrupted (Ctrl-C, SIGTERM), it returns only once no task runs any more here (on a cluster:
    once the tasks are cancelled), so the caller can remove what they were writing into.
    """
    import dask

    if client is not None:
        future = client.compute(collection)
        try:
            if progress:
                from distributed import progress as cluster_progress

                cluster_progress(future)
            return future.result()
        except BaseException:
            client.cancel(future)
            raise
    from concurrent.futures import ThreadPoolExecutor

    from dask.callbacks import Callback

    bar = None

    def start(dsk):
        nonlocal bar
        bar = counter(len(dsk)) if counter else Progress(len(dsk), label, enabled=None if progress else False)

    # a pool of our own: dask's shared one would run on after an interruption, tasks writing
    # into a Zarr store that write_zarr is removing
    pool = ThreadPoolExecutor(os.cpu_count() or 1)
    try:
        with Callback(start=start, posttask=lambda *_: bar.update()):
            result = dask.compute(collection, scheduler="threads", pool=pool)[0]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if bar is not None:
        bar.close()
    return result


def upscale_file(source, target, upscaler: Upscaler, *, hdu=None, overwrite: bool = False, client=None,
                 progress: bool = False, counter=None) -> tuple:
    """Upscale one science plane out of core: a Zarr array or FITS image HDU in, Zarr (or FITS) out.

    source: a .zarr array or a FITS file (HDU `hdu`, see srcnn_np.io.fits_io.read_fits), one (H, W)
        plane in physical units. target: a .zarr path (written chunk by chunk, never holding the
        image) or a .fits path (the result is gathered in memory: for sizes that fit).
    upscaler: the srcnn_np.model.Upscaler; the data go through `upscale_science` with its science
    options (global finite range, blanks NaN, optional flux conservation). A FITS source's header
    is rescaled and checked (srcnn_np.io.header.upscaled_header, with upscaler.provenance) and
    kept, in Zarr as the attribute "fits_header" (the header's 80-character cards, one string);
    Zarr attributes also hold "provenance" ({keyword: value}) and "srcnn_np" (its one-line history).
    client: a dask.distributed Client (the workers must see both paths), or None for this machine.
    progress, counter: see compute.
    Returns (input shape, output shape). Raises DaskIOError / FitsError with one line naming the file.
    """
    from .io.fits_io import write_fits
    from .io.formats import format_of
    from .io.header import HeaderError, provenance_history, upscaled_header

    source, target = os.fspath(source), os.fspath(target)
    if not (is_zarr(target) or format_of(target) == "fits"):
        raise DaskIOError(f"{target}: the output must be a .zarr store or a FITS file")
    if os.path.lexists(target) and not overwrite:
        raise DaskIOError(exists(target))
    array, header = open_array(source, hdu)
    if array.ndim != 2:
        raise DaskIOError(f"{source}: holds a {array.ndim}-axis array {array.shape}; out-of-core "
                          "upscaling takes one (H, W) plane")
    try:
        result = upscale_science(array, upscaler)
    except BlankImageError as e:
        raise DaskIOError(f"{source}: {e}") from None
    provenance = upscaler.provenance(source)
    new_header = None
    if header is not None:
        try:
            new_header = upscaled_header(header, upscaler.scale, provenance, image_size=array.shape[::-1])
        except HeaderError as e:
            raise DaskIOError(f"{source}: {e}") from None
    run = partial(compute, client=client, progress=progress, label=os.path.basename(target), counter=counter)
    if is_zarr(target):
        attrs = {"srcnn_np": provenance_history(provenance),
                 "provenance": {key: value for key, (value, _) in provenance.items()}}
        if new_header is not None:
            attrs["fits_header"] = new_header.tostring()
        write_zarr(result, target, attrs=attrs, overwrite=overwrite, compute=run)
    else:
        write_fits(target, run(result), new_header, overwrite=overwrite)
    return array.shape, result.shape
