"""Every WCS convention astropy.wcs reads, through the CLI at x2, x3, x4 (issue 23): the output's
sky positions agree with the input's within 1e-3 output pixels, or the file is refused with one
line and nothing written. Headers are built here from real-format cards of each convention; the
sky is compared independently of srcnn_np's own check (astropy maps each input pixel and the
output pixel centre s * x + (s - 1) / 2 to the sky; their separation in output pixels). Also:
srcnn_np's check function, astropy's own shipped FITS files, camera keywords, XISF."""
import base64
import os
import warnings

import numpy as np
import pytest

fits = pytest.importorskip("astropy.io.fits")
import astropy  # noqa: E402
from astropy.wcs import WCS  # noqa: E402

from srcnn_np.cli import EXIT_OK, main  # noqa: E402
from srcnn_np.io.header import HeaderError, check_rescaled_wcs, rescaled_header, upscaled_header  # noqa: E402
from srcnn_np.io.xisf import read_xisf  # noqa: E402
from .conftest import TEST_PROVENANCE  # noqa: E402

WIDTH, HEIGHT = 12, 10
TOLERANCE = 1e-3  # output pixels
ALTERNATES = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

TAN = [("CTYPE1", "RA---TAN"), ("CTYPE2", "DEC--TAN"), ("CRVAL1", 150.1), ("CRVAL2", 2.2),
       ("CRPIX1", 6.3), ("CRPIX2", 4.6), ("CUNIT1", "deg"), ("CUNIT2", "deg")]
CD = [("CD1_1", -2.8e-4), ("CD1_2", 3.1e-5), ("CD2_1", 2.6e-5), ("CD2_2", 2.8e-4)]
CDELT = [("CDELT1", -2.8e-4), ("CDELT2", 2.8e-4)]
PC = [("PC1_1", 0.96), ("PC1_2", -0.28), ("PC2_1", 0.28), ("PC2_2", 0.96)]
SIP = [("A_ORDER", 3), ("A_2_0", 2.1e-5), ("A_1_1", -1.3e-5), ("A_0_2", 4.0e-6), ("A_3_0", 1.1e-7),
       ("A_1_2", -2.0e-8), ("B_ORDER", 3), ("B_2_0", -3.0e-6), ("B_1_1", 1.7e-5), ("B_0_2", 2.2e-5),
       ("B_0_3", 9.0e-8), ("AP_ORDER", 3), ("AP_1_0", -1.0e-6), ("AP_2_0", -2.1e-5), ("AP_0_2", -4.0e-6),
       ("BP_ORDER", 3), ("BP_0_1", 1.0e-6), ("BP_1_1", -1.7e-5), ("BP_0_2", -2.2e-5),
       ("A_DMAX", 0.02), ("B_DMAX", 0.03)]
# A DSS plate solution, the keywords of the Digitized Sky Survey's cut-outs (values from one of them)
DSS = [("PLTRAH", 14), ("PLTRAM", 37), ("PLTRAS", 46.88253), ("PLTDECSN", "-"), ("PLTDECD", 60),
       ("PLTDECM", 12), ("PLTDECS", 59.28761), ("EQUINOX", 2000.0), ("PLTSCALE", 67.2), ("CNPIX1", 8860),
       ("CNPIX2", 1708), ("XPIXELSZ", 25.28445), ("YPIXELSZ", 25.28445), ("PPO1", 0.0), ("PPO2", 0.0),
       ("PPO3", 176616.9833815), ("PPO4", 0.0), ("PPO5", 0.0), ("PPO6", 177193.56115606),
       ("AMDX1", 67.226158492105), ("AMDX2", -0.23024540155842), ("AMDX3", 1.0901493794544),
       ("AMDX4", 1.1835555135256e-06), ("AMDX5", 5.5613287069447e-06), ("AMDX6", -3.8419945268889e-05),
       ("AMDY1", 67.23331978069), ("AMDY2", 0.22606735154764), ("AMDY3", -0.52719954923422),
       ("AMDY4", -7.3037555803828e-06), ("AMDY5", 1.9544740562734e-05), ("AMDY6", -5.6277730545338e-06),
       ("OBJCTX", 8865.35), ("OBJCTY", 1712.93)]
