"""FITS-keyword and WCS rescaling shared by FITS, XISF and out-of-core upscaling.

astropy (the fits extra) is imported inside the functions. docs/wcs.md lists every convention
and keyword handled; in short, for scale s and pixel axes 1 and 2 (a cube's other axes and their
WCS are untouched), so that each output pixel centre keeps the sky position of the same point of
the input (0-based pixel centre x maps to s * x + (s - 1) / 2):

- NAXIS1/NAXIS2 times s; a HISTORY card is added.
- Every linear WCS representation present, primary and alternates A-Z, in whichever spelling
  wcslib reads: CRPIXja' = s * (CRPIXja - 0.5) + 0.5; CDi_ja (also CD0i_0j, CD00i00j) columns
  1 and 2 divided by s; CDELTia of the image axes divided by s (written as 1/s when the WCS has
  neither CDELT nor CD), the PCi_ja matrix (also PC0i_0j, PC00i00j) and CROTAi unchanged, unless
  PC couples the image axes with others, in which case PC columns 1 and 2 are divided instead.
  Rescaling each representation keeps the header right whichever one a reader prefers (wcslib:
  PC + CDELT before CD before CROTA + CDELT).
- SIP: A_p_q, B_p_q, AP_p_q, BP_p_q times s**(1 - p - q), A_DMAX/B_DMAX times s. TPV/PVi_m,
  TNX/ZPX (IRAF WAT cards) act on intermediate world coordinates and are unchanged.
- DSS plate solutions (which astropy.wcs reads in preference to CRPIX/CD): CNPIX1/2 (the image's
  corner on the plate) and OBJCTX/OBJCTY (plate pixels) times s; the pixel size XPIXELSZ/YPIXELSZ
  divided by s (see CAMERA_SIZE_KEYS); the plate solution in millimetres is unchanged.
- IRAF physical coordinates: LTVi' = s * (LTVi - 0.5) + 0.5, LTMi_j times s; DATASEC, TRIMSEC,
  BIASSEC rescaled to cover the same pixels; CCDSEC/DETSEC (detector coordinates) stay.
- Pixel scale and pixel size keywords divided by s (PIXEL_SCALE_KEYS, CAMERA_SIZE_KEYS), so a
  plate solver taking its scale from FOCALLEN and the pixel size gets the output's scale; the
  binning keywords (XBINNING, YBINNING, CCDSUM) record the camera's readout and stay. A HISTORY
  card names the keywords divided.
- BSCALE, BZERO, BLANK, DATAMIN, DATAMAX, CHECKSUM, DATASUM removed (they describe the old data).

Refused with HeaderError (one line): lookup-table distortions (CPDISj, CQDISia, D2IMDISj) and
-TAB coordinates, whose tables live in other HDUs that the output does not carry; a header with
WCS keywords that astropy.wcs cannot read (when only IRAF's WAT cards or stray DSS cards trip
it, the rest is checked without them; a header with no WCS passes as it is); and any header
whose rescaled WCS does not check out (`check_rescaled_wcs`): every WCS astropy reads from it,
primary and alternates, must map a grid of input pixels and the corresponding output pixels to
the same world coordinates within MAX_WCS_ERROR_PIXELS output pixels.
"""
import re
import warnings

import numpy as np

