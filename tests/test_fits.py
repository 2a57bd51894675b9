"""srcnn_np.io.fits_io: FITS read/write, header and WCS rescaling, checked with astropy.wcs; hostile
files refused by the structural check before astropy reads them."""
import bz2
import gzip
import io
import lzma
import os
import sys
import warnings
import zipfile

import numpy as np
import pytest

fits = pytest.importorskip("astropy.io.fits")
from astropy.wcs import WCS

from srcnn_np import __version__
from srcnn_np.io.fits_io import (
    ASTROPY_HINT,
    FitsError,
    check_fits_structure,
    read_fits,
    write_fits,
)
from srcnn_np.io.header import HeaderError, upscaled_header
from srcnn_np.batch import JobFailed
from srcnn_np.model import Upscaler, bicubic
from srcnn_np.science import block_mean, block_repeat
from srcnn_np.weights import Weights

from .checks import assert_close
from .conftest import TEST_PROVENANCE, bicubic_upscaler, upscale_fits
from .test_fuzz import fits_bytes


def near_identity_weights(scale, seed=0):
    """Fixed SRCNN weights whose output is about the bicubic input: one identity path through
    the three convolutions plus small random weights everywhere else."""
    rng = np.random.default_rng(seed)
    arrays = {"conv1.weight": rng.normal(0, 1e-3, (64, 1, 9, 9)), "conv1.bias": np.zeros(64),
              "conv2.weight": rng.normal(0, 1e-3, (32, 64, 5, 5)), "conv2.bias": np.zeros(32),
              "conv3.weight": rng.normal(0, 1e-3, (1, 32, 5, 5)), "conv3.bias": np.zeros(1)}
    arrays["conv1.weight"][0, 0, 4, 4] = 1.0
    arrays["conv2.weight"][0, 0, 2, 2] = 1.0
    arrays["conv3.weight"][0, 0, 2, 2] = 1.0
    return Weights.from_arrays(arrays, scale, {"note": "test weights"})


def celestial_header(kind, shape=(30, 40)):
    """A 2-D image header with a TAN or CAR WCS in one of the linear-transform conventions."""
    h = fits.Header()
    h["NAXIS"], h["NAXIS1"], h["NAXIS2"] = 2, shape[1], shape[0]
    proj = "CAR" if kind.startswith("car") else "TAN"
    h["CTYPE1"], h["CTYPE2"] = f"RA---{proj}", f"DEC--{proj}"
    h["CRVAL1"], h["CRVAL2"] = (150.1, -30.2) if proj == "TAN" else (10.0, 0.0)
    h["CRPIX1"], h["CRPIX2"] = 17.3, 12.8
    h["CUNIT1"], h["CUNIT2"] = "deg", "deg"
    if kind in ("tan-cd", "car-cd"):
        h["CD1_1"], h["CD1_2"], h["CD2_1"], h["CD2_2"] = -2.1e-4, 3.0e-5, 2.5e-5, 2.0e-4
    elif kind == "tan-crota":
        h["CDELT1"], h["CDELT2"], h["CROTA2"] = -2.0e-4, 2.0e-4, 23.0
    else:  # tan-pc, car-pc
        h["CDELT1"], h["CDELT2"] = -2.0e-4, 2.0e-4
        h["PC1_1"], h["PC1_2"], h["PC2_1"], h["PC2_2"] = 0.9, -0.3, 0.35, 0.95
    return h


def add_sip(h):
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN-SIP", "DEC--TAN-SIP"
    h["A_ORDER"], h["B_ORDER"] = 2, 2
    h["A_2_0"], h["A_0_2"], h["A_1_1"] = 2e-5, -1e-5, 3e-6
    h["B_2_0"], h["B_0_2"], h["B_1_1"] = -1.5e-5, 2e-5, 1e-6
    return h


def pixel_mismatch(h_in, h_out, scale, shape_out, third=None):
    """Max distance, in output pixels, between where a grid of output pixel centres lands in the
    input (through the two WCSs: output pixel -> world -> input pixel) and where it should
    land: input pixel (p' + 0.5) / s - 0.5 (0-based)."""
    w_in, w_out = WCS(h_in), WCS(h_out)
    yy, xx = np.mgrid[0:shape_out[0]:5, 0:shape_out[1]:7].astype(float)
    pix_out = [xx.ravel(), yy.ravel()] + ([np.full(xx.size, third)] if third is not None else [])
    world = w_out.pixel_to_world_values(*pix_out)
    pix_in = w_in.world_to_pixel_values(*world)
    err = [np.abs(np.asarray(pix_in[k]) - ((pix_out[k] + 0.5) / scale - 0.5)) * scale for k in (0, 1)]
    if third is not None:
        err.append(np.abs(np.asarray(pix_in[2]) - third))
    return max(e.max() for e in err)