TNX_WAT = [("WAT0_001", "system=image"),
           ("WAT1_001", 'wtype=tnx axtype=ra lngcor = "3. 3. 3. 2. -0.002 0.002 -0.002 0.002 1.e-7 '),
           ("WAT1_002", '2.e-7 3.e-7 4.e-7 5.e-7 6.e-7"'),
           ("WAT2_001", 'wtype=tnx axtype=dec latcor = "3. 3. 3. 2. -0.002 0.002 -0.002 0.002 1.e-7 '),
           ("WAT2_002", '-2.e-7 3.e-7 4.e-7 -5.e-7 6.e-7"')]
CUBE_AXIS = [("CTYPE3", "VRAD"), ("CUNIT3", "m/s"), ("CRPIX3", 1.0), ("CRVAL3", 1500.0), ("CDELT3", 250.0)]

CONVENTIONS = {
    "CDi_j": TAN + CD,
    "PCi_j + CDELTi": TAN + CDELT + PC,
    "CROTA2 + CDELTi (AIPS)": TAN + CDELT + [("CROTA2", 16.3)],
    "CROTA1 and CROTA2": TAN + CDELT + [("CROTA1", 16.3), ("CROTA2", 16.3)],
    "CDELTi only": TAN + CDELT,
    "no CRPIX (defaults)": [c for c in TAN if not c[0].startswith("CRPIX")] + CDELT,
    "PC00i00j (old)": TAN + CDELT + [("PC001001", 0.96), ("PC001002", -0.28), ("PC002001", 0.28),
                                     ("PC002002", 0.96)],
    "CD00i00j (old)": TAN + [("CD001001", -2.8e-4), ("CD001002", 3.1e-5), ("CD002001", 2.6e-5),
                             ("CD002002", 2.8e-4)],
    "PC0i_0j and CD0i_0j": TAN + CDELT + [("PC01_01", 0.96), ("PC01_02", -0.28), ("PC02_01", 0.28),
                                          ("PC02_02", 0.96)],
    "CD + CDELT (CD wins)": TAN + CD + [("CDELT1", -1e-3), ("CDELT2", 1e-3)],
    "PC + CD + CDELT (PC wins)": TAN + CDELT + PC + [("CD1_1", -5e-4), ("CD2_2", 5e-4)],
    "PC + CD without CDELT (PC wins, CDELT 1)": TAN + [("PC1_1", 2.7e-4), ("PC1_2", -8e-5), ("PC2_1", 8e-5),
                                                        ("PC2_2", 2.7e-4), ("CD1_1", -5e-4), ("CD2_2", 5e-4)],
    "CD + CROTA2 (CD wins)": TAN + CD + [("CROTA2", 40.0)],
    "alternates A (galactic SIN) and B (linear)": TAN + CD + [
        ("WCSNAMEA", "GALACTIC"), ("CTYPE1A", "GLON-SIN"), ("CTYPE2A", "GLAT-SIN"), ("CRPIX1A", 3.5),
        ("CRPIX2A", 7.25), ("CRVAL1A", 236.8), ("CRVAL2A", 42.1), ("CDELT1A", -2.7e-4), ("CDELT2A", 2.9e-4),
        ("PC1_1A", 0.9), ("PC1_2A", 0.1), ("PC2_1A", -0.1), ("PC2_2A", 0.9), ("PV2_1A", 0.01),
        ("CTYPE1B", "DETX"), ("CTYPE2B", "DETY"), ("CRPIX1B", 1.0), ("CRPIX2B", 1.0), ("CRVAL1B", 100.0),
        ("CRVAL2B", 200.0), ("CDELT1B", 0.015), ("CDELT2B", 0.015), ("CUNIT1B", "mm"), ("CUNIT2B", "mm")],
    "SIP (A_, B_, AP_, BP_, DMAX)": [("CTYPE1", "RA---TAN-SIP"), ("CTYPE2", "DEC--TAN-SIP")] + TAN[2:] + CD + SIP,
    "TPV (PVi_m)": [("CTYPE1", "RA---TPV"), ("CTYPE2", "DEC--TPV")] + TAN[2:] + CD + [
        ("PV1_0", 1e-4), ("PV1_1", 1.0), ("PV1_2", 2e-3), ("PV1_4", 3e-2), ("PV1_7", -5e-2),
        ("PV2_0", -2e-4), ("PV2_1", 1.0), ("PV2_2", -1e-3), ("PV2_5", 2e-2), ("PV2_8", 4e-2)],
    "TNX (IRAF WAT cards)": [("CTYPE1", "RA---TNX"), ("CTYPE2", "DEC--TNX")] + TAN[2:] + CD + TNX_WAT,
    "AZP with PV2_1 (projection parameter)": [("CTYPE1", "RA---AZP"), ("CTYPE2", "DEC--AZP")] + TAN[2:]
    + CDELT + [("PV2_1", 2.0), ("LONPOLE", 180.0)],
    "NCP (AIPS, read as SIN)": [("CTYPE1", "RA---NCP"), ("CTYPE2", "DEC--NCP")] + TAN[2:] + CDELT,
    "GLS (AIPS, read as SFL)": [("CTYPE1", "RA---GLS"), ("CTYPE2", "DEC--GLS")] + TAN[2:] + CDELT,
    "DSS plate solution (no CTYPE)": DSS,
    "DSS plate solution beside CTYPE/CD": DSS + TAN + CD + [("CDELT1", -4.7e-4), ("CDELT2", 4.7e-4)],
    "IRAF LTV/LTM beside CD": TAN + CD + [("LTV1", -100.0), ("LTV2", -50.5), ("LTM1_1", 0.5), ("LTM2_2", 0.5)],
    "cube with a spectral axis": TAN + CDELT + PC + CUBE_AXIS,
    "cube, PC coupling the image axes with axis 3": TAN + CDELT + CUBE_AXIS + [("PC1_3", 1e-4), ("PC3_1", 2.0)],
    "WCSAXES 3 on a 2-D image": [("WCSAXES", 3)] + TAN + CD + [("CTYPE3", "FREQ"), ("CRVAL3", 1.4e9),
                                                               ("CDELT3", 1e6), ("CUNIT3", "Hz")],
}

