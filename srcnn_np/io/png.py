"""PNG: 16-bit reading that keeps the full bit depth (Pillow truncates 16-bit RGB(A) to 8 bits), and
writing at 8 and 16 bits, filtered and deflated on several threads.

Arrays: (H, W) for gray, (H, W, C) for C = 2 (gray + alpha), 3 (RGB) or 4 (RGBA); uint16 (read;
written: uint8 or uint16) in native byte order. In the file, samples are big-endian and each
scanline starts with a filter byte (PNG spec, section 9). Only bit depth 16 is read here;
8-bit files go through Pillow (io/imageio.py).

Writing: the image is cut into bands of rows. Each thread filters its band (a Numba kernel that
releases the GIL) and deflates it with its own zlib stream (zlib releases the GIL too); the bands'
raw deflate streams end on a byte boundary (Z_SYNC_FLUSH), so their concatenation behind one zlib
header, closed by the Adler-32 of all the bytes, is one valid zlib stream, as pigz does it. Each
band starts with an empty dictionary, which costs a few hundred bytes per band.
"""
import os
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

from ..config import JIT_OPTIONS, MAX_PIXELS_DEFAULT

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS_BY_COLOR_TYPE = {0: 1, 2: 3, 4: 2, 6: 4}  # gray, RGB, gray + alpha, RGBA
COLOR_TYPE_BY_CHANNELS = {channels: color for color, channels in CHANNELS_BY_COLOR_TYPE.items()}
FILTER_SUB, FILTER_UP, FILTER_AVERAGE, FILTER_PAETH = range(1, 5)  # scanline filter types; 0 is None
FILTER_KINDS = 5
IDAT_CHUNK_BYTES = 1 << 20
BAND_BYTES = 1 << 21  # raw bytes per band: many more bands than threads keeps them all busy
ADLER_BASE = 65521
# Adam7 passes: (x0, y0, dx, dy) of the pixels each pass holds
ADAM7_PASSES = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def is_png16(path_or_header) -> bool:
    """True when the file (a path, or its first >= 26 bytes) is a PNG of bit depth 16 in colour type 0, 2, 4 or 6."""
    if isinstance(path_or_header, (bytes, bytearray, memoryview)):
        header = bytes(path_or_header[:26])
    else:
        with open(path_or_header, "rb") as f:
            header = f.read(26)
    return (len(header) == 26 and header.startswith(PNG_SIGNATURE) and header[12:16] == b"IHDR"
            and header[24] == 16 and header[25] in CHANNELS_BY_COLOR_TYPE)


@njit(inline="always")
def prediction(kind, left, up, up_left):
    """What PNG filter `kind` (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth) predicts a byte to be from
    its left, upper and upper-left neighbours (int32, 0 outside the image)."""
    if kind == FILTER_SUB:
        return left
    if kind == FILTER_UP:
        return up
    if kind == FILTER_AVERAGE:
        return (left + up) >> 1
    if kind == FILTER_PAETH:
        p = left + up - up_left
        pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
        return left if (pa <= pb and pa <= pc) else (up if pb <= pc else up_left)
    return np.int32(0)


@njit(**JIT_OPTIONS)
def unfilter_scanlines(scanlines, bpp, out):
    """Undo the PNG scanline filters: scanlines (H, 1 + S) uint8, filter byte first -> out (H, S) uint8.

    bpp is the bytes per pixel (the filters' left distance). Returns the first row whose filter
    type is unknown, or -1 when all rows are valid.
    """
    height, stride = out.shape
    for y in range(height):
        kind = scanlines[y, 0]
        if kind >= FILTER_KINDS:
            return y
        for i in range(stride):
            x = np.int32(scanlines[y, i + 1])
            left = np.int32(out[y, i - bpp]) if i >= bpp else np.int32(0)
            up = np.int32(out[y - 1, i]) if y > 0 else np.int32(0)
            up_left = np.int32(out[y - 1, i - bpp]) if (kind == FILTER_PAETH and y > 0 and i >= bpp) else np.int32(0)
            out[y, i] = np.uint8((x + prediction(kind, left, up, up_left)) & 0xFF)
    return -1