def star_field(shape=(30, 40), seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:shape[0], 0:shape[1]]
    img = 100.0 + rng.normal(0, 2.0, shape)
    for cy, cx, f in [(8, 9, 5e4), (20, 30, 1e4), (14, 22, 3e3)]:
        img += f * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * 1.3 ** 2))
    return img.astype(np.float32)


@pytest.mark.parametrize("kind", ["tan-pc", "tan-cd", "tan-crota", "car-pc", "car-cd", "tan-sip"])
@pytest.mark.parametrize("scale", [2, 3])
def test_wcs_of_every_output_pixel_centre_matches_the_input(tmp_path, kind, scale):
    h = celestial_header("tan-cd" if kind == "tan-sip" else kind)
    if kind == "tan-sip":
        add_sip(h)
    src, dst = tmp_path / "in.fits", tmp_path / "out.fits"
    fits.PrimaryHDU(star_field(), h).writeto(src)
    upscale_fits(src, dst, bicubic_upscaler(scale), method="bicubic")
    with fits.open(dst) as f:
        out_header, out = f[0].header, f[0].data
    assert out.shape == (30 * scale, 40 * scale)
    err = pixel_mismatch(fits.getheader(src), out_header, scale, out.shape)
    assert err < 1e-3, f"{kind} x{scale}: output pixel centres land {err:.3g} output pixels off"


def test_alternate_wcs_and_coupled_pc_matrix_are_rescaled(tmp_path):
    h = fits.Header()
    h["NAXIS"], h["NAXIS1"], h["NAXIS2"], h["NAXIS3"], h["WCSAXES"] = 3, 20, 16, 3, 3
    for k, v in [("CTYPE1", "RA---TAN"), ("CTYPE2", "DEC--TAN"), ("CTYPE3", "VRAD"),
                 ("CRPIX1", 10.0), ("CRPIX2", 8.0), ("CRPIX3", 1.0),
                 ("CRVAL1", 45.0), ("CRVAL2", 20.0), ("CRVAL3", 1000.0),
                 ("CDELT1", -1e-3), ("CDELT2", 1e-3), ("CDELT3", 500.0),
                 ("PC1_3", 1e-4), ("PC3_1", 2.0),  # axes 1-2 coupled with axis 3
                 ("CTYPE1A", "LINEAR"), ("CTYPE2A", "LINEAR"), ("CRPIX1A", 1.0), ("CRPIX2A", 1.0),
                 ("CRVAL1A", 0.0), ("CRVAL2A", 0.0), ("CDELT1A", 0.015), ("CDELT2A", 0.015)]:
        h[k] = v
    out = upscaled_header(h, 2, TEST_PROVENANCE)
    for plane in (0, 2):
        err = pixel_mismatch(h, out, 2, (32, 40), third=plane)
        assert err < 1e-3, f"coupled PC, plane {plane}: {err:.3g} output pixels off"
    w_in, w_out = WCS(h, key="A", naxis=2), WCS(out, key="A", naxis=2)
    x_out, y_out = np.array([0.0, 39.0]), np.array([0.0, 31.0])
    got = np.array(w_out.pixel_to_world_values(x_out, y_out))
    want = np.array(w_in.pixel_to_world_values((x_out + 0.5) / 2 - 0.5, (y_out + 0.5) / 2 - 0.5))
    assert_close("alternate WCS A", got, want, 1e-12)


def test_cube_planes_are_upscaled_and_the_spectral_axis_is_untouched(tmp_path):
    h = celestial_header("tan-pc", (16, 20))
    h["NAXIS"], h["NAXIS3"] = 3, 4
    h["CTYPE3"], h["CRVAL3"], h["CDELT3"], h["CRPIX3"], h["CUNIT3"] = "FREQ", 1.42e9, 1e5, 1.0, "Hz"
    cube = np.stack([star_field((16, 20), seed=k) * (k + 1) for k in range(4)])
    cube[2, 3:6, 4:8] = np.nan
    src, dst = tmp_path / "cube.fits", tmp_path / "up.fits"
    fits.PrimaryHDU(cube, h).writeto(src)
    upscale_fits(src, dst, bicubic_upscaler(2), method="bicubic", conserve_flux=True)
    with fits.open(dst) as f:
        out, hout = f[0].data, f[0].header
    assert out.shape == (4, 32, 40)
    assert (hout["NAXIS3"], hout["NAXIS2"], hout["NAXIS1"]) == (4, 32, 40)
    for key in ("CTYPE3", "CRVAL3", "CDELT3", "CRPIX3", "CUNIT3"):
        assert hout[key] == h[key], (key, hout[key], h[key])
    assert pixel_mismatch(fits.getheader(src), hout, 2, (32, 40), third=1) < 1e-3
    assert np.array_equal(np.isnan(out[2]), block_repeat(np.isnan(cube[2]), 2))
    for k in range(4):
        ok = np.isfinite(cube[k])
        rel = np.abs(block_mean(out[k], 2)[ok] - cube[k][ok]) / np.abs(cube[k][ok])
        assert rel.max() <= 1e-5, f"plane {k}: block means off by {rel.max():.3g} relative"


