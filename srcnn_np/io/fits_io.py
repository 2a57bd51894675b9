"""FITS in and out: read an image HDU, rescale its header and WCS, write atomically.

astropy is an optional extra (``pip install "srcnn_np[fits]"``), imported inside the functions.

Data: `read_fits` returns the HDU's data in physical units, native byte order, as astropy scales
it (BSCALE/BZERO applied; BLANK pixels of integer data become NaN). Integer BITPIX images are
written back as float32 (BITPIX = -32): upscaled values are not integers and blank pixels need
NaN. Float data keeps its type (float32 -> float32, float64 -> float64).

Hostile files: `check_fits_structure` walks the raw headers before astropy sees them (valid
BITPIX, NAXIS <= 999, every NAXISn present, no more data claimed than the file holds; gzip,
bzip2, xz and zip files on their decompressed stream, at most 4 GiB), and anything astropy still
raises becomes a one-line FitsError; astropy's warnings are silenced while reading.

Header: srcnn_np.io.header.upscaled_header rescales NAXISn, every WCS convention, pixel scale and
camera keywords, and checks the result against the input's WCS (docs/wcs.md); a header it
refuses refuses the file, before anything is written.
The written file is one primary HDU holding the upscaled image and the header of the HDU it came
from (for an extension, the primary header's cards are not merged in); a `.fits.gz` name is
gzipped, a `.fits.fz` / `.fz` name tile-compressed (an empty primary HDU, then the image in a
compressed extension; lossless for float data unless a quantize level is given, see write_fits).
Reading takes the same files: astropy opens gzip and tile-compressed HDUs (CompImageHDU)
transparently, after check_fits_structure has walked them.
"""
import bz2
import contextlib
import gzip
import lzma
import math
import os
import re
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np

from .atomic import OutputExistsError, atomic_output
from .header import ASTROPY_HINT
from ..errors import exists, one_line
from .imageio import ImageIOError, check_regular_file, quiet_decoders


DEFAULT_QUANTIZE_LEVEL = 16.0  # astropy CompImageHDU's default quantize_level (fpack's is 4)
SUBTRACTIVE_DITHER_1 = 1  # astropy's quantize_method code; fpack's default (astropy's own is no dithering)
DITHER_SEED_FROM_DATA = -1  # the dither seed from the first tile's checksum: the same file every run
BLOCK_BYTES = 2880  # FITS headers and data come in blocks of 2880 bytes
CARD_BYTES = 80
VALID_BITPIX = (8, 16, 32, 64, -32, -64)
MAX_NAXIS = 999
MAX_HEADER_BLOCKS = 1000  # 36,000 cards; a longer header is refused
MAX_DECOMPRESSED_BYTES = 4 << 30  # a compressed file (gzip, bzip2, xz, zip, tile compression) may expand to this
READ_CHUNK_BYTES = 1 << 18
STRUCTURE_KEY = re.compile(r"^(SIMPLE|XTENSION|BITPIX|NAXIS\d*|PCOUNT|GCOUNT|GROUPS|ZIMAGE|ZBITPIX|ZNAXIS\d*)$")
INTEGER_VALUE = re.compile(rb"\s*([+-]?\d+)\s*(/.*)?", re.DOTALL)
END_CARD = re.compile(rb"END(?![A-Z0-9_-])")  # astropy's test: END followed by anything but a keyword character
DECOMPRESSORS = {b"\x1f\x8b\x08": gzip.open, b"BZ": bz2.open, b"\xfd7zXZ\x00": lzma.open}  # magic: opener
ZIP_MAGIC = b"PK\x03\x04"
LZW_MAGIC = b"\x1f\x9d"


class FitsError(ValueError):
    """A FITS file that cannot be read, has no usable image, or cannot be written; one line."""


@dataclass(frozen=True)
class FitsImage:
    """One image HDU: data (H, W) or (..., H, W) in physical units, NaN for blanks, native
    byte order; its header (astropy Header); its name ("PRIMARY", EXTNAME) and index."""

    data: np.ndarray
    header: object  # astropy.io.fits.Header
    hdu_name: str
    hdu_index: int


def _astropy_fits():
    try:
        from astropy.io import fits
    except ImportError:
        raise ImportError(ASTROPY_HINT) from None
    return fits


