"""XISF (PixInsight's image format) in and out, through the `xisf` package.

Optional extra: ``pip install "srcnn_np[xisf]"`` (the `xisf` package, and astropy for the FITS
keywords' WCS); both are imported inside the functions.

Pixels: (H, W) gray or (H, W, C) with C = 3 (RGB), or C = 2 / 4 when the file has an alpha
channel; uint8, uint16 (as stored) or float32 in [0, 1] (Float32/Float64 samples mapped from the
image's `bounds`, default 0:1). Written files hold one image: UInt8, UInt16 or Float32 samples
(bounds 0:1), planar, zlib + byte-shuffle compressed; alpha is not written (the xisf package
writes gray and RGB only).

Metadata (`XisfMetadata`): the image's FITSKeyword elements (value text as in the file, quotes
included) and its XISF properties (as the xisf package parses them). On upscaling
(`upscaled_metadata`) the keywords go through srcnn_np.io.header.upscaled_header, so NAXISn,
the WCS (every convention, alternates), pixel scales, camera pixel sizes and sections are rescaled
and checked exactly as for a FITS file (docs/wcs.md). The sensor's pixel size properties
Instrument:Sensor:XPixelSize/YPixelSize (microns, binning included) are divided by s, as
XPIXSZ/YPIXSZ are; Instrument:Camera:XBinning/YBinning stay (the camera's readout).
PixInsight's astrometric solution properties are rescaled to match:
PCL:AstrometricSolution:ReferenceImageCoordinates times s (image coordinates with pixel corners
at integers), :LinearTransformationMatrix divided by s; its spline distortion model
(ids containing SplineWorldTransformation) cannot be rescaled and is dropped (PixInsight
recomputes it from the FITS WCS or a new plate solve). Every other property is carried as read.

Hostile files: `check_xisf_structure` reads and checks the header before the xisf package sees
the file: the XISF0100 signature, a header length within the file and at most MAX_HEADER_BYTES,
well-formed XML without a DTD or entities, and for the image: a 2-D geometry w:h:c of at most
max_pixels pixels and 1..4 channels, a supported sample format, and a data block inside the file
whose (declared uncompressed) size is exactly w * h * c * sample bytes; every other attached block
lies inside the file and declares at most MAX_PROPERTY_BYTES. Every block is then decompressed
with that bound (a compression bomb stops at the declared size). Anything else the package raises
becomes a one-line XisfError; what it prints about properties it skips is silenced.
"""
import base64
import contextlib
import functools
import io
import os
import re
import warnings
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass, field

import numpy as np

from .atomic import OutputExistsError, atomic_output
from .imageio import ImageIOError, LoadedImage, check_regular_file, quantize, quiet_decoders
from ..errors import exists, one_line

XISF_HINT = 'XISF support needs the xisf package: pip install "srcnn_np[xisf]"'
SIGNATURE = b"XISF0100"
DISTRIBUTED_SIGNATURE = b"XISB0100"
PREAMBLE_BYTES = 16  # signature, header length (uint32 little-endian), reserved
NAMESPACE = "{http://www.pixinsight.com/xisf}"
MAX_HEADER_BYTES = 16 << 20
MAX_PROPERTY_BYTES = 64 << 20  # one attached or compressed property block (a thumbnail, a table...)
SAMPLE_FORMATS = {"UInt8": np.uint8, "UInt16": np.uint16, "Float32": np.float32, "Float64": np.float64}
CODECS = ("zlib", "lz4", "lz4hc", "zstd")
ATTACHMENT = re.compile(r"^attachment:(\d+):(\d+)$")
INLINE = re.compile(r"^inline:(base64|hex)$")
COMPRESSION = re.compile(r"^([a-z0-9]+)(\+sh)?:(\d+)(?::(\d+))?$")
GEOMETRY = re.compile(r"^(\d+):(\d+):(\d+)$")
ASTROMETRY = "PCL:AstrometricSolution:"
PIXEL_SIZE_PROPERTIES = ("Instrument:Sensor:XPixelSize", "Instrument:Sensor:YPixelSize")  # microns, binning included
DISCARDED_KEYWORDS = ("SIMPLE", "BITPIX", "NAXIS", "EXTEND", "END")  # the FITS structure; XISF geometry says it