def _read_chunks(data):
    """Yield (type, payload) of each chunk after the signature, checking lengths and CRCs."""
    pos = len(PNG_SIGNATURE)
    while pos < len(data):
        if pos + 12 > len(data):
            raise ValueError("truncated PNG: incomplete chunk header")
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = bytes(data[pos + 4:pos + 8])
        end = pos + 8 + length
        if end + 4 > len(data):
            raise ValueError(f"truncated PNG: {kind!r} chunk runs past the end of the file")
        if zlib.crc32(data[pos + 4:end]) != int.from_bytes(data[end:end + 4], "big"):
            raise ValueError(f"corrupt PNG: CRC mismatch in {kind!r} chunk")
        yield kind, data[pos + 8:end]
        pos = end + 4


def _parse_ihdr(payload, max_pixels):
    """IHDR payload -> (height, width, channels, interlaced), validated for a 16-bit image."""
    if len(payload) != 13:
        raise ValueError("corrupt PNG: IHDR is not 13 bytes")
    width, height = int.from_bytes(payload[0:4], "big"), int.from_bytes(payload[4:8], "big")
    depth, color_type, compression, filter_method, interlace = payload[8:13]
    if depth != 16:
        raise ValueError(f"not a 16-bit PNG (bit depth {depth}); read it with Pillow")
    if color_type not in CHANNELS_BY_COLOR_TYPE:
        raise ValueError(f"unsupported PNG colour type {color_type} at bit depth 16")
    if compression != 0 or filter_method != 0 or interlace not in (0, 1):
        raise ValueError("corrupt PNG: unknown compression, filter or interlace method in IHDR")
    if width == 0 or height == 0 or width >= 2**31 or height >= 2**31:
        raise ValueError(f"corrupt PNG: invalid size {width}x{height}")
    if width * height > max_pixels:
        raise ValueError(f"PNG too large: {width}x{height} exceeds max_pixels={max_pixels}")
    return height, width, CHANNELS_BY_COLOR_TYPE[color_type], interlace == 1