def test_int16_with_bscale_bzero_is_read_in_physical_units_and_written_as_float32(tmp_path):
    physical = np.round(star_field() / 2) * 2  # representable as int16 with BSCALE 2, BZERO 25000
    src, dst = tmp_path / "int16.fits", tmp_path / "out.fits"
    hdu = fits.PrimaryHDU(physical.astype(np.float64))
    hdu.header["BUNIT"] = "ADU"
    hdu.scale("int16", bscale=2.0, bzero=25000.0)
    hdu.writeto(src)
    assert fits.getheader(src)["BITPIX"] == 16
    image = read_fits(src)
    assert_close("int16 read in physical units", image.data, physical, 0.0)
    upscale_fits(src, dst, bicubic_upscaler(2), method="bicubic", conserve_flux=True)
    with fits.open(dst) as f:
        out, hout = f[0].data, f[0].header
    assert hout["BITPIX"] == -32 and out.dtype == np.dtype(">f4")
    for key in ("BSCALE", "BZERO", "BLANK"):
        assert key not in hout, key
    assert hout["BUNIT"] == "ADU"
    rel = np.abs(block_mean(out, 2) - physical) / physical
    assert rel.max() <= 1e-5, f"block means off by {rel.max():.3g} relative"


@pytest.mark.parametrize("bzero", [0, 32768])
def test_integer_blank_pixels_become_nan(tmp_path, bzero):
    raw = (np.arange(12 * 10).reshape(12, 10) % 97).astype(np.int16)
    raw[3, 4] = -99
    hdu = fits.PrimaryHDU(raw)
    hdu.header["BLANK"] = -99
    hdu.header["BZERO"] = bzero
    hdu.writeto(tmp_path / "blank.fits")
    data = read_fits(tmp_path / "blank.fits").data
    assert np.isnan(data[3, 4]) and np.isfinite(np.delete(data.ravel(), 3 * 10 + 4)).all()
    assert data[0, 1] == 1 + bzero, data[0, 1]


def test_nan_patches_land_where_they_belong(tmp_path):
    img = star_field()
    img[2:5, 30:36] = np.nan
    img[22, 7] = np.nan
    img[29, 39] = np.inf
    src, dst = tmp_path / "nan.fits", tmp_path / "out.fits"
    fits.PrimaryHDU(img, celestial_header("tan-cd")).writeto(src)
    upscale_fits(src, dst, bicubic_upscaler(3), method="bicubic")
    out = fits.getdata(dst)
    want = block_repeat(~np.isfinite(img), 3)
    assert np.array_equal(np.isnan(out), want), np.argwhere(np.isnan(out) != want)[:5]
    assert np.isfinite(out[~want]).all()


def test_all_nan_image_fails_with_a_clear_error_naming_the_file(tmp_path):
    src = tmp_path / "blank.fits"
    fits.PrimaryHDU(np.full((8, 8), np.nan, np.float32)).writeto(src)
    with pytest.raises(JobFailed, match=r"blank\.fits.*every pixel is blank"):
        upscale_fits(src, tmp_path / "out.fits", bicubic_upscaler(2), method="bicubic")
    assert not (tmp_path / "out.fits").exists()


def test_constant_image_round_trips(tmp_path):
    src, dst = tmp_path / "const.fits", tmp_path / "out.fits"
    fits.PrimaryHDU(np.full((10, 12), 42.5, np.float64)).writeto(src)
    upscale_fits(src, dst, bicubic_upscaler(2), method="bicubic")
    out = fits.getdata(dst)
    assert out.dtype == np.dtype(">f8") and out.shape == (20, 24) and np.all(out == 42.5), out


def test_header_cards_survive_and_history_says_what_was_done(tmp_path):
    h = celestial_header("tan-pc")
    h["OBJECT"] = ("NGC 1234", "target name")
    h["TELESCOP"] = "HST"
    h["EXPTIME"] = (1200.5, "[s] exposure")
    h["DATE-OBS"] = "2024-01-02T03:04:05"
    h["DATAMIN"], h["DATAMAX"] = 0.0, 1.0
    h["COMMENT"] = "an old comment"
    h["HISTORY"] = "an old history line"
    src, dst = tmp_path / "h.fits", tmp_path / "out.fits"
    fits.PrimaryHDU(star_field(), h).writeto(src, checksum=True)
    upscale_fits(src, dst, bicubic_upscaler(2), method="SRCNN weights w.npz", conserve_flux=True,
                 flux_units="total")
    hout = fits.getheader(dst)
    for key in ("OBJECT", "TELESCOP", "EXPTIME", "DATE-OBS"):
        assert hout[key] == h[key], (key, hout[key], h[key])
    assert hout.comments["OBJECT"] == "target name" and hout.comments["EXPTIME"] == "[s] exposure"
    assert "an old comment" in str(hout["COMMENT"]) and "an old history line" in str(hout["HISTORY"])
    for key in ("DATAMIN", "DATAMAX", "CHECKSUM", "DATASUM"):
        assert key not in hout, key
    assert (hout["NAXIS1"], hout["NAXIS2"]) == (80, 60)
    provenance = {"SRCNNVER": __version__, "SRCNNSCL": 2, "SRCNNWTS": "SRCNN weights w.npz", "SRCNNSRC": "h.fits",
                  "SRCNNHDU": "0 (PRIMARY)", "SRCFLUXC": True, "SRCFLUXU": "total", "SRCSTRCH": "linear"}
    for key, value in provenance.items():
        assert hout[key] == value, (key, hout[key], value)
    history = "".join(str(c) for c in hout["HISTORY"])
    assert "SRCNNWTS=SRCNN weights w.npz" in history and "SRCFLUXU=total" in history, history


