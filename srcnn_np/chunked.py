"""Dask: images larger than memory, chunk by chunk, and batches of files on a cluster.

`upscale` maps the network over a dask.array with `map_overlap`:

    dask.array (H, W[, C])                       chunks (cy, cx[, C])
    -> every block grown by `overlap_depth(s)` input pixels of its neighbours (boundary "none":
       nothing is added at the image's own borders)
    -> srcnn_np.model.upscale on the grown block
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

`upscale_science` does the same for science planes in physical units (srcnn_np.science): the
linear/asinh map onto [0, 1] uses the finite min/max of the WHOLE array (one cheap reduction
pass, never per chunk), blank pixels are filled locally (so blocks grow by science.FILL_ROUNDS
more pixels) and come back NaN.

Out of core: `open_array` reads a Zarr array or a FITS image HDU lazily, chunk by chunk (FITS
through astropy's ImageHDU.section, which seeks to the rows a chunk needs: unlike a memory map it
also works for BSCALE/BZERO-scaled data); `write_zarr` stores a result chunk by chunk into a new
Zarr array, atomically; `upscale_file` does both for the CLI (`upscale big.fits -o big.zarr`).
Batches: `run_on_cluster` sends one task per file to a dask.distributed scheduler.

dask[array], distributed and zarr are an optional extra: pip install "srcnn_np[dask]"; they are
imported inside the functions. Within this module `import dask` is the dask package (absolute
imports), not this module.
"""
import itertools
import math
import os
import shutil
import tempfile
import time
from contextlib import contextmanager

import numpy as np

from . import model
from .geometry import HALO
from .errors import one_line
from .io.atomic import remove_stale_temps
from .progress import Progress
from .science import FILL_ROUNDS, BlankImageError, channel_ranges, upscale_plane

DASK_HINT = 'Dask support needs dask, distributed and zarr: pip install "srcnn_np[dask]"'
# Input chunk side (pixels) used when a file is opened here: s^2 x 4 MiB float32 output per
# chunk, big enough that the grown margins (2 x depth) add little work.
INPUT_CHUNK = 1024
CONNECT_TIMEOUT_S = 10.0
IN_FLIGHT_PER_THREAD = 4  # batch tasks queued per worker thread: keeps workers busy, the scheduler small


class DaskIOError(ValueError):
    """An input that cannot be read or an output that cannot be written; the message is one line."""


def _dask_array():
    try:
        import dask.array as da
    except ImportError:
        raise ImportError(DASK_HINT) from None
    return da


def _zarr():
    try:
        import zarr
    except ImportError:
        raise ImportError(DASK_HINT) from None
    return zarr


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


@contextmanager
def _one_kernel_thread():
    """Run the Numba kernels single-threaded in this thread (numba's setting is per thread) and
    restore the setting after: dask runs one block per core, more threads would oversubscribe."""
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def _upscale_block(block, kw, mode, tile, edges, depths, block_info=None):
    """One grown (h, w[, C]) block -> its core's (s h, s w[, C]) float32 output."""
    with _one_kernel_thread():
        out = model.upscale(block, kw, mode=mode, scale=kw.scale, tile=tile, edges=edges)
    return _crop_grown(out, block_info, depths, kw.scale)


def _mapped_block(block, kw, mode, tile, edges, depths, data_ranges, stretch, conserve_flux, flux_units,
                  out_dtype, block_info=None):
    """One grown (h, w[, C]) block in physical units -> its core's (s h, s w[, C]) output:
    model.upscale_mapped on the block with the whole image's data_ranges; NaN where it is all blank."""
    s = kw.scale
    if not np.isfinite(block).any():
        out = np.full((block.shape[0] * s, block.shape[1] * s) + block.shape[2:], np.nan, dtype=out_dtype)
    else:
        with _one_kernel_thread():
            out = model.upscale_mapped(block, kw, mode=mode, scale=s, tile=tile, edges=edges, stretch=stretch,
                                       conserve_flux=conserve_flux, flux_units=flux_units, data_ranges=data_ranges)
    return _crop_grown(out, block_info, depths, s).astype(out_dtype)