class XisfError(ImageIOError):
    """An XISF file that cannot be read or written; one line, naming the file."""


@dataclass
class XisfMetadata:
    """What an XISF image carries besides its pixels."""

    fits_keywords: list = field(default_factory=list)  # [(name, value text as in the file, comment)]
    properties: dict = field(default_factory=dict)  # id -> property dict as the xisf package reads it


@dataclass(frozen=True)
class XisfLayout:
    """The checked description of the file's first image."""

    width: int
    height: int
    channels: int
    dtype: np.dtype  # with the file's byte order
    planar: bool  # pixelStorage Planar (channel after channel) or Normal (interleaved)
    bounds: tuple  # (low, high) of float samples
    location: str
    compression: str | None
    inline_text: str | None
    fits_keywords: list


def _xisf_module():
    try:
        import xisf
    except ImportError:
        raise ImportError(XISF_HINT) from None
    return xisf


# ---------------------------------------------------------------- checking the header


def check_xisf_structure(path, max_pixels: int) -> XisfLayout:
    """Read and check the XISF header of `path` (see the module docstring); the first image's layout.

    Reads the 16-byte preamble and the XML header, nothing of the data. Raises XisfError.
    """
    path = os.fspath(path)
    try:
        check_regular_file(path)
    except ImageIOError as e:
        raise XisfError(str(e)) from None
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        preamble = f.read(PREAMBLE_BYTES)
        if preamble.startswith(DISTRIBUTED_SIGNATURE):
            raise XisfError(f"{path}: distributed XISF (XISB) is not supported; save it as a monolithic .xisf")
        if len(preamble) < PREAMBLE_BYTES or not preamble.startswith(SIGNATURE):
            raise XisfError(f"{path}: not an XISF file (no XISF0100 signature)")
        header_bytes = int.from_bytes(preamble[8:12], "little")
        if not 0 < header_bytes <= min(MAX_HEADER_BYTES, size - PREAMBLE_BYTES):
            raise XisfError(f"{path}: XML header length {header_bytes} is outside the file "
                            f"or above {MAX_HEADER_BYTES >> 20} MiB")
        header = f.read(header_bytes).rstrip(b"\0")
    if b"<!DOCTYPE" in header or b"<!ENTITY" in header:
        raise XisfError(f"{path}: the XML header declares a DTD or entities (refused)")
    try:
        root = ET.fromstring(header)
    except (ET.ParseError, LookupError, ValueError) as e:  # LookupError: an unknown encoding declared
        raise XisfError(f"{path}: bad XML header ({one_line(e)})") from None
    if root.tag != NAMESPACE + "xisf":
        raise XisfError(f"{path}: the XML header's root is not an XISF element")
    for element in root.iter():
        if "location" in element.attrib and element.tag != NAMESPACE + "Image":
            _check_block(path, size, element, MAX_PROPERTY_BYTES)
    image = root.find(NAMESPACE + "Image")
    if image is None:
        raise XisfError(f"{path}: no image in the file")
    return _image_layout(path, size, image, max_pixels)


def _image_layout(path: str, size: int, image, max_pixels: int) -> XisfLayout:
    m = GEOMETRY.match(image.get("geometry", ""))
    if m is None:
        raise XisfError(f"{path}: image geometry {image.get('geometry', '')[:40]!r} is not width:height:channels "
                        "(only 2-D images are supported)")
    width, height, channels = (int(g) for g in m.groups())
    if width < 1 or height < 1:
        raise XisfError(f"{path}: empty image ({width}x{height})")
    if width * height > max_pixels:
        raise XisfError(f"{path}: {width}x{height} = {width * height} pixels exceeds the limit of {max_pixels} "
                        "(raise it with --max-pixels)")
    if not 1 <= channels <= 4:
        raise XisfError(f"{path}: {channels} channels (1 to 4 are supported)")
    sample_format = image.get("sampleFormat", "")
    if sample_format not in SAMPLE_FORMATS:
        raise XisfError(f"{path}: sample format {sample_format[:20]!r} is not supported "
                        f"(use {', '.join(SAMPLE_FORMATS)})")
    if image.get("colorSpace", "Gray") not in ("Gray", "RGB"):
        raise XisfError(f"{path}: colour space {image.get('colorSpace')[:20]!r} is not supported (Gray or RGB)")
    storage = image.get("pixelStorage", "Planar")
    if storage not in ("Planar", "Normal"):
        raise XisfError(f"{path}: pixel storage {storage[:20]!r} is not Planar or Normal")
    dtype = np.dtype(SAMPLE_FORMATS[sample_format]).newbyteorder(">" if image.get("byteOrder") == "big" else "<")
    nbytes = width * height * channels * dtype.itemsize
    _check_block(path, size, image, nbytes, exact=True)
    return XisfLayout(width, height, channels, dtype, storage == "Planar", _bounds(path, image),
                      image.get("location"), image.get("compression"), image.text,
                      [(k.get("name", ""), k.get("value", ""), k.get("comment", ""))
                       for k in image.findall(NAMESPACE + "FITSKeyword")])