REFUSED = {  # convention: (cards, a word the one-line refusal names)
    "distortion lookup table (CPDISj, DPj)": (TAN + CD + [("CPDIS1", "LOOKUP"), ("DP1", "EXTVER: 1"),
                                                          ("DP1", "NAXES: 2"), ("DP1", "AXIS.1: 1")], "CPDIS1"),
    "detector lookup table (D2IMDISj)": (TAN + CD + [("D2IMDIS1", "LOOKUP"), ("D2IM1", "EXTVER: 1")], "D2IMDIS1"),
    "-TAB coordinates": (TAN + CD + [("NAXIS3", 1), ("WCSAXES", 3), ("CTYPE3", "WAVE-TAB"), ("CRPIX3", 1.0),
                                     ("CRVAL3", 0.0), ("CDELT3", 1.0), ("PS3_0", "WCS-TAB"),
                                     ("PS3_1", "COORDS"), ("PS3_2", "INDEX")], "CTYPE3"),
    "SIP AP_ORDER without BP_ORDER (astropy cannot read it)": (
        [("CTYPE1", "RA---TAN-SIP"), ("CTYPE2", "DEC--TAN-SIP")] + TAN[2:] + CD + SIP[:11]
        + [("AP_ORDER", 2), ("AP_2_0", 1e-5)], "AP_ORDER"),
    "ZPX without its projection parameters (astropy cannot read it)": (
        [("CTYPE1", "RA---ZPX"), ("CTYPE2", "DEC--ZPX")] + TAN[2:] + CD, "CTYPEn"),
}