def channel_data_ranges(array) -> list:
    """The (low, high) each colour channel of a float (H, W[, C]) dask array maps onto [0, 1]
    (science.channel_ranges), or None when the array is finite and within [0, 1] (taken as it is).
    One pass over the data. Raises BlankImageError when no value is finite."""
    import dask

    da = _dask_array()
    colour = array[:, :, None] if array.ndim == 2 else array[:, :, : 1 if array.shape[2] <= 2 else 3]
    finite = da.where(da.isfinite(colour), colour, np.nan).astype(np.float64)
    lows, highs, all_finite = dask.compute(da.nanmin(finite, axis=(0, 1)), da.nanmax(finite, axis=(0, 1)),
                                           da.isfinite(array).all())
    if not np.isfinite(lows).any():
        raise BlankImageError("every pixel is NaN or inf: no finite range to map into the network's [0, 1]")
    if all_finite and lows.min() >= 0 and highs.max() <= 1:
        return None
    return channel_ranges(lows, highs)


def upscale(array, weights=None, *, mode: str = "rgb", scale: int = 2, tile: int | None = None,
            edges: str = "replicate", stretch: str = "linear", conserve_flux: bool = False,
            flux_units: str = "surface"):
    """Super-resolve a dask array chunk by chunk; equal to `srcnn_np.upscale` on the whole image.

    array: dask.array (H, W) or (H, W, C), uint8, uint16 or float, any chunking (spatial chunks
           smaller than overlap_depth(scale) are merged; channels become one chunk). Float data
           outside [0, 1] or with NaN/inf is mapped as srcnn_np.upscale maps it (model.upscale_mapped),
           with each channel's range over the WHOLE array (one pass over float data to find it).
    weights, mode, scale, tile, edges, stretch, conserve_flux, flux_units: as for srcnn_np.upscale
    (tile: the network's tile inside a block; edges: at the image's border, block edges inside the
    image are grown and cropped).
    Returns a lazy dask.array (sH, sW[, C]) float32 in [0, 1] (mapped data: in its own units,
    float64 for float64 input), chunks s times the (merged) input's.
    """
    da = _dask_array()
    if mode not in model.MODES:
        raise ValueError(f"mode must be one of {model.MODES}, got {mode!r}")
    array = da.asarray(array)
    if array.ndim not in (2, 3) or min(array.shape[:2], default=0) < 1:
        raise ValueError(f"array must be (H, W) or (H, W, C) with H, W >= 1, got shape {array.shape}")
    if array.ndim == 3 and array.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"array must have 1 to 4 channels, got {array.shape[2]}")
    kw = model.resolve_weights(weights, scale)
    options = {"stretch": stretch, "conserve_flux": conserve_flux, "flux_units": flux_units}
    data_ranges = channel_data_ranges(array) if array.dtype.kind == "f" else None
    if data_ranges is None and not model.needs_mapping(np.empty(0, np.uint8), **options):  # the options alone
        array, depths = _prepared(array, overlap_depth(kw.scale))
        block_fn, out_dtype, extra = _upscale_block, np.float32, {}
    else:  # blank filling looks FILL_ROUNDS pixels further than the network
        array, depths = _prepared(array, overlap_depth(kw.scale) + FILL_ROUNDS)
        out_dtype = np.float64 if array.dtype == np.float64 else np.float32
        block_fn, extra = _mapped_block, dict(options, data_ranges=data_ranges, out_dtype=out_dtype)
    out_chunks = tuple(tuple(kw.scale * c for c in ax) for ax in array.chunks[:2]) + array.chunks[2:]
    return da.map_overlap(block_fn, array, depth=depths, boundary="none", trim=False,
                          chunks=out_chunks, dtype=out_dtype, meta=np.empty((0,) * array.ndim, out_dtype),
                          kw=kw, mode=mode, tile=tile, edges=edges, depths=depths, **extra)


