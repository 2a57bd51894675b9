"""PNG writing, 8 and 16 bits per sample, filtered and deflated on several threads.

The image is cut into bands of rows. Each thread filters its band (a Numba kernel that releases
the GIL) and deflates it with its own zlib stream (zlib releases the GIL too); the bands' raw
deflate streams end on a byte boundary (Z_SYNC_FLUSH), so their concatenation behind one zlib
header, closed by the Adler-32 of all the bytes, is one valid zlib stream, as pigz does it. Each
band starts with an empty dictionary, which costs a few hundred bytes per band.

Arrays: (H, W) for gray, (H, W, C) for C = 2 (gray + alpha), 3 (RGB) or 4 (RGBA); uint8 or
uint16 in native byte order (written big-endian, as the PNG spec wants).
"""
import os
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

from ..config import JIT_OPTIONS
from .png16 import FILTER_KINDS, PNG_SIGNATURE, prediction

COLOR_TYPE_BY_CHANNELS = {1: 0, 2: 4, 3: 2, 4: 6}  # gray, gray + alpha, RGB, RGBA
IDAT_CHUNK_BYTES = 1 << 20
BAND_BYTES = 1 << 21  # raw bytes per band: many more bands than threads keeps them all busy
ADLER_BASE = 65521


@njit(**JIT_OPTIONS)
def filter_scanlines(rows, bpp, start, stop):
    """Filter rows[start:stop] of rows (H, S) uint8 for PNG -> (stop - start, 1 + S) uint8, filter byte first.

    Each row gets the filter whose filtered bytes, read as signed, have the smallest sum of
    absolute values (libpng's heuristic; the first on a tie). Row `start` reads rows[start - 1],
    so bands filtered apart join into the same scanlines as the whole image filtered at once.
    """
    stride = rows.shape[1]
    out = np.empty((stop - start, stride + 1), dtype=np.uint8)
    costs = np.empty(FILTER_KINDS, dtype=np.int64)
    for y in range(start, stop):
        costs[:] = 0
        for pass_ in range(2):  # 0: the cost of each filter; 1: write the row with the cheapest
            kind = np.argmin(costs)
            for i in range(stride):
                x = np.int32(rows[y, i])
                left = np.int32(rows[y, i - bpp]) if i >= bpp else np.int32(0)
                up = np.int32(rows[y - 1, i]) if y > 0 else np.int32(0)
                up_left = np.int32(rows[y - 1, i - bpp]) if (y > 0 and i >= bpp) else np.int32(0)
                if pass_ == 0:
                    for k in range(FILTER_KINDS):
                        residual = (x - prediction(k, left, up, up_left)) & 0xFF
                        costs[k] += min(residual, 256 - residual)
                else:
                    out[y - start, i + 1] = np.uint8((x - prediction(kind, left, up, up_left)) & 0xFF)
        out[y - start, 0] = kind
    return out


def adler32_combine(first: int, second: int, second_length: int) -> int:
    """Adler-32 of A + B from adler32(A), adler32(B) and len(B) (zlib's adler32_combine)."""
    a = ((first & 0xFFFF) + (second & 0xFFFF) - 1) % ADLER_BASE
    b = ((first >> 16) + (second >> 16) + second_length * ((first & 0xFFFF) - 1)) % ADLER_BASE
    return (b << 16) | a


def default_threads() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def zlib_options(compression) -> tuple[int, int]:
    """(level, strategy) for zlib.compressobj: "rle" is zlib's run-length strategy (runs of one
    byte, then Huffman codes: on filtered photographs as small as level 6 at level 1's speed,
    README "End to end: the CLI"); 0..9 is that level with the default strategy."""
    if compression == "rle":
        return 1, zlib.Z_RLE
    if compression in range(10):
        return compression, zlib.Z_DEFAULT_STRATEGY
    raise ValueError(f"PNG compression must be 'rle' or a zlib level 0..9, got {compression!r}")


def filtered_zlib_stream(rows: np.ndarray, bpp: int, level: int, strategy: int, threads: int) -> bytes:
    """rows (H, S) uint8 -> the zlib stream of their filtered scanlines, bands on `threads` threads."""
    height, stride = rows.shape
    band = max(1, BAND_BYTES // (stride + 1))

    def deflate_band(start):  # -> (raw deflate bytes, Adler-32 of the scanlines, their length)
        scanlines = filter_scanlines(rows, bpp, start, min(start + band, height))
        compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, 8, strategy)
        last = start + band >= height
        data = compressor.compress(scanlines) + compressor.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)
        return data, zlib.adler32(scanlines), scanlines.size

    starts = range(0, height, band)
    if threads > 1 and len(starts) > 1:
        with ThreadPoolExecutor(min(threads, len(starts))) as pool:
            pieces = list(pool.map(deflate_band, starts))
    else:
        pieces = [deflate_band(s) for s in starts]
    adler = 1
    for _, band_adler, length in pieces:
        adler = adler32_combine(adler, band_adler, length)
    header = zlib.compress(b"", level)[:2]  # CMF and FLG for this level
    return b"".join([header, *(data for data, _, _ in pieces), adler.to_bytes(4, "big")])


def chunk(kind: bytes, payload) -> bytes:
    """One PNG chunk: length, type, payload, CRC of type + payload."""
    return b"".join((len(payload).to_bytes(4, "big"), kind, payload,
                     zlib.crc32(payload, zlib.crc32(kind)).to_bytes(4, "big")))


def write_png(f, array: np.ndarray, *, compression, threads: int | None = None,
              icc_profile: bytes | None = None) -> None:
    """Write (H, W) or (H, W, C) uint8 | uint16, C in 1..4, as a PNG of that bit depth to the binary file f.

    Non-interlaced, one of the five filters chosen per row, deflated as `compression` says ("rle"
    or a zlib level 0..9, see zlib_options) on `threads` threads (default: every CPU this process
    may use). icc_profile goes into an iCCP chunk. Writes through f.write only (no seek, no file
    descriptor).
    """
    array = np.asarray(array)
    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"PNG needs uint8 or uint16 samples, got {array.dtype}")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in COLOR_TYPE_BY_CHANNELS or 0 in array.shape:
        raise ValueError(f"PNG needs a non-empty (H, W) or (H, W, 1..4) array, got shape {array.shape}")
    level, strategy = zlib_options(compression)
    height, width, channels = array.shape
    depth = array.dtype.itemsize * 8
    rows = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder(">")).view(np.uint8).reshape(height, -1)
    compressed = memoryview(filtered_zlib_stream(rows, channels * depth // 8, level, strategy,
                                                   threads or default_threads()))
    ihdr = (width.to_bytes(4, "big") + height.to_bytes(4, "big")
            + bytes((depth, COLOR_TYPE_BY_CHANNELS[channels], 0, 0, 0)))
    parts = [PNG_SIGNATURE, chunk(b"IHDR", ihdr)]
    if icc_profile:
        parts.append(chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc_profile)))
    parts += [chunk(b"IDAT", compressed[i:i + IDAT_CHUNK_BYTES])
              for i in range(0, len(compressed), IDAT_CHUNK_BYTES)]
    parts.append(chunk(b"IEND", b""))
    f.writelines(parts)