ASTROPY_HINT = 'FITS support needs astropy: pip install "srcnn_np[fits]"'
ALT_LETTERS = [""] + [chr(c) for c in range(ord("A"), ord("Z") + 1)]
IMAGE_AXES = (1, 2)
DROPPED_KEYS = ("BSCALE", "BZERO", "BLANK", "DATAMIN", "DATAMAX", "CHECKSUM", "DATASUM")
PIXEL_SCALE_KEYS = ("PIXSCALE", "PIXSCAL1", "PIXSCAL2", "SECPIX", "SECPIX1", "SECPIX2", "SCALE")  # arcsec/pixel
CAMERA_SIZE_KEYS = ("XPIXSZ", "YPIXSZ", "PIXSIZE", "PIXSIZE1", "PIXSIZE2", "XPIXELSZ", "YPIXELSZ")  # microns
PLATE_PIXEL_KEYS = ("CNPIX1", "CNPIX2", "OBJCTX", "OBJCTY")  # DSS: positions in plate pixels
SECTION_KEYS = ("DATASEC", "TRIMSEC", "BIASSEC")
TABLE_DISTORTION = re.compile(r"^(CPDIS\d|CQDIS\d[A-Z]?|D2IMDIS\d|D2IMFILE)$")
SIP_KEY = re.compile(r"^(A|B|AP|BP)_(\d+)_(\d+)$")
MATRIX_KEY = re.compile(r"^(PC|CD)(?:(\d+)_(\d+)([A-Z]?)|(\d{3})(\d{3}))$")  # PCi_ja, PC0i_0ja, PC00i00j
SECTION = re.compile(r"^\s*\[\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*:\s*(\d+)\s*\]\s*$")
WCS_FAMILY = re.compile(r"^(WCSAXES|CTYPE|CRPIX|CRVAL|CDELT|CUNIT|CROTA|CD|PC|PV|PS|LONPOLE|LATPOLE|CPDIS|CQDIS|"
                        r"DP|DQ|D2IM)(\d*(?:_\d+)?)([A-Z]?)$")
SIP_FAMILY = re.compile(r"^(A|B|AP|BP)_(ORDER|DMAX|\d+_\d+)$")
DSS_FAMILY = re.compile(r"^(CNPIX|PPO|AMDX|AMDY|PLTRA|PLTDEC|XPIXELSZ|YPIXELSZ)")
DSS_REQUIRED = ("PLTRAH", "PLTDECD", "PPO3", "PPO6", "AMDX1", "AMDY1", "CNPIX1", "CNPIX2", "XPIXELSZ", "YPIXELSZ")
WAT_KEY = re.compile(r"^WAT\d_\d{3}$")  # IRAF's world attribute cards (TNX, ZPX distortions)
MAX_WCS_ERROR_PIXELS = 1e-3  # output pixels
GRID_POINTS = 7  # per image axis


class HeaderError(ValueError):
    """A header whose WCS cannot be rescaled, or whose rescaled WCS does not check out; one line."""


def import_astropy():
    try:
        from astropy.io import fits
        from astropy import wcs
    except ImportError:
        raise ImportError(ASTROPY_HINT) from None
    return fits, wcs


# ---------------------------------------------------------------- rescaling


def scale_section(value: str, scale: int):
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


def _matrix_cards(hdr, alt: str) -> dict:
    """{(kind 'PC' | 'CD', i, j): keyword} of the WCS with suffix `alt`, in every spelling wcslib reads."""
    cards = {}
    for key in hdr.keys():
        m = MATRIX_KEY.match(key)
        if m is None:
            continue
        if m.group(2) is not None:
            i, j, suffix = int(m.group(2)), int(m.group(3)), m.group(4)
        else:
            i, j, suffix = int(m.group(5)), int(m.group(6)), ""
        if suffix == alt:
            cards[(m.group(1), i, j)] = key
    return cards


def _has_wcs(hdr, alt: str) -> bool:
    return any((m := WCS_FAMILY.match(key)) and m.group(3) == alt and m.group(2) for key in hdr.keys())