def _bounds(path: str, image) -> tuple:
    text = image.get("bounds", "0:1")
    try:
        low, high = (float(v) for v in text.split(":"))
    except ValueError:
        raise XisfError(f"{path}: image bounds {text[:40]!r} are not low:high") from None
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise XisfError(f"{path}: image bounds {text[:40]!r} are not a finite range")
    return low, high


def _check_block(path: str, size: int, element, limit: int, exact: bool = False) -> None:
    """A data block's location inside the file and its (uncompressed) size: == limit if exact,
    else <= limit."""
    location = element.get("location", "")
    what = f"{element.tag.replace(NAMESPACE, '')} {element.get('id', '')}".strip()
    m = ATTACHMENT.match(location)
    if m is not None:
        position, stored = int(m.group(1)), int(m.group(2))
        if position + stored > size:
            raise XisfError(f"{path}: {what}: data block at {position}, {stored} bytes, lies past the end "
                            f"of the {size}-byte file (truncated or corrupt)")
    elif INLINE.match(location) is None:
        raise XisfError(f"{path}: {what}: data block location {location[:40]!r} is not supported "
                        "(attachment or inline)")
    else:
        stored = None
    compression = element.get("compression")
    if compression is None:
        declared = stored
    else:
        c = COMPRESSION.match(compression)
        if c is None or c.group(1) not in CODECS:
            raise XisfError(f"{path}: {what}: compression {compression[:40]!r} is not supported "
                            f"({', '.join(CODECS)}, optionally +sh)")
        declared = int(c.group(3))
    if declared is not None and (declared != limit if exact else declared > limit):
        raise XisfError(f"{path}: {what}: data block of {declared} bytes, "
                        + (f"the geometry needs {limit}" if exact else f"more than the {limit >> 20} MiB allowed"))


# ---------------------------------------------------------------- reading blocks, bounded


def read_block(path: str, location, compression, inline_text: str | None) -> bytes:
    """The bytes of a checked data block, decompressed to at most its declared size.

    location: 'attachment:POS:SIZE' / 'inline:base64' (or the xisf package's parsed tuple/list);
    compression: 'codec[+sh]:SIZE[:ITEM]' (or the package's parsed tuple) or None.
    """
    if not isinstance(location, str):
        location = ":".join(str(v) for v in location)
    if not isinstance(compression, (str, type(None))):
        codec, declared, item = compression
        compression = f"{codec}:{declared}" + (f":{item}" if item else "")
    m = ATTACHMENT.match(location)
    if m is not None:
        with open(path, "rb") as f:
            f.seek(int(m.group(1)))
            data = f.read(int(m.group(2)))
    else:
        encoding = location.split(":")[1]
        text = (inline_text or "").strip()
        data = base64.b64decode(text) if encoding == "base64" else base64.b16decode(text.upper())
    if compression is None:
        return data
    c = COMPRESSION.match(compression)
    codec, shuffled, declared = c.group(1), c.group(2), int(c.group(3))
    item = int(c.group(4) or 1)
    data = _decompress(codec, data, declared)
    if len(data) != declared:
        raise ValueError(f"compressed block holds {len(data)} bytes, declared {declared}")
    if shuffled and item > 1 and declared % item == 0:
        data = np.frombuffer(data, np.uint8).reshape(item, -1).T.tobytes()
    return data


