"""FITS in and out: read an image HDU, rescale its header and WCS, write atomically.

astropy is an optional extra (``pip install "srcnn_np[fits]"``), imported inside the functions.

Data: `read_fits` returns the HDU's data in physical units, native byte order, as astropy scales
it (BSCALE/BZERO applied; BLANK pixels of integer data become NaN). Integer BITPIX images are
written back as float32 (BITPIX = -32): upscaled values are not integers and blank pixels need
NaN. Float data keeps its type (float32 -> float32, float64 -> float64).

Header (`upscaled_header`), for scale s, pixel axes 1 and 2 only (a cube's axis 3 and its
spectral WCS are untouched):
- every card is carried over; NAXIS1/NAXIS2 are multiplied by s; a HISTORY card is added.
- the WCS, primary and every alternate (suffix A-Z), so that each output pixel centre maps to the
  sky position of the same point in the input: CRPIXj' = s * (CRPIXj - 0.5) + 0.5;
  a CD matrix has its columns 1 and 2 divided by s; otherwise CDELT1/CDELT2 are divided by s
  (written as 1/s when absent) and PC / CROTA2 are unchanged, unless the PC matrix couples axes
  1-2 with other axes, in which case PC columns 1 and 2 are divided instead.
- SIP distortion is rescaled exactly: A_p_q, B_p_q, AP_p_q, BP_p_q times s**(1 - p - q),
  A_DMAX/B_DMAX times s. TPV/PV terms act on intermediate world coordinates and are unchanged.
  Lookup-table distortions (CPDISn, D2IMDISn) cannot be rescaled here: FitsError.
- IRAF physical coordinates: LTVi' = s * (LTVi - 0.5) + 0.5 and LTMi_j times s; DATASEC, TRIMSEC
  and BIASSEC are rescaled to cover the same pixels; CCDSEC/DETSEC (detector coordinates) stay.
- pixel-scale conveniences PIXSCALE, PIXSCAL1/2, SECPIX, SECPIX1/2 (arcsec/pixel) are divided by s.
- BSCALE, BZERO, BLANK, DATAMIN, DATAMAX, CHECKSUM and DATASUM are removed: they describe the
  old integer encoding or the old data.
The written file is one primary HDU holding the upscaled image and the header of the HDU it came
from (for an extension, the primary header's cards are not merged in).
"""
import os
import re
from dataclasses import dataclass

import numpy as np

from .atomic import OutputExistsError, atomic_output
from .science import BlankImageError, upscale_science