def finite_range(array) -> tuple[float, float]:
    """(min, max) of the finite values of a dask array, in one pass over it (float64).

    Raises BlankImageError when no value is finite.
    """
    import dask

    da = _dask_array()
    finite = da.where(da.isfinite(array), array, np.nan).astype(np.float64)
    low, high = dask.compute(da.nanmin(finite), da.nanmax(finite))
    if not np.isfinite(low):
        raise BlankImageError("every pixel is blank (NaN or inf): nothing to upscale")
    return float(low), float(high)


def _science_block(block, kw, data_range, stretch, conserve_flux, flux_units, tile, edges, out_dtype, depths,
                   block_info=None):
    """One grown (h, w) block in physical units -> its core's (s h, s w) output.

    science.upscale_plane on the block, normalised with the whole plane's data_range.
    """
    s = kw.scale
    if not np.isfinite(block).any():
        out = np.full((block.shape[0] * s, block.shape[1] * s), np.nan)
    else:
        with _one_kernel_thread():
            out = upscale_plane(block, lambda a: model.upscale(a, kw, scale=s, tile=tile, edges=edges), s,
                                conserve_flux=conserve_flux, stretch=stretch, data_range=data_range)
    if flux_units == "total":
        out /= s * s
    return _crop_grown(out, block_info, depths, s).astype(out_dtype)


def upscale_science(array, weights=None, *, scale: int = 2, conserve_flux: bool = False,
                    flux_units: str = "surface", stretch: str = "linear", tile: int | None = None,
                    edges: str = "replicate", data_range: tuple[float, float] | None = None):
    """Upscale an (H, W) science plane in physical units; equal to srcnn_np.science.upscale_science
    with upscale_fn = srcnn_np.upscale on the whole plane.

    array: dask.array (H, W), any real dtype, NaN/inf for blank pixels, any chunking.
    conserve_flux, flux_units, stretch: as for srcnn_np.science.upscale_science; tile, edges: as
        for srcnn_np.upscale.
    data_range: the plane's finite (min, max) if already known; None computes it (finite_range,
        one pass over the data).
    Returns a lazy dask.array (sH, sW): float64 for float64 data, float32 otherwise, NaN over
    blank pixels' s x s blocks. Raises BlankImageError when every pixel is blank.
    """
    from .science import FLUX_UNITS, STRETCHES

    da = _dask_array()
    if flux_units not in FLUX_UNITS:
        raise ValueError(f"flux_units must be one of {FLUX_UNITS}, got {flux_units!r}")
    if stretch not in STRETCHES:
        raise ValueError(f"stretch must be one of {STRETCHES}, got {stretch!r}")
    array = da.asarray(array)
    if array.ndim != 2 or min(array.shape) < 1:
        raise ValueError(f"science data must be one (H, W) plane with H, W >= 1, got shape {array.shape}")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"unsupported data dtype {array.dtype}: use integer or float data")
    kw = model.resolve_weights(weights, scale)
    data_range = finite_range(array) if data_range is None else data_range
    out_dtype = np.float64 if array.dtype == np.float64 else np.float32
    # blank filling looks FILL_ROUNDS pixels further than the network
    array, depths = _prepared(array, overlap_depth(kw.scale) + FILL_ROUNDS)
    out_chunks = tuple(tuple(kw.scale * c for c in ax) for ax in array.chunks)
    return da.map_overlap(_science_block, array, depth=depths, boundary="none", trim=False,
                          chunks=out_chunks, dtype=out_dtype, meta=np.empty((0, 0), out_dtype),
                          kw=kw, data_range=data_range, stretch=stretch, conserve_flux=conserve_flux,
                          flux_units=flux_units, tile=tile, edges=edges, out_dtype=out_dtype, depths=depths)