def _decompress(codec: str, data: bytes, declared: int) -> bytes:
    """At most declared + 1 bytes of the decompressed block (one more tells a bomb from a fit)."""
    if codec == "zlib":
        return zlib.decompressobj().decompress(data, declared + 1)
    if codec in ("lz4", "lz4hc"):
        import lz4.block

        return lz4.block.decompress(data, uncompressed_size=declared)  # fails if it would write more
    import zstandard

    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)) as reader:
        return reader.read(declared + 1)


@functools.cache
def _bounded_reader_class():
    """The xisf package's XISF reader with every data block (properties included) read through
    read_block, so that none decompresses past its declared size."""
    xisf = _xisf_module()

    class BoundedXISF(xisf.XISF):
        def _read_data_block(self, elem):
            return read_block(self._fname, elem["location"], elem.get("compression"), elem.get("value"))

    return BoundedXISF


# ---------------------------------------------------------------- reading and writing images


def read_xisf(path, max_pixels: int) -> LoadedImage:
    """The first image of an XISF file -> LoadedImage(pixels, "xisf", bit_depth, metadata=XisfMetadata).

    pixels: (H, W) or (H, W, C) uint8 (bit_depth 8), uint16 (16) or float32 in [0, 1] (32).
    Raises XisfError (one line naming the file); ImportError's hint becomes that line too.
    """
    path = os.fspath(path)
    layout = check_xisf_structure(path, max_pixels)
    try:
        reader_class = _bounded_reader_class()
        with quiet_decoders(), contextlib.redirect_stdout(io.StringIO()):
            properties = reader_class(path).get_images_metadata()[0]["XISFProperties"]
            raw = read_block(path, layout.location, layout.compression, layout.inline_text)
    except ImportError as e:
        raise XisfError(f"{path}: {e}") from None
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - the package or a codec tripping over a damaged file
        raise XisfError(f"{path}: cannot decode XISF ({type(e).__name__}: {one_line(e)})") from None
    pixels = _pixels(path, raw, layout)
    bit_depth = {1: 8, 2: 16}.get(layout.dtype.itemsize, 32)
    return LoadedImage(pixels, "xisf", bit_depth, metadata=XisfMetadata(layout.fits_keywords, properties))


def _pixels(path: str, raw: bytes, layout: XisfLayout) -> np.ndarray:
    """The data block -> (H, W) or (H, W, C) native uint8 | uint16 | float32 in [0, 1]."""
    h, w, c = layout.height, layout.width, layout.channels
    a = np.frombuffer(raw, layout.dtype)
    a = a.reshape(c, h, w).transpose(1, 2, 0) if layout.planar else a.reshape(h, w, c)
    if a.dtype.kind == "f":
        low, high = layout.bounds
        a = ((a.astype(np.float64) - low) / (high - low)).astype(np.float32) if (low, high) != (0, 1) \
            else a.astype(np.float32)
        if not np.isfinite(a).all():
            raise XisfError(f"{path}: image holds NaN or inf values")
        if a.min() < 0 or a.max() > 1:
            raise XisfError(f"{path}: float samples outside the image's bounds {low:g}:{high:g} would be clipped")
    a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("="))
    return a[:, :, 0] if c == 1 else a


def write_xisf(path, pixels: np.ndarray, bit_depth: int, metadata: XisfMetadata | None = None, *,
               overwrite: bool = False) -> None:
    """Write (H, W) or (H, W, C) float32 in [0, 1] as an XISF file, atomically.

    bit_depth 8 -> UInt8, 16 -> UInt16 (rounded to nearest), 32 -> Float32 (bounds 0:1).
    C = 2 or 4: the alpha channel is dropped. metadata: FITS keywords and properties to write.
    Raises XisfError if `path` exists and not overwrite, or writing fails; nothing partial is left.
    """
    from ..config import __version__

    path = os.fspath(path)
    a = np.asarray(pixels, dtype=np.float32)
    if a.ndim == 3 and a.shape[2] in (2, 4):
        a = a[:, :, :-1]
    data = a if bit_depth == 32 else quantize(a, bit_depth)
    data = data[:, :, None] if data.ndim == 2 else data  # (H, W, 1 | 3) for the package
    metadata = metadata or XisfMetadata()
    image_metadata = {"FITSKeywords": _package_keywords(metadata.fits_keywords),
                      "XISFProperties": _writable_properties(metadata.properties)}
    try:
        xisf = _xisf_module()
        with atomic_output(path, overwrite=overwrite, suffix=".xisf") as tmp:
            with contextlib.redirect_stdout(io.StringIO()):
                xisf.XISF.write(tmp, np.ascontiguousarray(data), creator_app=f"srcnn_np {__version__}",
                                image_metadata=image_metadata, codec="zlib", shuffle=True)
    except OutputExistsError:
        raise XisfError(exists(path)) from None
    except ImportError as e:
        raise XisfError(f"{path}: {e}") from None
    except OSError as e:
        raise XisfError(f"{path}: cannot write ({(e.strerror or one_line(e)).lower()})") from None
    except (ValueError, TypeError, NotImplementedError) as e:
        raise XisfError(f"{path}: cannot write ({one_line(e)})") from None