def _select_hdu(hdul, hdu, path):
    """(index, HDU) for hdu = None (first image HDU with >= 2 axes), an index or an EXTNAME."""
    fits = _astropy_fits()
    image_types = (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)
    if hdu is None:
        for i, h in enumerate(hdul):
            if isinstance(h, image_types) and h.header.get("NAXIS", 0) >= 2:
                return i, h
        raise FitsError(f"{path}: no image HDU with 2 or more axes")
    if isinstance(hdu, str) and hdu.strip().isdigit():
        hdu = int(hdu)
    try:
        index = hdu if isinstance(hdu, int) else hdul.index_of(hdu)
        chosen = hdul[index]
    except (KeyError, IndexError):
        names = ", ".join(f"{i}:{h.name}" for i, h in enumerate(hdul))
        raise FitsError(f"{path}: no HDU {hdu!r} (the file has {names})") from None
    if not isinstance(chosen, image_types):
        raise FitsError(f"{path}: HDU {hdu!r} is a {type(chosen).__name__}, not an image")
    return index, chosen


def read_fits(path, hdu=None) -> FitsImage:
    """Read one image HDU of a FITS file.

    hdu: None for the first HDU holding an image of 2 or more axes (the primary HDU unless it is
    empty), an int index, or an EXTNAME (a string of digits is taken as an index).
    Returns FitsImage with data (H, W) or (..., H, W), no axis of length 0 (refused): float data
    as stored, integer data scaled by BSCALE/BZERO by astropy, BLANK integer pixels turned into
    NaN (the array then float32).
    The file's structure is checked first (check_fits_structure), so that a hostile header cannot
    make astropy hang or allocate more than the file holds; astropy's warnings are silenced.
    Raises FitsError with a one-line reason naming the file (MemoryError passes through).
    """
    fits = _astropy_fits()
    path = os.fspath(path)
    check_fits_structure(path)
    try:
        with quiet_decoders(), fits.open(path, memmap=False) as hdul:
            index, chosen = _select_hdu(hdul, hdu, path)
            name = chosen.name
            _refuse_zero_length_axes(chosen.header, f"{path}: HDU {index} ({name})")
            data = chosen.data
            header = chosen.header.copy()
            if data is None or data.ndim < 2:
                raise FitsError(f"{path}: HDU {index} ({name}) holds no image of 2 or more axes")
            data = _blanks_to_nan(np.asarray(data), header)
    except (FitsError, MemoryError):
        raise
    except Exception as e:  # noqa: BLE001 - astropy tripping over a hostile file (KeyError, VerifyError...)
        raise FitsError(f"{path}: not a readable FITS file ({one_line(e)})") from None
    return FitsImage(data=data, header=header, hdu_name=name, hdu_index=index)


def _refuse_zero_length_axes(header, where: str) -> None:
    """FitsError naming the first NAXISn = 0 of an image header: such an image has no pixels."""
    for n in range(1, int(header.get("NAXIS", 0)) + 1):
        if header.get(f"NAXIS{n}") == 0:
            raise FitsError(f"{where}: NAXIS{n} = 0, the image has no pixels")


def physical_blank(header, dtype):
    """The value BLANK pixels have in integer data as astropy returns it, or None.

    (astropy itself turns BLANK into NaN when it scales integers to floats.)
    """
    if np.dtype(dtype).kind not in "iu" or "BLANK" not in header:
        return None
    return header["BLANK"] * header.get("BSCALE", 1) + header.get("BZERO", 0)


def _blanks_to_nan(data: np.ndarray, header) -> np.ndarray:
    """data in native byte order; integer pixels equal to the physical BLANK value become NaN (float32)."""
    data = data.astype(data.dtype.newbyteorder("="), copy=False)
    blank_value = physical_blank(header, data.dtype)
    if blank_value is not None:
        blank = data == blank_value
        if blank.any():
            data = data.astype(np.float32)
            data[blank] = np.nan
    return data