class FitsSections:
    """A FITS image HDU read section by section (astropy's ImageHDU.section), for dask.array.from_array.

    Only the pixels a chunk needs are read; data are in physical units (BSCALE/BZERO applied by
    astropy; BLANK pixels of unscaled integer data become NaN, the chunks then float32), as
    srcnn_np.io.fits_io.read_fits returns them. Pickles as the path and HDU index (never the file),
    so dask.distributed workers open the file themselves: it must be on a filesystem they share.
    """

    def __init__(self, path, hdu=None):
        from .io.fits_io import FitsError, _astropy_fits, _select_hdu, check_fits_structure, physical_blank
        from .io.imageio import quiet_decoders

        fits = _astropy_fits()
        self.path = os.fspath(path)
        check_fits_structure(self.path)  # a hostile header cannot make astropy hang or over-allocate
        try:
            with quiet_decoders(), fits.open(self.path, memmap=False) as hdul:
                self.hdu_index, chosen = _select_hdu(hdul, hdu, self.path)
                self.header = chosen.header.copy()
                self.hdu_name = chosen.name
                self.shape = tuple(chosen.shape)
                corner = (slice(0, 1),) * len(self.shape)
                probe = np.asarray(chosen.section[corner]) if all(self.shape) else None
        except (FitsError, MemoryError):
            raise
        except Exception as e:  # noqa: BLE001 - astropy tripping over a damaged file
            raise DaskIOError(f"{self.path}: not a readable FITS file ({one_line(e)})") from None
        if probe is None or len(self.shape) < 2:
            raise DaskIOError(f"{self.path}: HDU {self.hdu_index} ({self.hdu_name}) holds no image "
                              "of 2 or more axes")
        self.blank = physical_blank(self.header, probe.dtype)
        self.dtype = np.dtype(np.float32) if self.blank is not None else probe.dtype.newbyteorder("=")
        self.ndim = len(self.shape)

    def __getitem__(self, key) -> np.ndarray:
        from .io.fits_io import _astropy_fits

        with _astropy_fits().open(self.path, memmap=False) as hdul:
            data = np.asarray(hdul[self.hdu_index].section[key])
        data = data.astype(data.dtype.newbyteorder("="), copy=False)
        if self.blank is not None:
            blank = data == self.blank
            data = data.astype(np.float32)
            data[blank] = np.nan
        return data

    def __dask_tokenize__(self):
        stat = os.stat(self.path)
        return (FitsSections, self.path, stat.st_mtime_ns, stat.st_size, self.hdu_index)


def is_zarr(path) -> bool:
    """True for a path that names a Zarr store (ends in .zarr)."""
    return os.fspath(path).rstrip("/\\").lower().endswith(".zarr")