def header_of(cards, naxis3=None) -> "fits.Header":
    """A FITS header for a WIDTH x HEIGHT image (x naxis3 for a cube) holding `cards` as given."""
    h = fits.Header()
    h["SIMPLE"], h["BITPIX"] = True, -32
    axes = [WIDTH, HEIGHT] + ([naxis3] if naxis3 else [])
    h["NAXIS"] = len(axes)
    for i, n in enumerate(axes, 1):
        h[f"NAXIS{i}"] = n
    for key, value in cards:
        h.append(fits.Card(key, value), end=True)
    return h


def write_image(path, cards) -> "fits.Header":
    naxis3 = 3 if any(k == "CTYPE3" and v == "VRAD" for k, v in cards) else None
    naxis3 = naxis3 or dict(cards).get("NAXIS3")
    cards = [(k, v) for k, v in cards if k != "NAXIS3"]
    h = header_of(cards, naxis3)
    shape = ((naxis3,) if naxis3 else ()) + (HEIGHT, WIDTH)
    data = np.random.default_rng(1).random(shape).astype(np.float32) * 1000
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits.PrimaryHDU(data, h).writeto(path)
        return fits.getheader(path)


def alternates(header) -> list:
    """The WCS keys ('' primary, 'A'...) of `header`: those with a CTYPE, CRPIX, CDELT or CD card,
    and the primary for a DSS plate solution."""
    keys = [key for key in ALTERNATES.strip() if any(k.startswith(("CTYPE", "CRPIX", "CDELT", "CD1_"))
                                                     and k.endswith(key) and k[-2].isdigit() for k in header)]
    primary = any(k[:5] in ("CTYPE", "CRPIX", "CDELT") and k[5:].isdigit() or k.startswith(("CD1_", "PLTRAH"))
                  for k in header)
    return [""] * primary + keys