def check_fits_structure(path) -> None:
    """Walk the raw FITS headers of `path` before astropy builds HDUs from them.

    For the primary HDU and each extension (2880-byte blocks of 80-character cards up to END),
    refuse with FitsError (one line naming the file and the HDU) a header of more than
    MAX_HEADER_BLOCKS blocks or without END, BITPIX not one of 8, 16, 32, 64, -32, -64, NAXIS not
    an integer in 0..999, an NAXISn (n <= NAXIS), PCOUNT or GCOUNT missing where required, not an
    integer or negative, and data |BITPIX|/8 * GCOUNT * (PCOUNT + NAXIS1 * ... * NAXISn) larger
    than the bytes left in the file; then skip the data (padded to 2880 bytes) to the next header.
    Bytes after the last HDU that do not start with XTENSION end the walk (astropy ignores them).
    Tile-compressed images (ZIMAGE = T) get the same checks on ZBITPIX/ZNAXIS/ZNAXISn, their
    image being at most MAX_DECOMPRESSED_BYTES.
    gzip, bzip2, xz and single-member zip files (astropy opens them transparently) are checked
    on their decompressed stream, read in bounded chunks, with at most MAX_DECOMPRESSED_BYTES;
    LZW (.Z) files are refused. The file is never read whole: plain files are seeked past data.
    """
    path = os.fspath(path)
    try:
        check_regular_file(path)  # a FIFO would block here and in astropy
    except ImageIOError as e:
        raise FitsError(str(e)) from None
    try:
        with _fits_stream(path) as (stream, size):
            _walk_hdus(stream, size, path)
    except (OSError, EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile,
            NotImplementedError, RuntimeError) as e:  # the last two: zip compression methods, encryption
        raise FitsError(f"{path}: cannot read the file ({one_line(e)})") from None


@contextlib.contextmanager
def _fits_stream(path: str):
    """(binary stream of the FITS bytes, its size or None when decompressed on the fly)."""
    with open(path, "rb") as f:
        magic = f.read(6)
        opener = next((op for m, op in DECOMPRESSORS.items() if magic.startswith(m)), None)
        if magic.startswith(LZW_MAGIC):
            raise FitsError(f"{path}: LZW-compressed (.Z) FITS is not supported; decompress it first")
        if opener is None and not magic.startswith(ZIP_MAGIC):
            f.seek(0)
            yield f, os.fstat(f.fileno()).st_size
            return
    if opener is not None:
        with opener(path, "rb") as stream:
            yield stream, None
        return
    with zipfile.ZipFile(path) as archive:
        members = archive.namelist()
        if len(members) != 1:
            raise FitsError(f"{path}: a zipped FITS file must hold exactly one member (it holds {len(members)})")
        with archive.open(members[0]) as stream:
            yield stream, None