def _rescale_linear_wcs(hdr, scale: int, alt: str) -> None:
    """Rescale CRPIX and every linear representation (CD, PC + CDELT, CROTA + CDELT) of the WCS
    with suffix `alt`, in place."""
    if not _has_wcs(hdr, alt):
        return
    for j in IMAGE_AXES:
        hdr[f"CRPIX{j}{alt}"] = scale * (float(hdr.get(f"CRPIX{j}{alt}", 0.0)) - 0.5) + 0.5
    matrix = _matrix_cards(hdr, alt)
    for (kind, i, j), key in matrix.items():
        if kind == "CD" and j in IMAGE_AXES:
            hdr[key] = float(hdr[key]) / scale
    has_cd = any(kind == "CD" for kind, _, _ in matrix)
    pc = {(i, j): key for (kind, i, j), key in matrix.items() if kind == "PC"}
    coupled = any(float(hdr[key]) != 0.0 for (i, j), key in pc.items() if (i in IMAGE_AXES) != (j in IMAGE_AXES))
    if coupled:  # CDELT scales rows; the pixel axes are PC's columns
        n = max(max(i, j) for i, j in pc)
        for i in range(1, n + 1):
            for j in IMAGE_AXES:
                key = pc.get((i, j), f"PC{i}_{j}{alt}")
                value = float(hdr.get(key, 1.0 if i == j else 0.0))
                if value != 0.0:
                    hdr[key] = value / scale
        return
    for i in IMAGE_AXES:
        key = f"CDELT{i}{alt}"
        if key in hdr or pc or not has_cd:  # CDELT defaults to 1 beside PC, is ignored beside CD alone
            hdr[key] = float(hdr.get(key, 1.0)) / scale


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


def _refuse_tables(hdr) -> None:
    """HeaderError for a WCS whose lookup tables live in other HDUs (which the output does not carry)."""
    tables = [k for k in hdr.keys() if TABLE_DISTORTION.match(k)]
    if tables:
        raise HeaderError(f"lookup-table distortion ({', '.join(tables)}) cannot be rescaled; "
                          "remove those cards to upscale this image")
    tab = [k for k in hdr.keys() if k.startswith("CTYPE") and str(hdr[k]).strip().upper().endswith("-TAB")]
    if tab:
        raise HeaderError(f"-TAB coordinates ({', '.join(tab)}) index a table in another HDU, which the "
                          "output does not carry; remove those cards to upscale this image")


def _rescale_numbers(hdr, keys, factor: float) -> list:
    """Multiply each numeric card of `keys` present by factor; the keys changed."""
    changed = []
    for key in keys:
        if key in hdr and isinstance(hdr[key], (int, float)) and not isinstance(hdr[key], bool):
            hdr[key] = float(hdr[key]) * factor
            changed.append(key)
    return changed


def provenance_history(provenance: dict) -> str:
    """The one HISTORY line that tells a reader the provenance keywords' values."""
    return "srcnn_np: " + ", ".join(f"{key}={value}" for key, (value, _) in provenance.items())


def add_provenance(hdr, provenance: dict) -> None:
    """Write provenance ({KEYWORD: (value, comment)}, e.g. model.Upscaler.provenance) into the
    astropy Header `hdr` as keywords, and as one HISTORY line for people reading the header."""
    for key, (value, comment) in provenance.items():
        hdr[key] = (value, comment)
    hdr.add_history(provenance_history(provenance))


def rescaled_header(header, scale: int, provenance: dict):
    """A copy of `header` rescaled for the image upscaled by `scale` (module docstring), unchecked,
    with the provenance keywords added (add_provenance).

    Raises HeaderError for a table-based WCS that cannot be rescaled.
    """
    import_astropy()
    hdr = header.copy()
    _refuse_tables(hdr)
    for i in IMAGE_AXES:
        if f"NAXIS{i}" in hdr:
            hdr[f"NAXIS{i}"] = int(hdr[f"NAXIS{i}"]) * scale
    for alt in ALT_LETTERS:
        _rescale_linear_wcs(hdr, scale, alt)
    if any(f"{p}_ORDER" in hdr for p in ("A", "B", "AP", "BP")):
        _rescale_sip(hdr, scale)
    _rescale_iraf_physical(hdr, scale)
    _rescale_numbers(hdr, PLATE_PIXEL_KEYS, scale)
    for key in SECTION_KEYS:
        if key in hdr:
            scaled = scale_section(hdr[key], scale)
            if scaled is None:
                del hdr[key]  # unparseable: better absent than wrong
            else:
                hdr[key] = scaled
    divided = _rescale_numbers(hdr, PIXEL_SCALE_KEYS + CAMERA_SIZE_KEYS, 1.0 / scale)
    for key in DROPPED_KEYS:
        hdr.remove(key, ignore_missing=True, remove_all=True)
    add_provenance(hdr, provenance)
    if divided:
        hdr.add_history(f"srcnn_np: {', '.join(divided)} divided by {scale} (pixel scale and size of the "
                        "upscaled image); binning keywords kept (the camera's readout)")
    return hdr