def sky_error(h_in, h_out, scale: int, key: str = "", grid_points=None) -> float:
    """Largest distance, in output pixels, between the world position of an input pixel (input WCS)
    and that of the output pixel centre s * x + (s - 1) / 2 (output WCS), over every input pixel
    (or a grid_points x grid_points grid spanning the image) and the first and last plane of a cube.
    Forward transforms only (wcslib's inverses are themselves inexact, up to 1e-3 pixels for a
    slanted SIN); a celestial separation is divided by the output's celestial pixel scale, any other
    world axis's difference by the length of its row of the output's pixel scale matrix."""
    width, height = h_in["NAXIS1"], h_in["NAXIS2"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w_in, w_out = WCS(h_in, key=key or " ", relax=True), WCS(h_out, key=key or " ", relax=True)
        if grid_points is None:
            ys, xs = np.mgrid[0:height, 0:width]
        else:
            xs, ys = np.meshgrid(np.linspace(0, width - 1, grid_points), np.linspace(0, height - 1, grid_points))
        p = np.zeros((xs.size * 2, w_in.naxis))
        p[:, 0], p[:, 1] = np.tile(xs.ravel(), 2), np.tile(ys.ravel(), 2)
        if w_in.naxis > 2:
            p[xs.size:, 2] = max(h_in.get("NAXIS3", 1), 1) - 1
        q = p.copy()
        q[:, :2] = scale * p[:, :2] + (scale - 1) / 2
        a, b = w_in.all_pix2world(p, 0), w_out.all_pix2world(q, 0)
        scales = np.linalg.norm(w_out.pixel_scale_matrix, axis=1)
        lng, lat = w_out.wcs.lng, w_out.wcs.lat
        if lng >= 0:  # the area of an output pixel on the projection plane, as a length
            celestial_scale = float(np.sqrt(abs(np.linalg.det(w_out.pixel_scale_matrix[np.ix_([lng, lat], [0, 1])]))))
    errors = []
    for axis in range(w_in.naxis):
        if axis not in (lng, lat):
            errors.append(np.abs(a[:, axis] - b[:, axis]) / scales[axis])
    if lng >= 0:
        lon1, lat1, lon2, lat2 = (np.radians(v) for v in (a[:, lng], a[:, lat], b[:, lng], b[:, lat]))
        haversine = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
        errors.append(np.degrees(2 * np.arcsin(np.sqrt(haversine))) / celestial_scale)
    return float(np.max(errors))


def upscale_cli(src, dst, scale, capsys):
    code = main(["upscale", str(src), "-o", str(dst), "--scale", str(scale)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, err


def assert_refused_in_one_line(code, err, tmp_path, word):
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != EXIT_OK and len(lines) == 1 and word in lines[0], (code, lines)
    assert sorted(os.listdir(tmp_path)) == ["in.fits"], os.listdir(tmp_path)  # no output, no temp file


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("convention", CONVENTIONS)
def test_convention_keeps_the_sky_through_the_cli(tmp_path, capsys, convention, scale):
    h_in = write_image(tmp_path / "in.fits", CONVENTIONS[convention])
    keys = alternates(header_of([c for c in CONVENTIONS[convention] if not c[0].startswith("WAT")]))
    assert keys, f"{convention}: astropy finds no WCS in the test header"
    code, err = upscale_cli(tmp_path / "in.fits", tmp_path / "out.fits", scale, capsys)
    assert code == EXIT_OK, err
    h_out = fits.getheader(tmp_path / "out.fits")
    assert (h_out["NAXIS1"], h_out["NAXIS2"]) == (scale * WIDTH, scale * HEIGHT)
    wat = [k for k in h_in if k.startswith("WAT")]
    if wat:  # TNX/ZPX corrections act on intermediate world coordinates: carried as they are; wcslib
        # does not parse these WAT cards, so the sky is compared on the rest of the header
        assert [h_out[k] for k in wat] == [h_in[k] for k in wat]
        for h in (h_in, h_out):
            for k in wat:
                del h[k]
    for key in keys:
        error = sky_error(h_in, h_out, scale, key)
        assert error < TOLERANCE, f"{convention} x{scale}, WCS {key or 'primary'}: {error:.3g} output pixels off"


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("convention", REFUSED)
def test_convention_that_cannot_be_rescaled_is_refused_in_one_line(tmp_path, capsys, convention, scale):
    cards, word = REFUSED[convention]
    write_image(tmp_path / "in.fits", cards)
    code, err = upscale_cli(tmp_path / "in.fits", tmp_path / "out.fits", scale, capsys)
    assert_refused_in_one_line(code, err, tmp_path, word)


def test_the_dss_header_that_came_out_141_pixels_off_now_keeps_the_sky(tmp_path, capsys):
    """astropy reads a DSS plate solution in preference to CRPIX/CD: rescaling CD alone left the sky
    up to 141 output pixels off at x2 (issue 23). The DSS cards are rescaled, and checked."""
    h_in = header_of(DSS + TAN + CD)
    naive = h_in.copy()  # what the rescaler did before: CRPIX and CD, not the DSS cards
    for j in (1, 2):
        naive[f"CRPIX{j}"] = 2 * (h_in[f"CRPIX{j}"] - 0.5) + 0.5
        naive[f"NAXIS{j}"] = 2 * h_in[f"NAXIS{j}"]
    for key, value in CD:
        naive[key] = value / 2
    assert sky_error(h_in, naive, 2) > 10, "the naive header should be far off (the test would not see the bug)"
    with pytest.raises(HeaderError, match=r"CNPIXn.*XPIXELSZ") as refused:
        check_rescaled_wcs(h_in, naive, 2)
    assert "\n" not in str(refused.value)
    out = upscaled_header(h_in, 2, TEST_PROVENANCE)
    assert (out["CNPIX1"], out["CNPIX2"], out["XPIXELSZ"]) == (2 * 8860, 2 * 1708, 25.28445 / 2)
    assert sky_error(h_in, out, 2) < TOLERANCE


# ---------------------------------------------------------------- the check itself


def test_check_refuses_an_error_above_a_thousandth_of_an_output_pixel_and_names_the_keywords():
    h_in = header_of(TAN + CD + [("CTYPE1A", "LINEAR"), ("CTYPE2A", "LINEAR"), ("CRPIX1A", 1.0),
                                 ("CRPIX2A", 1.0), ("CDELT1A", 0.5), ("CDELT2A", 0.5)])
    good = rescaled_header(h_in, 3, TEST_PROVENANCE)
    check_rescaled_wcs(h_in, good, 3)  # passes
    for key, shift, refused in [("CRPIX1", 5e-4, False), ("CRPIX1", 2e-3, True), ("CRPIX2A", 2e-3, True),
                                ("CD2_2", 1e-5 * 2.8e-4 / 3, False)]:
        bad = good.copy()
        bad[key] += shift
        if not refused:
            check_rescaled_wcs(h_in, bad, 3)
            continue
        with pytest.raises(HeaderError) as e:
            check_rescaled_wcs(h_in, bad, 3)
        message = str(e.value)
        assert "\n" not in message and ("WCS A (CTYPEnA, CRPIXnA" in message if key.endswith("A")
                                        else "WCS (CTYPEn, CRVALn, CRPIXn, CUNITn, CDn_n)" in message), message


def test_check_passes_a_header_without_wcs_and_refuses_one_astropy_cannot_read():
    plain = header_of([("OBJECT", "M 51"), ("EXPTIME", 30.0)])
    out = upscaled_header(plain, 2, TEST_PROVENANCE)
    assert not any(k.startswith(("CRPIX", "CDELT", "CD1_", "PC", "CTYPE")) for k in out), list(out)
    with pytest.raises(HeaderError, match="astropy.wcs cannot read the WCS"):
        upscaled_header(header_of(REFUSED["SIP AP_ORDER without BP_ORDER (astropy cannot read it)"][0]), 2, TEST_PROVENANCE)


# ---------------------------------------------------------------- astropy's own shipped files


def astropy_images() -> list:
    """astropy's shipped FITS files whose first image HDU (as the CLI picks it) has WCS keywords."""
    root = os.path.dirname(astropy.__file__)
    found = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy's own odd test files (a truncated one) warn
        for folder, _, names in os.walk(root):
            for name in sorted(n for n in names if n.endswith((".fits", ".fits.gz", ".fit", ".fts"))):
                try:
                    with fits.open(os.path.join(folder, name)) as hdul:
                        image = next((h for h in hdul if isinstance(h, (fits.PrimaryHDU, fits.ImageHDU,
                                                                        fits.CompImageHDU))
                                      and h.header.get("NAXIS", 0) >= 2), None)
                        if image is not None and any(k.startswith(("CTYPE", "CD1_", "PLTRAH")) for k in image.header):
                            found.append(os.path.relpath(os.path.join(folder, name), root))
                except Exception:  # noqa: BLE001 - not a FITS file astropy opens
                    continue
    return sorted(found)


ASTROPY_IMAGES = astropy_images()


def test_astropy_ships_the_files_this_test_relies_on():
    for name in ("wcs/tests/data/dss.14.29.56-62.41.05.fits.gz", "nddata/tests/data/sip-wcs.fits",
                 "wcs/tests/data/dist_lookup.fits.gz"):
        assert name in ASTROPY_IMAGES, ASTROPY_IMAGES


@pytest.mark.parametrize("name", ASTROPY_IMAGES)
def test_astropy_shipped_file_keeps_the_sky_or_is_refused(tmp_path, capsys, name):
    src = os.path.join(os.path.dirname(astropy.__file__), name)
    dst = tmp_path / "out.fits"
    code, err = upscale_cli(src, dst, 2, capsys)
    if code != EXIT_OK:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and os.listdir(tmp_path) == [], (name, lines, os.listdir(tmp_path))
        assert "dss" not in name and "sip-wcs" not in name, f"{name} should be rescaled, not refused: {lines}"
        return
    with warnings.catch_warnings(), fits.open(src) as hdul:
        warnings.simplefilter("ignore")  # astropy on its own odd test files (a truncated one)
        h_in = next(h for h in hdul if isinstance(h, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU))
                    and h.header.get("NAXIS", 0) >= 2).header.copy()
    h_out = fits.getheader(dst)
    for key in alternates(h_in):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if not WCS(h_in, key=key or " ", relax=True).has_celestial:
                continue
        error = sky_error(h_in, h_out, 2, key, grid_points=9)
        assert error < TOLERANCE, f"{name}, WCS {key or 'primary'}: {error:.3g} output pixels off at x2"


# ---------------------------------------------------------------- camera and scale keywords


CAMERA = [("FOCALLEN", 1000.0), ("XPIXSZ", 7.52), ("YPIXSZ", 7.52), ("XBINNING", 2), ("YBINNING", 2),
          ("CCDSUM", "2 2"), ("PIXSIZE1", 3.76), ("PIXSIZE2", 3.76), ("PIXSIZE", 3.76), ("XPIXELSZ", 7.52),
          ("YPIXELSZ", 7.52), ("PIXSCALE", 1.5511), ("SECPIX", 1.5511), ("SECPIX1", 1.5511), ("SECPIX2", 1.5511),
          ("PIXSCAL1", 1.5511), ("PIXSCAL2", 1.5511), ("SCALE", 1.5511)]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_camera_keywords_give_a_plate_solver_the_output_scale(tmp_path, capsys, scale):
    """Pixel sizes (binning included) and pixel scales are divided by s; focal length and binning
    stay, and a HISTORY card says what was divided. The scale a solver derives from FOCALLEN and
    XPIXSZ (206.265 * um / mm arcsec per pixel) is then the output's WCS scale. (XPIXELSZ/YPIXELSZ
    without a DSS plate solution make astropy.wcs fail on the input as on the output; the WCS is
    checked without them.)"""
    arcsec_per_pixel = 206.265 * 7.52 / 1000.0
    cards = TAN + [("CDELT1", -arcsec_per_pixel / 3600), ("CDELT2", arcsec_per_pixel / 3600)] + CAMERA
    h_in = write_image(tmp_path / "in.fits", cards)
    code, err = upscale_cli(tmp_path / "in.fits", tmp_path / "out.fits", scale, capsys)
    assert code == EXIT_OK, err
    h_out = fits.getheader(tmp_path / "out.fits")
    for key in ("XPIXSZ", "YPIXSZ", "PIXSIZE1", "PIXSIZE2", "PIXSIZE", "XPIXELSZ", "YPIXELSZ", "PIXSCALE",
                "SECPIX", "SECPIX1", "SECPIX2", "PIXSCAL1", "PIXSCAL2", "SCALE"):
        assert h_out[key] == pytest.approx(h_in[key] / scale, rel=1e-12), (key, h_in[key], h_out[key])
    for key in ("FOCALLEN", "XBINNING", "YBINNING", "CCDSUM"):
        assert h_out[key] == h_in[key], (key, h_in[key], h_out[key])
    solver_scale = 206.265 * h_out["XPIXSZ"] / h_out["FOCALLEN"]
    wcs_scale = abs(h_out["CDELT1"]) * 3600
    assert solver_scale == pytest.approx(wcs_scale, rel=1e-9), (solver_scale, wcs_scale)
    history = "".join(str(v) for v in h_out["HISTORY"])
    divided = ("PIXSCALE, PIXSCAL1, PIXSCAL2, SECPIX, SECPIX1, SECPIX2, SCALE, XPIXSZ, YPIXSZ, PIXSIZE, "
               f"PIXSIZE1, PIXSIZE2, XPIXELSZ, YPIXELSZ divided by {scale}")
    assert divided in history, history


# ---------------------------------------------------------------- XISF


def xisf_file(path, keywords_xml: str, properties_xml: str = "") -> None:
    from .test_xisf import planar, xisf_bytes

    data = np.random.default_rng(2).random((HEIGHT, WIDTH)).astype(np.float32)
    path.write_bytes(xisf_bytes(planar(data), f'geometry="{WIDTH}:{HEIGHT}:1" sampleFormat="Float32" '
                                'colorSpace="Gray"', keywords_xml + properties_xml))


SENSOR = ('<Property id="Instrument:Sensor:XPixelSize" type="Float32" value="7.52"/>'
          '<Property id="Instrument:Sensor:YPixelSize" type="Float32" value="7.52"/>'
          '<Property id="Instrument:Camera:XBinning" type="Int32" value="2"/>'
          '<Property id="Instrument:Telescope:FocalLength" type="Float32" value="1"/>'
          '<Property id="PCL:AstrometricSolution:ReferenceImageCoordinates" type="F64Vector" length="2" '
          f'location="inline:base64">{base64.b64encode(np.array([6.0, 5.0]).tobytes()).decode()}</Property>')


@pytest.mark.parametrize("scale", [2, 3])
def test_xisf_keywords_and_sensor_properties_are_rescaled_and_checked(tmp_path, capsys, scale):
    from .test_xisf import header_of as xisf_header, keyword_xml

    h_in = header_of(DSS + TAN + CD + CAMERA[:5])
    xisf_file(tmp_path / "in.xisf", keyword_xml(h_in), SENSOR)
    code = main(["upscale", str(tmp_path / "in.xisf"), "-o", str(tmp_path / "out.xisf"), "--scale", str(scale)])
    assert code == EXIT_OK, capsys.readouterr().err
    out = read_xisf(tmp_path / "out.xisf", max_pixels=10_000)
    # cards rebuilt from their values: wcslib reads PLTDECSN only from a fixed-format card image
    h_out = fits.Header([fits.Card(k, v) for k, v in xisf_header(out.metadata.fits_keywords).items()
                         if k not in ("HISTORY", "COMMENT")])
    for key in alternates(h_in):
        error = sky_error(h_in, h_out, scale, key)
        assert error < TOLERANCE, f"XISF x{scale}: {error:.3g} output pixels off"
    assert h_out["XPIXSZ"] == pytest.approx(7.52 / scale) and h_out["XBINNING"] == 2
    props = out.metadata.properties
    assert props["Instrument:Sensor:XPixelSize"]["value"] == pytest.approx(7.52 / scale)
    assert props["Instrument:Sensor:YPixelSize"]["value"] == pytest.approx(7.52 / scale)
    assert props["Instrument:Camera:XBinning"]["value"] == 2
    assert props["Instrument:Telescope:FocalLength"]["value"] == pytest.approx(1.0)


def test_xisf_with_a_wcs_that_cannot_be_rescaled_is_refused_in_one_line(tmp_path, capsys):
    from .test_xisf import keyword_xml

    cards, word = REFUSED["distortion lookup table (CPDISj, DPj)"]
    xisf_file(tmp_path / "in.xisf", keyword_xml(header_of(cards)))
    code = main(["upscale", str(tmp_path / "in.xisf"), "-o", str(tmp_path / "out.xisf")])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code != EXIT_OK and len(lines) == 1 and word in lines[0], (code, lines)
    assert sorted(os.listdir(tmp_path)) == ["in.xisf"], os.listdir(tmp_path)


# ---------------------------------------------------------------- out of core (Dask)


def test_dask_out_of_core_rescales_and_checks_the_header(tmp_path):
    pytest.importorskip("dask")
    from srcnn_np.chunked import upscale_file
    from srcnn_np.io.zarr_io import DaskIOError
    from srcnn_np.model import Upscaler

    h_in = write_image(tmp_path / "in.fits", DSS + TAN + CD)
    upscale_file(tmp_path / "in.fits", tmp_path / "out.fits", Upscaler.load(scale=2))
    error = sky_error(h_in, fits.getheader(tmp_path / "out.fits"), 2)
    assert error < TOLERANCE, f"dask x2: {error:.3g} output pixels off"
    write_image(tmp_path / "bad.fits", REFUSED["distortion lookup table (CPDISj, DPj)"][0])
    with pytest.raises(DaskIOError, match="CPDIS1") as e:
        upscale_file(tmp_path / "bad.fits", tmp_path / "bad_x2.fits", Upscaler.load(scale=2))
    assert "\n" not in str(e.value) and not (tmp_path / "bad_x2.fits").exists()
    assert sorted(os.listdir(tmp_path)) == ["bad.fits", "in.fits", "out.fits"], os.listdir(tmp_path)