def test_sip_iraf_and_section_cards_are_rescaled():
    h = add_sip(celestial_header("tan-cd"))
    h["AP_ORDER"], h["AP_1_0"], h["AP_2_0"], h["A_DMAX"] = 2, 1e-3, -2e-5, 0.4
    h["BP_ORDER"], h["BP_0_1"] = 2, -1e-3  # astropy reads AP only with BP
    h["LTV1"], h["LTV2"], h["LTM1_1"], h["LTM2_2"] = -100.0, -50.0, 0.5, 0.5
    h["DATASEC"], h["TRIMSEC"], h["DETSEC"] = "[5:36,3:30]", "[40:1,1:30]", "[1:2048,1:2048]"
    h["PIXSCALE"] = 0.72
    s = 3
    out = upscaled_header(h, s, TEST_PROVENANCE)
    assert out["A_2_0"] == pytest.approx(h["A_2_0"] / s) and out["AP_1_0"] == pytest.approx(h["AP_1_0"])
    assert out["AP_2_0"] == pytest.approx(h["AP_2_0"] / s) and out["A_DMAX"] == pytest.approx(0.4 * s)
    for i in (1, 2):  # physical coordinate of the output pixel = that of the input point it covers
        p_out = np.array([1.0, 7.0, 60.0])
        p_in = (p_out - 0.5) / s + 0.5
        phys_out = (p_out - out[f"LTV{i}"]) / out[f"LTM{i}_{i}"]
        phys_in = (p_in - h[f"LTV{i}"]) / h[f"LTM{i}_{i}"]
        assert_close(f"physical coordinate, axis {i}", phys_out, phys_in, 1e-12)
    first_out = lambda p: s * (p - 1) + 1
    last_out = lambda p: s * p
    assert out["DATASEC"] == f"[{first_out(5)}:{last_out(36)},{first_out(3)}:{last_out(30)}]"
    assert out["TRIMSEC"] == f"[{last_out(40)}:{first_out(1)},{first_out(1)}:{last_out(30)}]"
    assert out["DETSEC"] == h["DETSEC"]
    assert out["PIXSCALE"] == pytest.approx(0.72 / s)


def test_lookup_table_distortion_is_refused():
    h = celestial_header("tan-cd")
    h["CPDIS1"] = "Lookup"
    with pytest.raises(HeaderError, match="CPDIS1"):
        upscaled_header(h, 2, TEST_PROVENANCE)


def test_header_without_wcs_gets_no_wcs_cards():
    h = fits.Header()
    h["NAXIS"], h["NAXIS1"], h["NAXIS2"], h["OBJECT"] = 2, 10, 8, "x"
    out = upscaled_header(h, 2, TEST_PROVENANCE)
    assert not any(k.startswith(("CRPIX", "CDELT", "CD1_", "PC")) for k in out), list(out)


def test_hdu_selection_by_default_index_and_name(tmp_path):
    path = tmp_path / "multi.fits"
    sci = fits.ImageHDU(np.full((6, 7), 1.0, np.float32), name="SCI")
    err = fits.ImageHDU(np.full((6, 7), 2.0, np.float32), name="ERR")
    table = fits.BinTableHDU.from_columns([fits.Column(name="a", format="E", array=np.zeros(3))])
    fits.HDUList([fits.PrimaryHDU(), sci, err, table]).writeto(path)
    assert read_fits(path).hdu_name == "SCI" and read_fits(path).data[0, 0] == 1.0
    assert read_fits(path, 2).hdu_name == "ERR" and read_fits(path, "2").data[0, 0] == 2.0
    assert read_fits(path, "err").hdu_index == 2
    with pytest.raises(FitsError, match=r"multi\.fits: no HDU 'DQ' \(the file has 0:PRIMARY, 1:SCI"):
        read_fits(path, "DQ")
    with pytest.raises(FitsError, match="BinTableHDU, not an image"):
        read_fits(path, 3)
    with pytest.raises(FitsError, match="holds no image"):
        read_fits(path, 0)
    dst = tmp_path / "out.fits"
    upscale_fits(path, dst, bicubic_upscaler(2), method="bicubic", hdu="ERR")
    hout = fits.getheader(dst)
    assert "XTENSION" not in hout and hout["SIMPLE"] and hout["EXTNAME"] == "ERR"
    assert hout["SRCNNHDU"] == "2 (ERR)" and "SRCNNHDU=2 (ERR)" in "".join(str(c) for c in hout["HISTORY"])
    assert np.all(fits.getdata(dst) == 2.0)