def _walk_hdus(stream, size, path: str) -> None:
    """check_fits_structure's walk; size: the stream's length, or None for a decompressed stream."""
    position, index = 0, 0
    while True:
        first_block = stream.read(BLOCK_BYTES)
        if index == 0 and not first_block:
            raise FitsError(f"{path}: empty file")
        if index == 0 and _card_key_value(first_block[:CARD_BYTES])[0] != "SIMPLE":
            raise FitsError(f"{path}: not a FITS file (it does not start with a SIMPLE card)")
        if index > 0 and not first_block.startswith(b"XTENSION"):
            return  # end of file, or trailing bytes astropy ignores (a cut extension header is reported)
        where = f"{path}: HDU {index}"
        cards, header_blocks = _header_cards(stream, first_block, where)
        position += header_blocks * BLOCK_BYTES
        data_bytes = _data_bytes(cards, where)
        if size is None and position + data_bytes > MAX_DECOMPRESSED_BYTES:
            raise FitsError(f"{where}: the data would decompress to more than {MAX_DECOMPRESSED_BYTES >> 30} GiB")
        left = _skip(stream, data_bytes, size, position)
        if left is not None:
            raise FitsError(f"{where}: the header claims {data_bytes} bytes of data but only {left} are left "
                            "in the file (truncated file or corrupt NAXISn)")
        padded = -(-data_bytes // BLOCK_BYTES) * BLOCK_BYTES
        _skip(stream, padded - data_bytes, size, position + data_bytes)  # the padding may be missing at the end
        position += padded
        index += 1


def _skip(stream, nbytes: int, size, position: int):
    """Move the stream nbytes forward from `position`; None, or the bytes that were left if it ends first."""
    if size is not None:  # a plain file: compare with its size, then seek
        if position + nbytes > size:
            return max(size - position, 0)
        stream.seek(position + nbytes)
        return None
    done = 0
    while done < nbytes:
        got = len(stream.read(min(nbytes - done, READ_CHUNK_BYTES)))
        if got == 0:
            return done
        done += got
    return None


def _header_cards(stream, first_block: bytes, where: str):
    """({structural keyword: raw value bytes or None}, header blocks) of the header starting with first_block."""
    cards, block, blocks = {}, first_block, 0
    while True:
        if len(block) < BLOCK_BYTES:
            raise FitsError(f"{where}: truncated header (the file ends before its END card)")
        blocks += 1
        for at in range(0, BLOCK_BYTES, CARD_BYTES):
            card = block[at:at + CARD_BYTES]
            if END_CARD.match(card):
                return cards, blocks
            key, value = _card_key_value(card)
            if STRUCTURE_KEY.match(key):
                if key in cards:
                    raise FitsError(f"{where}: {key} appears twice in the header")
                cards[key] = value
        if blocks == MAX_HEADER_BLOCKS:
            raise FitsError(f"{where}: no END card in the first {MAX_HEADER_BLOCKS} header blocks")
        block = stream.read(BLOCK_BYTES)


def _card_key_value(card: bytes):
    """(upper-case keyword, raw value bytes or None) of an 80-byte card, the way astropy reads keywords:
    "KEY = value", with '= ' allowed before column 9, and HIERARCH cards."""
    if card[:8].strip().upper() == b"HIERARCH" and card[8:9] == b" " and b"=" in card:
        key, value = card[9:].split(b"=", 1)
    elif 0 <= card.find(b"= ") <= 8:
        key, value = card[:card.find(b"= ")], card[card.find(b"= ") + 2:]
    else:
        key, value = card[:8], None
    return key.strip().upper().decode("latin-1"), value


def _shown(value) -> str:
    """A card's raw value for an error message: printable ASCII, without its comment."""
    if value is None:
        return "(no value)"
    text = value.split(b"/", 1)[0].strip().decode("latin-1")
    return "".join(c if " " <= c <= "~" else "?" for c in text)[:30]


def _integer(cards: dict, key: str, where: str, default=None) -> int:
    if key not in cards:
        if default is None:
            raise FitsError(f"{where}: {key} is missing")
        return default
    m = INTEGER_VALUE.fullmatch(cards[key] or b"")
    if m is None:
        raise FitsError(f"{where}: {key} = {_shown(cards[key])} is not an integer")
    return int(m.group(1))


def _count(cards: dict, key: str, where: str, default=None) -> int:
    """A non-negative integer card (NAXISn, PCOUNT, GCOUNT)."""
    value = _integer(cards, key, where, default)
    if value < 0:
        raise FitsError(f"{where}: {key} = {value} is negative")
    return value


def _image_axes(cards: dict, where: str, prefix: str = ""):
    """(|BITPIX| / 8, [NAXIS1, ..., NAXISn]) checked; prefix "Z" for a tile-compressed image."""
    bitpix = _integer(cards, prefix + "BITPIX", where)
    if bitpix not in VALID_BITPIX:
        raise FitsError(f"{where}: {prefix}BITPIX = {bitpix} is not one of {', '.join(map(str, VALID_BITPIX))}")
    naxis = _integer(cards, prefix + "NAXIS", where)
    if not 0 <= naxis <= MAX_NAXIS:
        raise FitsError(f"{where}: {prefix}NAXIS = {naxis} is not in 0..{MAX_NAXIS}")
    return abs(bitpix) // 8, [_count(cards, f"{prefix}NAXIS{n}", where) for n in range(1, naxis + 1)]


def _data_bytes(cards: dict, where: str) -> int:
    """Size of the HDU's data in bytes, without padding, from its checked structural cards."""
    value_bytes, axes = _image_axes(cards, where)
    pcount, gcount = _count(cards, "PCOUNT", where, 0), _count(cards, "GCOUNT", where, 1)
    if _is_true(cards.get("ZIMAGE")):
        z_value_bytes, z_axes = _image_axes(cards, where, "Z")
        if z_value_bytes * math.prod(z_axes) > MAX_DECOMPRESSED_BYTES:
            raise FitsError(f"{where}: the compressed image would decompress to more than "
                            f"{MAX_DECOMPRESSED_BYTES >> 30} GiB")
    if not axes:
        return 0
    if _is_true(cards.get("GROUPS")) and axes[0] == 0:  # random groups: NAXIS1 = 0 is not a dimension
        axes = axes[1:]
    return value_bytes * gcount * (pcount + math.prod(axes))


def _is_true(value) -> bool:
    return value is not None and value.split(b"/", 1)[0].strip() == b"T"


def write_fits(path, data: np.ndarray, header=None, overwrite: bool = False, quantize_level: float = 0.0) -> None:
    """Write `data` ((H, W) or (..., H, W)) as the image of a new FITS file, atomically.

    The file name chooses the container: `.fits` (or .fit/.fts) plain, `.fits.gz` gzip-compressed
    (the whole file; lossless), `.fits.fz` / `.fz` tile-compressed like fpack (an empty primary
    HDU, then the image in a compressed extension). Tile compression of float data, quantize_level:
    0 (default) lossless, GZIP_2 (byte-shuffled gzip) of the exact float bits, NaN kept;
    Q > 0 RICE_1 of the data quantised, tile by tile, to steps of (noise sigma) / Q with
    SUBTRACTIVE_DITHER_1 (seeded from the data, so reproducible): lossy, each value within half a
    step. For comparison, astropy's CompImageHDU defaults to RICE_1, Q = 16 without dithering,
    fpack to Q = 4 with SUBTRACTIVE_DITHER_1. Integer data is always tile-compressed losslessly
    with RICE_1.
    The header's structural cards (SIMPLE, BITPIX, NAXISn, XTENSION, ...) follow the data.
    Writes a temporary file in the same directory, then os.replace; refuses to replace an
    existing file unless overwrite=True (FitsError).
    """
    fits = _astropy_fits()
    path = os.fspath(path)
    data = np.asarray(data)
    if data.dtype.kind not in "biuf":
        raise FitsError(f"{path}: cannot write {data.dtype} data to FITS (use integer or float data)")
    if quantize_level < 0 or not math.isfinite(quantize_level):
        raise FitsError(f"{path}: quantize level must be 0 (lossless) or positive, got {quantize_level}")
    compression = _compression_of(path)
    if compression == "tile":
        lossless = data.dtype.kind == "f" and quantize_level == 0
        hdus = fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(
            data, _image_header(header), compression_type="GZIP_2" if lossless else "RICE_1",
            quantize_level=0.0 if lossless else (quantize_level or DEFAULT_QUANTIZE_LEVEL),
            quantize_method=SUBTRACTIVE_DITHER_1, dither_seed=DITHER_SEED_FROM_DATA)])
    else:
        hdus = fits.PrimaryHDU(data=data, header=header)
    try:
        with atomic_output(path, overwrite=overwrite, suffix=".fits") as tmp:
            if compression == "gzip":  # gzipped here, not by astropy: the gzip header names `path`, not tmp
                with open(tmp, "wb") as raw, gzip.GzipFile(os.path.basename(path), "wb", fileobj=raw) as stream:
                    hdus.writeto(stream, output_verify="fix")
            else:
                hdus.writeto(tmp, output_verify="fix", overwrite=True)
    except OutputExistsError:
        raise FitsError(exists(path)) from None
    except OSError as e:
        raise FitsError(f"{path}: cannot write ({e.strerror or e})") from None


def _compression_of(path: str) -> str | None:
    """'gzip' for a name ending in .gz, 'tile' for .fz, else None."""
    lower = path.lower()
    return "gzip" if lower.endswith(".gz") else "tile" if lower.endswith(".fz") else None


def _image_header(header):
    """A copy of a primary-HDU header fit for an image extension (no SIMPLE/EXTEND), or None."""
    if header is None:
        return None
    hdr = header.copy()
    for key in ("SIMPLE", "EXTEND", "XTENSION", "PCOUNT", "GCOUNT"):
        hdr.remove(key, ignore_missing=True, remove_all=True)
    return hdr
