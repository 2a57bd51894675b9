"""16-bit and float TIFF through tifffile (optional extra: ``pip install "srcnn_np[tiff]"``).

Pillow reads and writes 8-bit TIFF and 16-bit gray; it cannot keep 16-bit colour or float32
samples, which these functions handle. tifffile is imported inside the functions.

Arrays: (H, W) gray, or (H, W, C) with C = 2 (gray + alpha), 3 (RGB), 4 (RGBA); samples uint8,
uint16 or float32, native byte order. Float samples are taken as stored (no range is implied).
"""
import struct

import numpy as np

TIFFFILE_HINT = 'TIFF with 16-bit colour or float samples needs tifffile: pip install "srcnn_np[tiff]"'
SAMPLE_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
UNASSOCIATED_ALPHA = "unassalpha"  # TIFF ExtraSamples = 2
# NewSubfileType (tag 254) bits of an IFD that is no image of its own: a reduced-resolution preview
# (1) or a transparency mask (4) of another one
AUXILIARY_SUBFILE = 0b101
FLOAT_SAMPLES = 3  # TIFF SampleFormat (tag 339) of IEEE floating-point samples
# tags first_ifd_tags reads: ImageWidth, ImageLength, BitsPerSample, SamplesPerPixel, StripByteCounts,
# SampleFormat, TileByteCounts
HEADER_TAGS = {256: "width", 257: "height", 258: "bits", 277: "samples", 279: "strip_bytes", 339: "sample_format",
               325: "tile_bytes"}
# TIFF field types with integer values: BYTE, SHORT, LONG, LONG8 (BigTIFF) -> struct code
INTEGER_FIELDS = {1: "B", 3: "H", 4: "I", 16: "Q"}


class TiffError(ValueError):
    """A TIFF whose layout or sample type srcnn_np does not handle; one line, without the path
    (callers name the file)."""


def first_ifd_tags(path) -> dict | None:
    """The first image's header tags from a TIFF file, read without decoding any pixels (and
    without tifffile): {"width", "height", "bits", "samples", "strip_bytes", "sample_format",
    "tile_bytes"} -> tuple of ints, for the tags present; None when the file is no TIFF (classic
    or BigTIFF) or its first directory or a tag's values lie outside the file (a corrupt file:
    the decoder that then opens it names the fault)."""
    with open(path, "rb") as f:
        head = f.read(16)
        if head[:2] not in (b"II", b"MM") or len(head) < 8:
            return None
        order = "<" if head[:2] == b"II" else ">"
        version = struct.unpack(order + "H", head[2:4])[0]
        if version == 42:
            offset, count_fmt, entry_fmt, inline = struct.unpack(order + "I", head[4:8])[0], "H", "HHI", 4
        elif version == 43 and len(head) == 16:
            offset, count_fmt, entry_fmt, inline = struct.unpack(order + "Q", head[8:16])[0], "Q", "HHQ", 8
        else:
            return None
        f.seek(offset)
        raw = f.read(struct.calcsize(order + count_fmt))
        if len(raw) < struct.calcsize(order + count_fmt):
            return None
        entries = struct.unpack(order + count_fmt, raw)[0]
        entry_size = 2 + 2 + struct.calcsize(order + entry_fmt[2]) + inline
        table = f.read(entries * entry_size)
        if len(table) < entries * entry_size:
            return None
        tags = {}
        for i in range(entries):
            entry = table[i * entry_size:(i + 1) * entry_size]
            tag, kind, count = struct.unpack(order + entry_fmt, entry[:-inline])
            if tag not in HEADER_TAGS or kind not in INTEGER_FIELDS:
                continue
            size = count * struct.calcsize(INTEGER_FIELDS[kind])
            if size <= inline:
                data = entry[-inline:][:size]
            else:
                f.seek(struct.unpack(order + ("I" if inline == 4 else "Q"), entry[-inline:])[0])
                data = f.read(size)
                if len(data) < size:
                    return None
            tags[HEADER_TAGS[tag]] = struct.unpack(order + INTEGER_FIELDS[kind] * count, data)
    return tags