def _passes(height, width, interlaced):
    """(x0, y0, dx, dy, pass_height, pass_width) of each non-empty pass; one full pass if not interlaced."""
    for x0, y0, dx, dy in ADAM7_PASSES if interlaced else ((0, 0, 1, 1),):
        pass_height, pass_width = -(-(height - y0) // dy), -(-(width - x0) // dx)
        if pass_height > 0 and pass_width > 0:
            yield x0, y0, dx, dy, pass_height, pass_width


def _inflate(compressed, expected):
    """zlib stream -> exactly `expected` bytes, never inflating more than expected + 1."""
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(compressed, expected)
        extra = inflater.decompress(inflater.unconsumed_tail, 1)
    except zlib.error as exc:
        raise ValueError(f"corrupt PNG: bad compressed image data ({exc})") from None
    if len(raw) < expected:
        raise ValueError(f"truncated PNG: image data ends early ({len(raw)} of {expected} bytes)")
    if extra:
        raise ValueError("corrupt PNG: more image data than the IHDR size")
    return raw


def read_png16(path_or_fileobj, max_pixels: int = MAX_PIXELS_DEFAULT) -> np.ndarray:
    """Read a 16-bit PNG (path or binary file object) -> (H, W) uint16 gray or (H, W, C) uint16, C in 2, 3, 4.

    Handles all filter types, several IDAT chunks and Adam7 interlacing; ancillary chunks
    (tRNS, gAMA, text...) are skipped. Raises ValueError with a short reason when the file is not
    a 16-bit PNG, is corrupt or truncated, or has more than max_pixels pixels (checked before
    anything is allocated); OSError when the file cannot be opened.
    """
    if isinstance(path_or_fileobj, (str, os.PathLike)):
        with open(path_or_fileobj, "rb") as f:
            data = memoryview(f.read())
    else:
        data = memoryview(path_or_fileobj.read())
    if bytes(data[:8]) != PNG_SIGNATURE:
        raise ValueError("not a PNG file (bad signature)")
    header, idat, ended = None, [], False
    for kind, payload in _read_chunks(data):
        if header is None and kind != b"IHDR":
            raise ValueError("corrupt PNG: first chunk is not IHDR")
        if kind == b"IHDR":
            if header is not None:
                raise ValueError("corrupt PNG: more than one IHDR chunk")
            header = _parse_ihdr(payload, max_pixels)
        elif kind == b"IDAT":
            idat.append(payload)
        elif kind == b"IEND":
            ended = True
            break
        elif kind[0] & 0x20 == 0 and kind != b"PLTE":  # unknown critical chunk (PLTE: a suggested palette)
            raise ValueError(f"unsupported PNG: unknown critical chunk {kind!r}")
    if header is None:
        raise ValueError("truncated PNG: no IHDR chunk")
    if not ended:
        raise ValueError("truncated PNG: no IEND chunk")
    height, width, channels, interlaced = header
    bpp = 2 * channels
    passes = list(_passes(height, width, interlaced))
    raw = _inflate(b"".join(idat), sum(ph * (1 + pw * bpp) for *_, ph, pw in passes))

    image = np.empty((height, width, channels), dtype=np.uint16)
    offset = 0
    for x0, y0, dx, dy, pass_height, pass_width in passes:
        size = pass_height * (1 + pass_width * bpp)
        scanlines = np.frombuffer(raw, np.uint8, size, offset).reshape(pass_height, 1 + pass_width * bpp)
        rows = np.empty((pass_height, pass_width * bpp), dtype=np.uint8)
        bad_row = unfilter_scanlines(scanlines, bpp, rows)
        if bad_row >= 0:
            raise ValueError(f"corrupt PNG: unknown filter type {scanlines[bad_row, 0]} in row {bad_row}")
        image[y0::dy, x0::dx] = rows.view(">u2").reshape(pass_height, pass_width, channels)
        offset += size
    return image[:, :, 0] if channels == 1 else image


# ---------------------------------------------------------------------------------------------
# Writing


@njit(inline="always")
def neighbours(rows, y, i, bpp):
    """Byte i of row y and its left, upper and upper-left neighbours (int32, 0 outside the image)."""
    x = np.int32(rows[y, i])
    left = np.int32(rows[y, i - bpp]) if i >= bpp else np.int32(0)
    up = np.int32(rows[y - 1, i]) if y > 0 else np.int32(0)
    up_left = np.int32(rows[y - 1, i - bpp]) if (y > 0 and i >= bpp) else np.int32(0)
    return x, left, up, up_left


@njit(**JIT_OPTIONS)
def filter_rows_into(rows, bpp, start, stop, out):
    """filter_scanlines into out (stop - start, 1 + S) uint8. The kernel allocates nothing: every
    numpy call inside a kernel is one more function to compile on the first run."""
    stride = rows.shape[1]
    for y in range(start, stop):
        kind, best = 0, -1
        for k in range(FILTER_KINDS):  # the first of the cheapest
            cost = 0
            for i in range(stride):
                x, left, up, up_left = neighbours(rows, y, i, bpp)
                residual = (x - prediction(k, left, up, up_left)) & 0xFF
                cost += min(residual, 256 - residual)
            if best < 0 or cost < best:
                kind, best = k, cost
        out[y - start, 0] = kind
        for i in range(stride):
            x, left, up, up_left = neighbours(rows, y, i, bpp)
            out[y - start, i + 1] = np.uint8((x - prediction(kind, left, up, up_left)) & 0xFF)


def filter_scanlines(rows: np.ndarray, bpp: int, start: int, stop: int) -> np.ndarray:
    """Filter rows[start:stop] of rows (H, S) uint8 for PNG -> (stop - start, 1 + S) uint8, filter byte first.

    Each row gets the filter whose filtered bytes, read as signed, have the smallest sum of
    absolute values (libpng's heuristic; the first on a tie). Row `start` reads rows[start - 1],
    so bands filtered apart join into the same scanlines as the whole image filtered at once.
    """
    out = np.empty((stop - start, rows.shape[1] + 1), dtype=np.uint8)
    filter_rows_into(rows, bpp, start, stop, out)
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
    docs/performance.md#end-to-end-the-cli); 0..9 is that level with the default strategy."""
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