def test_unreadable_inputs_fail_with_one_line_naming_the_file(tmp_path):
    with pytest.raises(FitsError, match=r"missing\.fits: no such file"):
        read_fits(tmp_path / "missing.fits")
    junk = tmp_path / "junk.fits"
    junk.write_text("this is not a FITS file\n" * 200)
    with pytest.raises(FitsError, match=r"junk\.fits: ") as e:
        read_fits(junk)
    assert "\n" not in str(e.value)
    one_d = tmp_path / "spectrum.fits"
    fits.PrimaryHDU(np.zeros(10, np.float32)).writeto(one_d)
    with pytest.raises(FitsError, match="no image HDU with 2 or more axes"):
        read_fits(one_d)


ZERO_LENGTH_AXES = {  # name: (cards changed in image_file's 2x2 int16 HDU, the axis named in the refusal)
    "naxis2_0": ({"NAXIS2": "0"}, "NAXIS2"),
    "naxis1_0": ({"NAXIS1": "0"}, "NAXIS1"),
    "cube_naxis3_0": ({"NAXIS": "3", "NAXIS3": "0"}, "NAXIS3"),
}


@pytest.mark.parametrize("name", sorted(ZERO_LENGTH_AXES))
def test_an_image_with_a_zero_length_axis_is_refused_in_one_line(tmp_path, name):
    changes, axis = ZERO_LENGTH_AXES[name]
    path = tmp_path / f"{name}.fits"
    path.write_bytes(image_file(changes, data=b""))
    with pytest.raises(FitsError) as e:
        read_fits(path)
    assert str(e.value) == f"{path}: HDU 0 (PRIMARY): {axis} = 0, the image has no pixels"


def test_write_is_atomic_and_refuses_to_overwrite(tmp_path):
    path = tmp_path / "out.fits"
    path.write_bytes(b"precious")
    data = np.ones((4, 5), np.float32)
    with pytest.raises(FitsError, match="exists"):
        write_fits(path, data)
    with pytest.raises(JobFailed, match="exists"):
        upscale_fits(path, path, bicubic_upscaler(2), method="bicubic")
    assert path.read_bytes() == b"precious"
    write_fits(path, data, overwrite=True)
    assert np.array_equal(fits.getdata(path), data)
    assert sorted(os.listdir(tmp_path)) == ["out.fits"], os.listdir(tmp_path)


def test_write_failure_leaves_no_temp_file_and_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "out.fits"
    path.write_bytes(b"precious")

    def disk_full(self, name, **kwargs):
        with open(name, "wb") as f:
            f.write(b"SIMPLE  =                    T")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fits.PrimaryHDU, "writeto", disk_full)
    with pytest.raises(FitsError, match=r"out\.fits: cannot write \(No space left on device\)"):
        write_fits(path, np.ones((4, 5), np.float32), overwrite=True)
    assert os.listdir(tmp_path) == ["out.fits"] and path.read_bytes() == b"precious"
    with pytest.raises(FitsError, match="cannot write object data"):
        write_fits(tmp_path / "bad.fits", np.array([["a", "b"]], dtype=object))


def test_missing_astropy_gives_the_install_hint(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "astropy.io", None)
    with pytest.raises(ImportError) as e:
        read_fits(tmp_path / "x.fits")
    assert str(e.value) == ASTROPY_HINT == 'FITS support needs astropy: pip install "srcnn_np[fits]"'