ASTROPY_HINT = 'FITS support needs astropy: pip install "srcnn_np[fits]"'
ALT_SUFFIXES = [""] + [chr(c) for c in range(ord("A"), ord("Z") + 1)]
IMAGE_AXES = (1, 2)
DROPPED_KEYS = ("BSCALE", "BZERO", "BLANK", "DATAMIN", "DATAMAX", "CHECKSUM", "DATASUM")
PIXEL_SCALE_KEYS = ("PIXSCALE", "PIXSCAL1", "PIXSCAL2", "SECPIX", "SECPIX1", "SECPIX2")
SECTION_KEYS = ("DATASEC", "TRIMSEC", "BIASSEC")
LOOKUP_DISTORTION_KEYS = ("CPDIS1", "CPDIS2", "D2IMDIS1", "D2IMDIS2", "D2IMFILE")
SIP_PREFIXES = ("A", "B", "AP", "BP")
SIP_KEY = re.compile(r"^(A|B|AP|BP)_(\d+)_(\d+)$")
SECTION = re.compile(r"^\s*\[\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*:\s*(\d+)\s*\]\s*$")


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
    Returns FitsImage with data (H, W) or (..., H, W): float data as stored, integer data scaled
    by BSCALE/BZERO by astropy, BLANK integer pixels turned into NaN (the array then float32).
    Raises FitsError with a one-line reason naming the file.
    """
    fits = _astropy_fits()
    try:
        with fits.open(path, memmap=False) as hdul:
            index, chosen = _select_hdu(hdul, hdu, path)
            data = chosen.data
            header = chosen.header.copy()
            name = chosen.name
    except FitsError:
        raise
    except FileNotFoundError:
        raise FitsError(f"{path}: no such file") from None
    except (OSError, ValueError, TypeError) as e:
        raise FitsError(f"{path}: not a readable FITS file ({e})") from None
    if data is None or data.ndim < 2:
        raise FitsError(f"{path}: HDU {index} ({name}) holds no image of 2 or more axes")
    data = np.asarray(data)
    data = data.astype(data.dtype.newbyteorder("="), copy=False)
    if data.dtype.kind in "iu" and "BLANK" in header:
        physical_blank = header["BLANK"] * header.get("BSCALE", 1) + header.get("BZERO", 0)
        blank = data == physical_blank
        if blank.any():
            data = data.astype(np.float32)
            data[blank] = np.nan
    return FitsImage(data=data, header=header, hdu_name=name, hdu_index=index)


def _scale_section(value: str, scale: int):
    """'[x1:x2,y1:y2]' in input pixels -> the same region in output pixels, or None."""
    m = SECTION.match(str(value))
    if m is None:
        return None

    def span(a, b):
        lo, hi = (a, b) if a <= b else (b, a)
        lo, hi = scale * (lo - 1) + 1, scale * hi
        return (lo, hi) if a <= b else (hi, lo)

    x1, x2, y1, y2 = (int(g) for g in m.groups())
    (x1, x2), (y1, y2) = span(x1, x2), span(y1, y2)
    return f"[{x1}:{x2},{y1}:{y2}]"


def _axis_count(header) -> int:
    return max(int(header.get("NAXIS", 2)), int(header.get("WCSAXES", 0)), 2)


def _rescale_linear_wcs(hdr, scale: int, alt: str) -> None:
    """Rescale the linear part (CRPIX, CD or CDELT/PC) of the WCS with suffix `alt` in place."""
    n = _axis_count(hdr)
    keys = [f"{k}{i}{alt}" for k in ("CTYPE", "CRPIX", "CRVAL", "CDELT", "CUNIT") for i in IMAGE_AXES]
    cd_keys = [f"CD{i}_{j}{alt}" for i in range(1, n + 1) for j in range(1, n + 1)]
    pc_keys = [f"PC{i}_{j}{alt}" for i in range(1, n + 1) for j in range(1, n + 1)]
    has_cd = any(k in hdr for k in cd_keys)
    if not (has_cd or any(k in hdr for k in keys + pc_keys)):
        return  # no WCS with this suffix
    for j in IMAGE_AXES:
        hdr[f"CRPIX{j}{alt}"] = scale * (float(hdr.get(f"CRPIX{j}{alt}", 0.0)) - 0.5) + 0.5
    if has_cd:
        for i in range(1, n + 1):
            for j in IMAGE_AXES:
                if f"CD{i}_{j}{alt}" in hdr:
                    hdr[f"CD{i}_{j}{alt}"] = float(hdr[f"CD{i}_{j}{alt}"]) / scale
        return
    coupled = any(float(hdr.get(f"PC{i}_{j}{alt}", 0.0)) != 0.0
                  for i in range(1, n + 1) for j in range(1, n + 1)
                  if (i in IMAGE_AXES) != (j in IMAGE_AXES))
    if coupled:
        for i in range(1, n + 1):
            for j in IMAGE_AXES:
                pc = f"PC{i}_{j}{alt}"
                value = float(hdr.get(pc, 1.0 if i == j else 0.0))
                if value != 0.0:
                    hdr[pc] = value / scale
        return
    for i in IMAGE_AXES:
        hdr[f"CDELT{i}{alt}"] = float(hdr.get(f"CDELT{i}{alt}", 1.0)) / scale


def _rescale_sip(hdr, scale: int) -> None:
    """SIP polynomials act on pixel offsets u = p - CRPIX: A_p_q' = A_p_q * s**(1 - p - q)."""
    for key in list(hdr.keys()):
        m = SIP_KEY.match(key)
        if m and f"{m.group(1)}_ORDER" in hdr:
            p, q = int(m.group(2)), int(m.group(3))
            hdr[key] = float(hdr[key]) * float(scale) ** (1 - p - q)
    for key in ("A_DMAX", "B_DMAX"):
        if key in hdr:
            hdr[key] = float(hdr[key]) * scale


def _rescale_iraf_physical(hdr, scale: int) -> None:
    """image = LTM . physical + LTV; the new image pixel is s * (image - 0.5) + 0.5."""
    if not any(k.startswith(("LTV", "LTM")) for k in hdr):
        return
    for i in IMAGE_AXES:
        hdr[f"LTV{i}"] = scale * (float(hdr.get(f"LTV{i}", 0.0)) - 0.5) + 0.5
        for j in IMAGE_AXES:
            key = f"LTM{i}_{j}"
            value = float(hdr.get(key, 1.0 if i == j else 0.0))
            if value != 0.0:
                hdr[key] = value * scale


