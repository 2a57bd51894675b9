"""16-bit PNG reading and writing, keeping the full bit depth (Pillow truncates 16-bit RGB(A) to 8 bits).

Arrays are uint16 in native byte order: (H, W) for gray, (H, W, C) for C = 2 (gray + alpha),
3 (RGB) or 4 (RGBA). In the file, samples are big-endian and each scanline starts with a filter
byte (PNG spec, section 9). Only bit depth 16 is read here; everything else goes through Pillow.
Writing (8 and 16 bits) is srcnn_np.io.png_write's job.
"""
import os
import zlib

import numpy as np
from numba import njit

from ..config import JIT_OPTIONS, MAX_PIXELS_DEFAULT

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS_BY_COLOR_TYPE = {0: 1, 2: 3, 4: 2, 6: 4}  # gray, RGB, gray + alpha, RGBA
ZLIB_LEVEL = 6
FILTER_NONE, FILTER_SUB, FILTER_UP, FILTER_AVERAGE, FILTER_PAETH = range(5)  # scanline filter types
FILTER_KINDS = 5
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


def write_png16(path_or_fileobj, array: np.ndarray, compression=ZLIB_LEVEL) -> None:
    """Write (H, W) or (H, W, C) uint16, C in 1..4 (gray, gray + alpha, RGB, RGBA), as a 16-bit PNG.

    Non-interlaced, big-endian samples, a filter chosen per row, deflated as `compression` says
    (see png_write.write_png). Writes to a binary file object, or to a path (created or
    overwritten: atomic replacement is the caller's job).
    """
    from .png_write import write_png

    array = np.asarray(array)
    if array.dtype != np.uint16:
        raise ValueError(f"write_png16 needs uint16 samples, got {array.dtype}")
    if isinstance(path_or_fileobj, (str, os.PathLike)):
        with open(path_or_fileobj, "wb") as f:
            write_png(f, array, compression=compression)
    else:
        write_png(path_or_fileobj, array, compression=compression)