def has_float_samples(tags: dict) -> bool:
    """Whether first_ifd_tags' result says the image stores floating-point samples."""
    return FLOAT_SAMPLES in tags.get("sample_format", ())


def _tifffile():
    try:
        import tifffile
    except ImportError:
        raise ImportError(TIFFFILE_HINT) from None
    return tifffile


def refuse_multi_page(images: int) -> None:
    """Raise TiffError when a TIFF holds more than one image (its IFDs less previews and masks, see
    AUXILIARY_SUBFILE): reading the first alone would drop the others silently."""
    if images > 1:
        raise TiffError(f"multi-page TIFF ({images} images): srcnn_np reads one image per file; "
                        "split the pages (e.g. tiffsplit) or stack them as a FITS cube")


def read_tiff(path) -> np.ndarray:
    """The image of a single-image TIFF file -> (H, W) or (H, W, C) uint8 | uint16 | float32.

    Planar (C, H, W) storage is returned as (H, W, C); float16/float64 samples become float32.
    Raises TiffError for a multi-page file (refuse_multi_page), other sample types (signed or
    32-bit integers, ...) or layouts.
    """
    tifffile = _tifffile()
    with tifffile.TiffFile(path) as tif:
        refuse_multi_page(sum(1 for p in tif.pages if not p.subfiletype & AUXILIARY_SUBFILE))
        page = tif.pages.first
        pixels = page.asarray()
        axes = page.axes
    if axes.startswith("S") and pixels.ndim == 3:  # planar configuration "separate"
        pixels = np.moveaxis(pixels, 0, -1)
        axes = axes[1:] + "S"
    if axes not in ("YX", "YXS") or pixels.ndim != len(axes):
        raise TiffError(f"unsupported TIFF layout (axes {axes}, shape {pixels.shape})")
    if pixels.ndim == 3 and not 1 <= pixels.shape[2] <= 4:
        raise TiffError(f"unsupported TIFF with {pixels.shape[2]} samples per pixel (1 to 4 handled)")
    if pixels.dtype.kind == "f":
        pixels = pixels.astype(np.float32)
    if pixels.dtype.newbyteorder("=") not in SAMPLE_DTYPES:
        raise TiffError(f"unsupported TIFF sample type {pixels.dtype} (use uint8, uint16 or float32)")
    return np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("="))


def write_tiff(path_or_fileobj, pixels: np.ndarray, *, level: int = 6, threads: int | None = None) -> None:
    """Write (H, W) or (H, W, C) uint8 | uint16 | float32 pixels as a deflate-compressed TIFF.

    C = 2 is gray + alpha, 3 RGB, 4 RGBA; alpha is tagged as unassociated (ExtraSamples = 2).
    float64 is written as float32. Integer samples go through the horizontal differencing
    predictor (Predictor = 2: smaller and faster to deflate); strips are deflated at zlib `level`
    on `threads` threads (default: tifffile's choice). Writes to a path or an open, seekable binary
    file as given (atomic placement is the caller's job, see srcnn_np.io.imageio.write_image).
    """
    tifffile = _tifffile()
    a = np.asarray(pixels)
    if a.dtype == np.float64:
        a = a.astype(np.float32)
    if a.dtype not in SAMPLE_DTYPES:
        raise TiffError(f"cannot write {a.dtype} samples to TIFF (use uint8, uint16 or float32)")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (2, 3, 4)):
        raise TiffError(f"cannot write an array of shape {a.shape} to TIFF: use (H, W) or (H, W, C), C <= 4")
    channels = 1 if a.ndim == 2 else a.shape[2]
    options = {"photometric": "rgb" if channels >= 3 else "minisblack", "compression": "zlib",
               "compressionargs": {"level": level}, "predictor": a.dtype.kind == "u", "maxworkers": threads}
    if a.ndim == 3:
        options["planarconfig"] = "contig"
    if channels in (2, 4):
        options["extrasamples"] = (UNASSOCIATED_ALPHA,)
    tifffile.imwrite(path_or_fileobj, a, **options)