def upscaled_header(header, scale: int, history: str):
    """A copy of `header` describing the image upscaled by `scale` along axes 1 and 2.

    See the module docstring for every card touched. `history` is added as HISTORY card(s).
    Raises FitsError for a lookup-table distortion that cannot be rescaled.
    """
    _astropy_fits()
    hdr = header.copy()
    present = [k for k in LOOKUP_DISTORTION_KEYS if k in hdr]
    if present:
        raise FitsError(f"lookup-table distortion ({', '.join(present)}) cannot be rescaled; "
                        "remove those cards to upscale this image")
    for i in IMAGE_AXES:
        if f"NAXIS{i}" in hdr:
            hdr[f"NAXIS{i}"] = int(hdr[f"NAXIS{i}"]) * scale
    for alt in ALT_SUFFIXES:
        _rescale_linear_wcs(hdr, scale, alt)
    if any(f"{p}_ORDER" in hdr for p in SIP_PREFIXES):
        _rescale_sip(hdr, scale)
    _rescale_iraf_physical(hdr, scale)
    for key in SECTION_KEYS:
        if key in hdr:
            scaled = _scale_section(hdr[key], scale)
            if scaled is None:
                del hdr[key]  # unparseable: better absent than wrong
            else:
                hdr[key] = scaled
    for key in PIXEL_SCALE_KEYS:
        if key in hdr:
            hdr[key] = float(hdr[key]) / scale
    for key in DROPPED_KEYS:
        hdr.remove(key, ignore_missing=True, remove_all=True)
    hdr.add_history(history)
    return hdr


def write_fits(path, data: np.ndarray, header=None, overwrite: bool = False) -> None:
    """Write `data` ((H, W) or (..., H, W)) as the primary HDU of a new FITS file, atomically.

    The header's structural cards (SIMPLE, BITPIX, NAXISn, XTENSION, ...) follow the data.
    Writes a temporary file in the same directory, then os.replace; refuses to replace an
    existing file unless overwrite=True (FitsError).
    """
    fits = _astropy_fits()
    path = os.fspath(path)
    data = np.asarray(data)
    if data.dtype.kind not in "biuf":
        raise FitsError(f"{path}: cannot write {data.dtype} data to FITS (use integer or float data)")
    hdu = fits.PrimaryHDU(data=data, header=header)
    try:
        with atomic_output(path, overwrite=overwrite, suffix=".fits") as tmp:
            hdu.writeto(tmp, output_verify="fix", overwrite=True)
    except OutputExistsError:
        raise FitsError(f"{path}: already exists (pass overwrite=True / --overwrite to replace it)") from None
    except OSError as e:
        raise FitsError(f"{path}: cannot write ({e.strerror or e})") from None


def upscale_fits(src, dst, upscale_fn, scale: int, *, method: str, hdu=None,
                 conserve_flux: bool = False, flux_units: str = "surface",
                 stretch: str = "linear", overwrite: bool = False) -> FitsImage:
    """Read `src`, upscale its image HDU with `upscale_science`, write `dst` with the new header.

    upscale_fn: (H, W) float32 in [0, 1] -> (scale*H, scale*W) float32 (see upscale_science).
    method: what did the upscaling, for the HISTORY card (e.g. "SRCNN weights srcnn_x2_astro.npz").
    Returns the FitsImage written. Raises FitsError (one line, naming the file) for unreadable
    input, an all-blank image, a header that cannot be rescaled, or an existing dst.
    """
    from . import __version__

    dst = os.fspath(dst)
    if os.path.exists(dst) and not overwrite:
        raise FitsError(f"{dst}: already exists (pass overwrite=True / --overwrite to replace it)")
    image = read_fits(src, hdu)
    try:
        data = upscale_science(image.data, upscale_fn, scale, conserve_flux=conserve_flux,
                               flux_units=flux_units, stretch=stretch)
    except BlankImageError as e:
        raise FitsError(f"{src}: HDU {image.hdu_index} ({image.hdu_name}): {e}") from None
    flux = f"flux conserved per block ({flux_units})" if conserve_flux else "flux not conserved"
    history = (f"srcnn_np {__version__}: upscaled x{scale} with {method}; HDU {image.hdu_index} "
               f"({image.hdu_name}) of {os.path.basename(os.fspath(src))}; {stretch} stretch of "
               f"each plane's finite range; {flux}; flux units {flux_units}; blank pixels NaN")
    try:
        header = upscaled_header(image.header, scale, history)
    except FitsError as e:
        raise FitsError(f"{src}: {e}") from None
    write_fits(dst, data, header, overwrite=overwrite)
    return FitsImage(data=data, header=header, hdu_name="PRIMARY", hdu_index=0)