def upscaled_header(header, scale: int, provenance: dict, image_size=None):
    """A copy of `header` describing the image upscaled by `scale` along axes 1 and 2, its WCS
    checked against the input's (check_rescaled_wcs).

    image_size: (width, height) of the input image, default NAXIS1/NAXIS2.
    provenance: {KEYWORD: (value, comment)} written by add_provenance. Raises HeaderError (one line).
    """
    out = rescaled_header(header, scale, provenance)
    check_rescaled_wcs(header, out, scale, image_size)
    return out


# ---------------------------------------------------------------- checking


def wcs_keywords(header, alt: str = "") -> list:
    """The WCS keyword families of `header` for suffix `alt` ('CDi_j', 'CRPIXj', 'A_p_q', ...), in
    header order; SIP and DSS plate solution cards are counted with the primary WCS (IRAF's LTV/LTM
    are not WCS)."""
    families = []
    for key in header.keys():
        m = WCS_FAMILY.match(key)
        if m is not None and m.group(3) == alt and m.group(2):
            family = m.group(1) + re.sub(r"\d+", "n", m.group(2)) + alt
        elif not alt and (SIP_FAMILY.match(key) or DSS_FAMILY.match(key) and _is_dss(header)):
            family = re.sub(r"\d+", "n", key)
        else:
            continue
        if family not in families:
            families.append(family)
    return families


def _wcs_of(header, alt: str):
    """astropy WCS of `header` with suffix `alt` (relaxed: every convention wcslib reads), warnings off."""
    _, wcs = import_astropy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return wcs.WCS(header, key=alt or " ", relax=True)


def _is_dss(header) -> bool:
    """True for a complete DSS plate solution (a lone XPIXELSZ is a camera's pixel size)."""
    return all(key in header for key in DSS_REQUIRED)


def _wcs_pair(header_in, header_out, alt: str):
    """(input WCS, output WCS) with suffix `alt`. When wcslib cannot parse the headers as they
    are, they are read again without IRAF's WAT cards (TNX, ZPX: corrections on intermediate world
    coordinates, which rescaling leaves unchanged) and without DSS cards that are not a complete
    plate solution (wcslib takes a lone XPIXELSZ for one), so that the rest is checked."""
    try:
        return _wcs_of(header_in, alt), _wcs_of(header_out, alt)
    except Exception:  # noqa: BLE001 - retried without those cards below, or raised again
        set_aside = [k for k in header_in.keys() if WAT_KEY.match(k)
                     or (DSS_FAMILY.match(k) and not _is_dss(header_in))]
        if not set_aside:
            raise
    without = []
    for header in (header_in, header_out):
        header = header.copy()
        for key in set_aside:
            header.remove(key, ignore_missing=True, remove_all=True)
        without.append(_wcs_of(header, alt))
    return tuple(without)


def _pixel_grid(image_size, naxis: int, naxes: list) -> np.ndarray:
    """(GRID_POINTS**2, naxis) 0-based pixel positions spanning the image; other axes alternately
    at their first and last pixel."""
    width, height = (max(int(v), 1) for v in image_size)
    xs, ys = np.meshgrid(np.linspace(0, width - 1, GRID_POINTS), np.linspace(0, height - 1, GRID_POINTS))
    grid = np.zeros((xs.size, naxis))
    grid[:, 0], grid[:, 1] = xs.ravel(), ys.ravel()
    for axis in range(2, naxis):
        last = max(naxes[axis] if axis < len(naxes) else 1, 1) - 1
        grid[1::2, axis] = last
    return grid