def test_runtime_modules_do_not_import_astropy():
    import subprocess

    code = ("import sys, srcnn_np, srcnn_np.io.fits_io, srcnn_np.science; "
            "print(any(m.startswith('astropy') for m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False", res.stdout + res.stderr


def sky_header(shape):
    h = celestial_header("tan-cd", shape)
    h["BUNIT"] = "electron/s"
    return h


@pytest.mark.parametrize("name", ["moon", "hubble_deep_field"])
def test_real_images_through_srcnn_and_fits(tmp_path, name):
    skimage_data = pytest.importorskip("skimage.data")
    from skimage.color import rgb2gray

    img = getattr(skimage_data, name)()
    gray = rgb2gray(img) if img.ndim == 3 else img / 255.0
    crop = gray[200:264, 300:364].astype(np.float64)
    physical = (crop * 3.0e3 + 25.0).astype(np.float32)  # e/s on a sky background
    physical[10:13, 40:44] = np.nan  # a bad-pixel patch
    src, dst = tmp_path / f"{name}.fits", tmp_path / f"{name}_x2.fits"
    fits.PrimaryHDU(physical, sky_header(physical.shape)).writeto(src)
    weights = near_identity_weights(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow / invalid-value warnings on the way
        upscale_fits(src, dst, Upscaler.load(weights, scale=2),
                     method="SRCNN (test weights)", conserve_flux=True)
    back = read_fits(dst)
    out = back.data
    assert out.shape == (128, 128) and out.dtype == np.float32
    assert np.array_equal(np.isnan(out), block_repeat(np.isnan(physical), 2))
    ok = np.isfinite(physical)
    rel = np.abs(block_mean(out, 2)[ok] - physical[ok]) / physical[ok]
    assert rel.max() <= 1e-5, f"{name}: block means off by {rel.max():.3g} relative"
    # near-identity weights: the result is close to plain bicubic upscaling of the physical data
    ref = bicubic(np.where(ok, physical, np.nanmedian(physical)), 2)
    valid = np.isfinite(out)
    corr = np.corrcoef(out[valid], ref[valid])[0, 1]
    assert corr > 0.99, f"{name}: correlation with bicubic {corr:.4f}"
    assert pixel_mismatch(fits.getheader(src), back.header, 2, out.shape) < 1e-3


# ---------------------------------------------------------------- hostile files: check_fits_structure


def image_file(changes=(), data=b"\0" * 8, first=("SIMPLE", "T")) -> bytes:
    """A 2x2 int16 primary HDU from cards; changes: {KEY: raw value, or None to drop the card}."""
    cards = dict([first, ("BITPIX", "16"), ("NAXIS", "2"), ("NAXIS1", "2"), ("NAXIS2", "2")])
    cards.update(changes)
    return fits_bytes(*[(k, v) for k, v in cards.items() if v is not None], data=data)


def extension(*cards, xtension="'IMAGE'", data=b"") -> bytes:
    return fits_bytes(("XTENSION", xtension), *cards, ("PCOUNT", "0"), ("GCOUNT", "1"), data=data)


EMPTY_PRIMARY = fits_bytes(("SIMPLE", "T"), ("BITPIX", "8"), ("NAXIS", "0"), ("EXTEND", "T"))
BITPIX_LIST = "8, 16, 32, 64, -32, -64"
BEYOND = "are left in the file (truncated file or corrupt NAXISn)"

REFUSED = {  # name: (file bytes, the message after "{path}: ")
    "empty": (b"", "empty file"),
    "no_simple": (image_file(first=("SIMPLX", "T")), "not a FITS file (it does not start with a SIMPLE card)"),
    "bitpix_7": (image_file({"BITPIX": "7"}), f"HDU 0: BITPIX = 7 is not one of {BITPIX_LIST}"),
    "bitpix_256": (image_file({"BITPIX": "256"}), f"HDU 0: BITPIX = 256 is not one of {BITPIX_LIST}"),
    "bitpix_text": (image_file({"BITPIX": "'X'"}), "HDU 0: BITPIX = 'X' is not an integer"),
    "bitpix_missing": (image_file({"BITPIX": None}), "HDU 0: BITPIX is missing"),
    "naxis_float": (image_file({"NAXIS": "2.0"}), "HDU 0: NAXIS = 2.0 is not an integer"),
    "naxis_1000": (image_file({"NAXIS": "1000"}), "HDU 0: NAXIS = 1000 is not in 0..999"),
    "naxis_negative": (image_file({"NAXIS": "-1"}), "HDU 0: NAXIS = -1 is not in 0..999"),
    "naxis2_missing": (image_file({"NAXIS2": None}), "HDU 0: NAXIS2 is missing"),
    "naxis1_logical": (image_file({"NAXIS1": "T"}), "HDU 0: NAXIS1 = T is not an integer"),
    "naxis1_negative": (image_file({"NAXIS1": "-2"}), "HDU 0: NAXIS1 = -2 is negative"),
    "naxis1_twice": (fits_bytes(("SIMPLE", "T"), ("BITPIX", "16"), ("NAXIS", "2"), ("NAXIS1", "2"), ("NAXIS2", "2"),
                                ("NAXIS1", "99999"), data=b"\0" * 8), "HDU 0: NAXIS1 appears twice in the header"),
    "gcount_negative": (image_file({"GCOUNT": "-1"}), "HDU 0: GCOUNT = -1 is negative"),
    "naxis2_4294967295": (image_file({"NAXIS2": "4294967295"}),
                          f"HDU 0: the header claims 17179869180 bytes of data but only 2880 {BEYOND}"),
    "truncated_data": (image_file({"NAXIS1": "2000"}),
                       f"HDU 0: the header claims 8000 bytes of data but only 2880 {BEYOND}"),
    "no_end": (b"".join(f"{k:<8}= {v:>20}".ljust(80).encode() for k, v in
                        [("SIMPLE", "T"), ("BITPIX", "8"), ("NAXIS", "0")]).ljust(2880),
               "HDU 0: truncated header (the file ends before its END card)"),
    "header_too_long": ((b"SIMPLE  =                    T".ljust(80) + b"COMMENT".ljust(80) * 35)
                        + b"COMMENT".ljust(80) * 36 * 1000 + b"END".ljust(2880),
                        "HDU 0: no END card in the first 1000 header blocks"),
    "extension_naxis_huge": (EMPTY_PRIMARY + extension(("BITPIX", "8"), ("NAXIS", "2147483647"), ("NAXIS1", "2")),
                             "HDU 1: NAXIS = 2147483647 is not in 0..999"),
    "extension_beyond": (EMPTY_PRIMARY + extension(("BITPIX", "-64"), ("NAXIS", "2"), ("NAXIS1", "5"),
                                                   ("NAXIS2", "1000"), data=b"\0" * 80),
                         f"HDU 1: the header claims 40000 bytes of data but only 2880 {BEYOND}"),
    "tile_compressed_huge": (EMPTY_PRIMARY + extension(
        ("BITPIX", "8"), ("NAXIS", "2"), ("NAXIS1", "8"), ("NAXIS2", "0"), ("TFIELDS", "1"), ("TFORM1", "'1PB(0)'"),
        ("ZIMAGE", "T"), ("ZBITPIX", "-32"), ("ZNAXIS", "2"), ("ZNAXIS1", "100000"), ("ZNAXIS2", "100000"),
        xtension="'BINTABLE'"), "HDU 1: the compressed image would decompress to more than 4 GiB"),
    "tile_compressed_bad_zbitpix": (EMPTY_PRIMARY + extension(
        ("BITPIX", "8"), ("NAXIS", "2"), ("NAXIS1", "8"), ("NAXIS2", "0"), ("TFIELDS", "1"), ("TFORM1", "'1PB(0)'"),
        ("ZIMAGE", "T"), ("ZBITPIX", "7"), ("ZNAXIS", "2"), ("ZNAXIS1", "1"), ("ZNAXIS2", "1"),
        xtension="'BINTABLE'"), f"HDU 1: ZBITPIX = 7 is not one of {BITPIX_LIST}"),
    "gzip_truncated_data": (gzip.compress(image_file({"NAXIS1": "2000"})),
                            f"HDU 0: the header claims 8000 bytes of data but only 2880 {BEYOND}"),
    "gzip_huge_claim": (gzip.compress(image_file({"BITPIX": "-64", "NAXIS1": "30000", "NAXIS2": "30000"})),
                        "HDU 0: the data would decompress to more than 4 GiB"),
    "gzip_cut": (gzip.compress(image_file())[:-12],
                 "cannot read the file (Compressed file ended before the end-of-stream marker was reached)"),
    "lzw": (b"\x1f\x9d\x90" + b"\0" * 100, "LZW-compressed (.Z) FITS is not supported; decompress it first"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_hostile_structure_is_refused_before_astropy_reads_it(tmp_path, monkeypatch, name):
    data, reason = REFUSED[name]
    path = tmp_path / f"{name}.fits"
    path.write_bytes(data)

    def astropy_must_not_open(*args, **kwargs):
        raise AssertionError("astropy opened a file check_fits_structure should have refused")

    monkeypatch.setattr(fits, "open", astropy_must_not_open)
    with pytest.raises(FitsError) as e:
        read_fits(path)
    assert str(e.value) == f"{path}: {reason}"


def test_a_pipe_is_refused_without_blocking(tmp_path):
    path = tmp_path / "pipe.fits"
    os.mkfifo(path)
    with pytest.raises(FitsError) as e:
        read_fits(path)
    assert str(e.value) == f"{path}: not a regular file (a pipe, socket or device)"


def test_astropy_errors_become_one_line_naming_the_file(tmp_path, monkeypatch):
    """Anything astropy raises past the structural check (here a real VerifyError, then planted
    multi-line OSError and KeyError) is 'not a readable FITS file (first line)'; MemoryError passes."""
    from srcnn_np.io import fits_io

    path = tmp_path / "unparsable.fits"
    path.write_bytes(image_file({"EXTNAME": "'abc"}))
    with pytest.raises(FitsError) as e:
        read_fits(path)
    assert str(e.value) == (f"{path}: not a readable FITS file (Unparsable card (EXTNAME), fix it first with "
                            ".verify('fix').)")
    path = tmp_path / "good.fits"
    path.write_bytes(image_file())
    for planted, shown in [(OSError("first line\nThere may be extra bytes"), "first line"),
                           (KeyError("NAXIS3"), "'NAXIS3'")]:
        def select(*args, planted=planted):
            raise planted
        monkeypatch.setattr(fits_io, "_select_hdu", select)
        with pytest.raises(FitsError) as e:
            read_fits(path)
        assert str(e.value) == f"{path}: not a readable FITS file ({shown})"

    def out_of_memory(*args):
        raise MemoryError

    monkeypatch.setattr(fits_io, "_select_hdu", out_of_memory)
    with pytest.raises(MemoryError):
        read_fits(path)


def test_astropy_warnings_and_log_lines_are_silenced(tmp_path, capfd):
    """Bytes after the last HDU make astropy warn (and its logger print WARNING: on stderr); read_fits
    reads the image and says nothing."""
    path = tmp_path / "trailing.fits"
    path.write_bytes(image_file(data=np.array([[1, 2], [3, 4]], ">i2").tobytes()) + b"junk" * 100)
    with warnings.catch_warnings(record=True) as astropy_said:
        warnings.simplefilter("always")
        with fits.open(path) as hdul:
            len(hdul)
    assert astropy_said, "astropy no longer warns about this file: pick another"
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as we_said:
        warnings.simplefilter("always")
        data = read_fits(path).data
    assert data.tolist() == [[1, 2], [3, 4]]
    assert [str(w.message) for w in we_said] == []
    assert capfd.readouterr() == ("", "")


def varied_hdus() -> "fits.HDUList":
    """An int16 primary with BSCALE/BZERO, a table with a heap, a tile-compressed image, a cube, a float64 image."""
    rng = np.random.default_rng(3)
    primary = fits.PrimaryHDU((rng.random((6, 5)) * 1000).astype(np.int16))
    primary.header["BSCALE"], primary.header["BZERO"] = 0.5, 100.0
    heap = fits.Column(name="v", format="PJ()", array=np.array([np.arange(3), np.arange(70)], dtype=object))
    return fits.HDUList([primary, fits.BinTableHDU.from_columns([heap], name="TAB"),
                         fits.CompImageHDU(rng.random((9, 7)).astype(np.float32), name="COMP"),
                         fits.ImageHDU(rng.random((3, 6, 5)).astype(np.float32), name="CUBE"),
                         fits.ImageHDU(rng.random((4, 7)), name="SCI")])


def compressed(data: bytes, kind: str) -> bytes:
    if kind == "zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("image.fits", data)
        return buf.getvalue()
    return {"plain": lambda d: d, "gzip": gzip.compress, "bzip2": bz2.compress, "xz": lzma.compress}[kind](data)


@pytest.mark.parametrize("kind", ["plain", "gzip", "bzip2", "xz", "zip"])
def test_valid_files_read_exactly_as_astropy_reads_them(tmp_path, kind):
    plain = tmp_path / "plain.fits"
    varied_hdus().writeto(plain)
    path = tmp_path / f"image.fits.{kind}"
    path.write_bytes(compressed(plain.read_bytes(), kind))
    for hdu, index in [(None, 0), ("COMP", 2), ("CUBE", 3), ("SCI", 4)]:
        image = read_fits(path, hdu)
        with fits.open(plain) as hdul:
            want = hdul[index].data  # accessing scaled data turns BITPIX into -32 in the header, as in read_fits
            want_header = hdul[index].header.copy()
        assert image.hdu_index == index and image.header == want_header, repr(image.header)
        assert image.data.dtype == want.dtype.newbyteorder("=") and image.data.dtype.isnative, image.data.dtype
        assert np.array_equal(image.data, want), f"HDU {index}: {np.abs(image.data - want).max()}"


def test_random_groups_pass_the_structure_check(tmp_path):
    groups = fits.GroupsHDU(fits.GroupData(np.arange(60, dtype=np.float32).reshape(3, 1, 4, 5), parnames=["a", "b"],
                                           pardata=[np.arange(3.0), np.arange(3.0)], bitpix=-32))
    path = tmp_path / "groups.fits"
    groups.writeto(path)
    check_fits_structure(path)  # NAXIS1 = 0: data = 4 * GCOUNT * (PCOUNT + NAXIS2 * NAXIS3 * NAXIS4)
    with open(path, "ab") as f:
        f.truncate(os.path.getsize(path) - 2880)
    with pytest.raises(FitsError, match="HDU 0: the header claims 264 bytes of data but only 0 are left"):
        check_fits_structure(path)


@pytest.mark.parametrize("kind", ["plain", "gzip"])
def test_structure_check_reads_in_bounded_chunks(tmp_path, kind):
    """A 64 MiB image is checked without reading its data whole (plain: seeked past; gzip: 256 KiB pieces)."""
    import tracemalloc

    header = image_file({"BITPIX": "-32", "NAXIS1": "4096", "NAXIS2": "4096"}, data=b"")
    path = tmp_path / "big.fits"
    if kind == "plain":
        with open(path, "wb") as f:
            f.write(header)
            f.truncate(len(header) + 4 * 4096 * 4096)  # sparse: no disk used
    else:
        with gzip.open(path, "wb", compresslevel=1) as f:
            f.write(header)
            for _ in range(64):
                f.write(bytes(1 << 20))
    tracemalloc.start()
    try:
        check_fits_structure(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"{peak} bytes allocated to check a {os.path.getsize(path)}-byte file"
