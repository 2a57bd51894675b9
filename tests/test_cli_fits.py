"""FITS through the command line: data, WCS, flux and errors, end to end."""
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from srcnn_np.cli import EXIT_FAILED, EXIT_OK, main
from srcnn_np.weights import save_weights

from .conftest import random_weights


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "w.npz"
    save_weights(path, random_weights(11).arrays(), scale=2)
    return str(path)


def tan_header(h, w):
    hdr = fits.Header()
    hdr.update(CTYPE1="RA---TAN", CTYPE2="DEC--TAN", CRPIX1=w / 2 + 0.3, CRPIX2=h / 2 - 0.7,
               CRVAL1=150.1, CRVAL2=2.2, CDELT1=-1e-4, CDELT2=1e-4, CUNIT1="deg", CUNIT2="deg",
               OBJECT="test field", BUNIT="e-/s")
    return hdr


def test_fits_float_with_wcs_and_flux(tmp_path, weights_file, capsys):
    rng = np.random.default_rng(0)
    data = (rng.gamma(2.0, 50.0, (21, 30)) - 20).astype(np.float32)
    data[3:6, 4:9] = np.nan
    fits.PrimaryHDU(data, tan_header(21, 30)).writeto(tmp_path / "in.fits")
    code = main(["upscale", str(tmp_path / "in.fits"), "-o", str(tmp_path / "out.fits"), "--weights",
                 weights_file, "--conserve-flux"])
    assert code == EXIT_OK, capsys.readouterr().err
    with fits.open(tmp_path / "out.fits") as hdul:
        out, hdr = hdul[0].data, hdul[0].header
    assert out.shape == (42, 60) and out.dtype.newbyteorder("=") == np.float32
    assert hdr["OBJECT"] == "test field" and hdr["BUNIT"] == "e-/s" and "srcnn_np" in str(hdr["HISTORY"])
    # NaN exactly over the 2x2 blocks of the blank input pixels
    np.testing.assert_array_equal(np.isnan(out), np.isnan(np.repeat(np.repeat(data, 2, 0), 2, 1)))
    # block means equal the input pixels (surface brightness conserved)
    means = out.reshape(21, 2, 30, 2).mean(axis=(1, 3))
    ok = ~np.isnan(data)
    np.testing.assert_allclose(means[ok], data[ok], rtol=1e-5, atol=1e-5 * np.nanmax(np.abs(data)))
    # every output pixel centre maps to the same sky position as in the input
    w_in, w_out = WCS(tan_header(21, 30)), WCS(hdr)
    yy, xx = np.mgrid[0:42:5, 0:60:7]
    sky = w_out.pixel_to_world_values(xx, yy)
    back = w_in.world_to_pixel_values(*sky)
    np.testing.assert_allclose(back[0], (xx + 0.5) / 2 - 0.5, atol=1e-3 / 2)
    np.testing.assert_allclose(back[1], (yy + 0.5) / 2 - 0.5, atol=1e-3 / 2)


def test_fits_in_a_directory_batch_and_wrong_pairing(tmp_path, weights_file, capsys):
    src = tmp_path / "src"
    src.mkdir()
    fits.PrimaryHDU(np.arange(48, dtype=np.int16).reshape(6, 8)).writeto(src / "a.fits")
    hdul = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.ones((5, 5), np.float32), name="SCI")])
    hdul.writeto(src / "b.fit")
    code = main(["upscale", str(src), "-o", str(tmp_path / "out"), "--weights", weights_file, "--hdu", "sci"])
    err = capsys.readouterr().err
    assert code == EXIT_FAILED and "a.fits" in err  # a.fits has no SCI extension
    with fits.open(tmp_path / "out" / "b_x2.fit") as h:
        np.testing.assert_allclose(h[0].data, 1.0)  # a constant image comes back constant
    code = main(["upscale", str(src / "a.fits"), "-o", str(tmp_path / "a.png"), "--weights", weights_file])
    assert code == EXIT_FAILED and "FITS converts only to FITS" in capsys.readouterr().err
    assert not (tmp_path / "a.png").exists()


def test_a_fits_file_with_naxis2_0_fails_in_one_line_and_the_batch_goes_on(tmp_path, weights_file, capsys):
    src = tmp_path / "src"
    src.mkdir()
    fits.PrimaryHDU(np.zeros((0, 5), np.float32)).writeto(src / "empty.fits")
    fits.PrimaryHDU(np.ones((6, 8), np.float32)).writeto(src / "fine.fits")
    code = main(["upscale", str(src), "-o", str(tmp_path / "out"), "--weights", weights_file])
    err = capsys.readouterr().err
    assert code == EXIT_FAILED, err
    assert f"  {src / 'empty.fits'}: HDU 0 (PRIMARY): NAXIS2 = 0, the image has no pixels\n" in err, err
    assert "internal error" not in err and "Traceback" not in err, err
    assert fits.getdata(tmp_path / "out" / "fine_x2.fits").shape == (12, 16)