def _package_keywords(keywords: list) -> dict:
    """[(name, value, comment)] -> the xisf package's {name: [{"value", "comment"}]} (order of first use)."""
    out = {}
    for name, value, comment in keywords:
        out.setdefault(name, []).append({"value": value, "comment": comment})
    return out


def _writable_properties(properties: dict) -> dict:
    """Properties as the package writes them: Boolean values spelt true/false as XISF wants."""
    out = {}
    for pid, prop in properties.items():
        prop = dict(prop)
        if prop.get("type") == "Boolean":
            prop["value"] = "true" if prop["value"] else "false"
        out[pid] = prop
    return out


# ---------------------------------------------------------------- metadata of the upscaled image


def upscaled_metadata(metadata: XisfMetadata, scale: int, provenance: dict, image_size=None) -> XisfMetadata:
    """metadata for the image upscaled by `scale`: FITS keywords through header.upscaled_header
    (WCS and all rescaled and checked, the provenance keywords added), properties that carry the
    pixel scale rescaled to match (module docstring). image_size: (width, height) of the input.
    Raises header.HeaderError for a header that cannot be rescaled or does not check out."""
    from .header import upscaled_header

    header, unparsed = _astropy_header(metadata.fits_keywords)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy on HIERARCH and long cards
        header = upscaled_header(header, scale, provenance, image_size=image_size)
        keywords = [_keyword(card) for card in header.cards if card.keyword not in DISCARDED_KEYWORDS]
    properties = {}
    for pid, prop in metadata.properties.items():
        if pid.startswith(ASTROMETRY) and "SplineWorldTransformation" in pid:
            continue  # a distortion model in input pixels: cannot be rescaled
        prop = dict(prop)
        if pid == ASTROMETRY + "ReferenceImageCoordinates":
            prop["value"] = np.asarray(prop["value"], np.float64) * scale
        elif pid in (ASTROMETRY + "LinearTransformationMatrix", *PIXEL_SIZE_PROPERTIES):
            prop["value"] = np.asarray(prop["value"], np.float64) / scale
        properties[pid] = prop
    return XisfMetadata(keywords + unparsed, properties)


def _astropy_header(keywords: list):
    """[(name, value text, comment)] -> (astropy Header with the values parsed as FITS parses them,
    [the keywords astropy cannot hold (non-ASCII text, odd names), kept as they are])."""
    from .header import import_astropy

    fits, _ = import_astropy()
    header, unparsed = fits.Header(), []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, value, comment in keywords:
            try:
                if name in ("HISTORY", "COMMENT"):
                    header.append(fits.Card(name, comment or value), end=True)
                    continue
                parsed = fits.Card.fromstring(f"{'VALUE':<8}= {value}").value
                card = fits.Card(name, parsed, comment)
                card.verify("exception")
                header.append(card, end=True)
            except Exception:  # noqa: BLE001 - whatever astropy refuses is carried unchanged
                unparsed.append((name, value, comment))
    return header, unparsed


def _keyword(card) -> tuple:
    """An astropy Card -> (name, value text as FITS writes it, comment)."""
    from .header import import_astropy

    value = card.value
    if card.keyword in ("HISTORY", "COMMENT"):
        return card.keyword, "", str(value)
    if isinstance(value, import_astropy()[0].card.Undefined):
        text = ""
    elif isinstance(value, bool):
        text = "T" if value else "F"
    elif isinstance(value, (int, np.integer)):
        text = str(int(value))
    elif isinstance(value, (float, np.floating)):
        text = repr(float(value)).upper()
    else:
        text = "'" + str(value).replace("'", "''") + "'"
    return card.keyword, text, card.comment