def wcs_error_pixels(wcs_in, wcs_out, scale: int, image_size) -> float:
    """Largest distance, in output pixels, between where the output WCS puts the world position of
    an input pixel and the output pixel that should be there (s * x + (s - 1) / 2, 0-based), over
    a grid of input pixels. World differences are turned into pixels through the output's local
    Jacobian (finite differences of one output pixel); longitudes are compared modulo 360."""
    naxis = wcs_in.naxis
    p_in = _pixel_grid(image_size, naxis, list(wcs_in.pixel_shape or ()))
    p_out = p_in.copy()
    p_out[:, :2] = scale * p_in[:, :2] + (scale - 1) / 2
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        world_in = wcs_in.all_pix2world(p_in, 0)
        world_out = wcs_out.all_pix2world(p_out, 0)
        columns = []
        for axis in range(naxis):
            step = np.zeros(naxis)
            step[axis] = 0.5
            columns.append(_world_difference(wcs_out, wcs_out.all_pix2world(p_out + step, 0),
                                             wcs_out.all_pix2world(p_out - step, 0)))
    jacobian = np.stack(columns, axis=-1)  # (points, world axes, pixel axes)
    difference = _world_difference(wcs_out, world_in, world_out)
    if (np.isfinite(world_in) != np.isfinite(world_out)).any():
        return np.inf  # a point on the sky in one header and off it in the other
    ok = np.isfinite(jacobian).all(axis=(1, 2)) & np.isfinite(difference).all(axis=1)
    offsets = [np.linalg.lstsq(j, d, rcond=None)[0] for j, d in zip(jacobian[ok], difference[ok])]
    return float(np.abs(np.array(offsets)).max()) if offsets else 0.0


def _world_difference(wcs, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a - b of (points, world axes) arrays, celestial longitudes wrapped into [-180, 180)."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    lng = wcs.wcs.lng
    if lng >= 0:
        d[:, lng] = (d[:, lng] + 180.0) % 360.0 - 180.0
    return d


def check_rescaled_wcs(header_in, header_out, scale: int, image_size=None) -> None:
    """Refuse (HeaderError, one line naming the WCS keywords) a rescaled header whose WCS, primary
    or any alternate A-Z, puts some grid point more than MAX_WCS_ERROR_PIXELS output pixels from
    where the input's WCS puts it (wcs_error_pixels), or that astropy.wcs cannot read.
    A header without WCS keywords passes. image_size: (width, height), default NAXIS1/NAXIS2."""
    if image_size is None:
        image_size = (header_in.get("NAXIS1", 1), header_in.get("NAXIS2", 1))
    for alt in ALT_LETTERS:
        families = wcs_keywords(header_in, alt)
        if not families:
            continue
        name = f"WCS {alt}" if alt else "WCS"
        try:
            wcs_in, wcs_out = _wcs_pair(header_in, header_out, alt)
        except Exception as e:  # noqa: BLE001 - whatever wcslib refuses: the file is refused
            reason = " ".join(str(e).split())[:120] or type(e).__name__
            raise HeaderError(f"astropy.wcs cannot read the {name} ({', '.join(families)}): {reason}; "
                              "it cannot be checked after rescaling") from None
        if wcs_in.naxis < 2:
            continue
        error = wcs_error_pixels(wcs_in, wcs_out, scale, image_size)
        if not error <= MAX_WCS_ERROR_PIXELS:
            raise HeaderError(f"the {name} ({', '.join(families)}) would be off by up to {error:.3g} output "
                              f"pixels after rescaling x{scale} (it uses a convention srcnn_np cannot rescale); "
                              "remove those cards to upscale this image")
