"""Out-of-core arrays: a Zarr array or a FITS image HDU read lazily, a result written into Zarr.

`open_array` reads a Zarr array or a FITS image HDU as a lazy dask.array, chunk by chunk (FITS
through astropy's ImageHDU.section, which seeks to the rows a chunk needs: unlike a memory map it
also works for BSCALE/BZERO-scaled data); `write_zarr` stores a dask array chunk by chunk into a
new Zarr array, atomically. srcnn_np.chunked upscales between them.

dask[array], distributed and zarr are an optional extra: pip install "srcnn_np[dask]"; they are
imported inside the functions (dask_array, zarr_module), with that hint when missing.
"""
import os
import shutil
import tempfile
import time

import numpy as np

from ..errors import exists, one_line
from .atomic import remove_stale_temps

DASK_HINT = 'Dask support needs dask, distributed and zarr: pip install "srcnn_np[dask]"'
# Input chunk side (pixels) used when a file is opened here: s^2 x 4 MiB float32 output per
# chunk, big enough that the grown margins (2 x depth) add little work.
INPUT_CHUNK = 1024


class DaskIOError(ValueError):
    """An input that cannot be read or an output that cannot be written; the message is one line."""


def dask_array():
    """The dask.array module; ImportError with DASK_HINT when dask is not installed."""
    try:
        import dask.array as da
    except ImportError:
        raise ImportError(DASK_HINT) from None
    return da


def zarr_module():
    """The zarr module; ImportError with DASK_HINT when zarr is not installed."""
    try:
        import zarr
    except ImportError:
        raise ImportError(DASK_HINT) from None
    return zarr


class FitsSections:
    """A FITS image HDU read section by section (astropy's ImageHDU.section), for dask.array.from_array.

    Only the pixels a chunk needs are read; data are in physical units (BSCALE/BZERO applied by
    astropy; BLANK pixels of unscaled integer data become NaN, the chunks then float32), as
    srcnn_np.io.fits_io.read_fits returns them. Pickles as the path and HDU index (never the file),
    so dask.distributed workers open the file themselves: it must be on a filesystem they share.
    """

    def __init__(self, path, hdu=None):
        from .fits_io import FitsError, _astropy_fits, _select_hdu, check_fits_structure, physical_blank
        from .imageio import quiet_decoders

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
        from .fits_io import _astropy_fits

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
    da = dask_array()
    path = os.fspath(path)
    chunk = INPUT_CHUNK if chunk is None else chunk
    if is_zarr(path):
        zarr = zarr_module()
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


def write_zarr(array, path, *, attrs: dict | None = None, overwrite: bool = False, compute=None) -> None:
    """Compute `array` chunk by chunk into a new Zarr array at `path`, atomically.

    The chunks are written as they are computed (only the chunks in flight are in memory), into
    a hidden temporary store beside `path` (".NAME.XXXXXXXX.tmp", as srcnn_np.io.atomic names temp
    files) that is renamed to `path` at the end; an existing `path` is refused unless
    overwrite=True. Temporary stores for `path` that a killed run left are removed first.
    attrs: JSON-able metadata stored with the array.
    compute: a function that runs the lazy store (a dask collection), returning once no task
    writes any more (srcnn_np.chunked.compute, on a cluster or with a progress bar); None:
    dask.compute here.
    """
    zarr = zarr_module()
    started = time.time()
    path = os.path.abspath(os.fspath(path))
    if os.path.lexists(path) and not overwrite:
        raise DaskIOError(exists(path))
    if compute is None:
        import dask

        compute = dask.compute
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
        compute(array.store(target, lock=False, compute=False))
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