def open_array(path, hdu=None, chunk: int | None = None):
    """A Zarr array or a FITS image HDU as a lazy dask.array, and its FITS header (None for Zarr).

    Zarr: the array at `path`, read in chunks that are whole multiples of its stored chunks, at
    least `chunk` (default INPUT_CHUNK) pixels a side. FITS: the HDU chosen as in srcnn_np.io.fits_io.read_fits, in
    chunk x chunk sections. Nothing is read but metadata until the array is computed.
    Raises DaskIOError (one line naming the file) when it cannot be opened.
    """
    da = _dask_array()
    path = os.fspath(path)
    chunk = INPUT_CHUNK if chunk is None else chunk
    if is_zarr(path):
        zarr = _zarr()
        try:
            stored = zarr.open_array(path, mode="r")
        except (OSError, ValueError, KeyError, TypeError) as e:  # zarr raises several kinds for a non-array
            raise DaskIOError(f"{path}: not a readable Zarr array ({type(e).__name__}: {e})") from None
        chunks = tuple(max(c, chunk // c * c) for c in stored.chunks)
        return da.from_zarr(stored, chunks=chunks), None
    sections = FitsSections(path, hdu)
    array = da.from_array(sections, chunks=(1,) * (sections.ndim - 2) + (chunk, chunk),
                          meta=np.empty((0,) * sections.ndim, sections.dtype))
    return array, sections.header


def _regular(array):
    """`array` rechunked where needed so every chunk but the last along each axis has one size
    (what a Zarr array stores)."""
    chunks = []
    for axis_chunks in array.chunks:
        size = max(axis_chunks)
        chunks.append(axis_chunks if all(c == size for c in axis_chunks[:-1]) else size)
    return array.rechunk(tuple(chunks))


def write_zarr(array, path, *, attrs: dict | None = None, overwrite: bool = False, client=None,
               progress: bool = False, counter=None) -> None:
    """Compute `array` chunk by chunk into a new Zarr array at `path`, atomically.

    The chunks are written as they are computed (only the chunks in flight are in memory), into
    a hidden temporary store beside `path` (".NAME.XXXXXXXX.tmp", as srcnn_np.io.atomic names temp
    files) that is renamed to `path` at the end; an existing `path` is refused unless
    overwrite=True. Temporary stores for `path` that a killed run left are removed first. attrs: JSON-able metadata stored with the array.
    client: a dask.distributed Client to compute on (its workers must reach `path`'s filesystem);
    None computes here with threads. progress, counter: see compute.
    """
    zarr = _zarr()
    started = time.time()
    path = os.path.abspath(os.fspath(path))
    if os.path.lexists(path) and not overwrite:
        raise DaskIOError(f"{path}: already exists (use --overwrite to replace it)")
    array = _regular(array)
    remove_stale_temps([path], started)
    try:
        tmp = tempfile.mkdtemp(dir=os.path.dirname(path), prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    except OSError as e:
        raise DaskIOError(f"{path}: cannot write ({e.strerror or e})") from None
    try:
        fill = np.nan if array.dtype.kind == "f" else 0
        target = zarr.open_array(tmp, mode="w", shape=array.shape, chunks=tuple(c[0] for c in array.chunks),
                                 dtype=array.dtype, fill_value=fill)
        if attrs:
            target.attrs.update(attrs)
        compute(array.store(target, lock=False, compute=False), client=client, progress=progress,
                label=os.path.basename(path), counter=counter)
        if os.path.lexists(path):  # overwrite: move the old one aside, then drop it
            old = tempfile.mkdtemp(dir=os.path.dirname(path), prefix=".old-")
            os.replace(path, os.path.join(old, "store"))
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            raise DaskIOError(f"{path}: cannot write ({e.strerror or e})") from None
        raise


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


def upscale_file(source, target, weights=None, *, scale: int = 2, hdu=None, conserve_flux: bool = False,
                 flux_units: str = "surface", stretch: str = "linear", tile: int | None = None,
                 edges: str = "replicate", overwrite: bool = False, client=None, progress: bool = False,
                 counter=None) -> tuple:
    """Upscale one science plane out of core: a Zarr array or FITS image HDU in, Zarr (or FITS) out.

    source: a .zarr array or a FITS file (HDU `hdu`, see srcnn_np.io.fits_io.read_fits), one (H, W)
        plane in physical units. target: a .zarr path (written chunk by chunk, never holding the
        image) or a .fits path (the result is gathered in memory: for sizes that fit).
    The data go through `upscale_science` (global finite range, blanks NaN, optional flux
    conservation); a FITS source's header is rescaled and checked (srcnn_np.io.header.upscaled_header) and kept,
    in Zarr as the attribute "fits_header" (the header's 80-character cards, one string).
    tile, edges: as for srcnn_np.upscale.
    client: a dask.distributed Client (the workers must see both paths), or None for this machine.
    progress, counter: see compute.
    Returns (input shape, output shape). Raises DaskIOError / FitsError with one line naming the file.
    """
    from .io.fits_io import write_fits
    from .io.header import HeaderError, upscaled_header
    from .io.formats import format_of

    source, target = os.fspath(source), os.fspath(target)
    if not (is_zarr(target) or format_of(target) == "fits"):
        raise DaskIOError(f"{target}: the output must be a .zarr store or a FITS file")
    if os.path.lexists(target) and not overwrite:
        raise DaskIOError(f"{target}: already exists (use --overwrite to replace it)")
    array, header = open_array(source, hdu)
    if array.ndim != 2:
        raise DaskIOError(f"{source}: holds a {array.ndim}-axis array {array.shape}; out-of-core "
                          "upscaling takes one (H, W) plane")
    kw = model.resolve_weights(weights, scale)
    try:
        result = upscale_science(array, kw, scale=kw.scale, conserve_flux=conserve_flux,
                                 flux_units=flux_units, stretch=stretch, tile=tile, edges=edges)
    except BlankImageError as e:
        raise DaskIOError(f"{source}: {e}") from None
    from . import __version__

    history = (f"srcnn_np {__version__}: upscaled x{kw.scale} out of core (dask) from "
               f"{os.path.basename(source)}; {stretch} stretch of the finite range; flux "
               f"{'conserved per block' if conserve_flux else 'not conserved'}, units {flux_units}; "
               "blank pixels NaN")
    new_header = None
    if header is not None:
        try:
            new_header = upscaled_header(header, kw.scale, history, image_size=array.shape[::-1])
        except HeaderError as e:
            raise DaskIOError(f"{source}: {e}") from None
    if is_zarr(target):
        attrs = {"srcnn_np": history}
        if new_header is not None:
            attrs["fits_header"] = new_header.tostring()
        write_zarr(result, target, attrs=attrs, overwrite=overwrite, client=client, progress=progress,
                   counter=counter)
    else:
        data = compute(result, client=client, progress=progress, label=os.path.basename(target), counter=counter)
        write_fits(target, data, new_header, overwrite=overwrite)
    return array.shape, result.shape


def connect(address: str):
    """A dask.distributed Client for the scheduler at `address` ("tcp://HOST:PORT"), waiting up
    to CONNECT_TIMEOUT_S for it.

    Raises ImportError (distributed missing) or OSError (no scheduler there), one line each.
    """
    try:
        from distributed import Client
    except ImportError:
        raise ImportError(DASK_HINT) from None
    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as e:
        raise OSError(f"cannot connect to the dask scheduler at {address} ({type(e).__name__}: {e})") from None


def _single_threaded_call(fn, item, *args):
    with _one_kernel_thread():
        return fn(item, *args)


def run_on_cluster(client, fn, items, *args):
    """fn(item, *args) for every item, one task each on a dask.distributed Client.

    args are sent to every worker once (client.scatter), not with each task; fn runs with the
    Numba kernels single-threaded (a worker runs one task per thread). fn must be importable on
    the workers (a module-level function of an installed package). At most IN_FLIGHT_PER_THREAD
    tasks per worker thread are submitted at a time, so millions of items never flood the
    scheduler. Yields (item, result, error) as tasks finish, in completion order: error is None,
    or a one-line description of what the task raised (or why it was lost) and result None.
    """
    from distributed import as_completed

    shared = [client.scatter(a, broadcast=True) for a in args]
    window = max(IN_FLIGHT_PER_THREAD * sum(client.nthreads().values()), 1)
    pending = iter(items)
    in_flight = {}
    finished = as_completed()

    def submit(count):
        for item in itertools.islice(pending, count):
            future = client.submit(_single_threaded_call, fn, item, *shared, pure=False)
            in_flight[future] = item
            finished.add(future)

    submit(window)
    for future in finished:
        item = in_flight.pop(future)
        submit(1)
        try:
            yield item, future.result(), None
        except Exception as e:  # noqa: BLE001 - whatever the task raised, re-raised here, or a lost worker
            yield item, None, f"{type(e).__name__}: {one_line(e)}"
