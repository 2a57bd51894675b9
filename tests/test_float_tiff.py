"""32-bit float TIFF in and out (issue 23, part 3): gray, RGB and RGBA float TIFF read through
tifffile in any range (NaN allowed), written back as float32, physical values kept like FITS; the
float sample format told from the header, so a missing tifffile gets its hint for every float TIFF."""
import sys

import numpy as np
import pytest

tifffile = pytest.importorskip("tifffile")

from srcnn_np.cli import EXIT_FAILED, EXIT_OK, main
from srcnn_np.io.formats import fits_data_as_image, image_as_fits_data, read_any
from srcnn_np.io.imageio import ImageIOError, read_image
from srcnn_np.io.tiff_io import TIFFFILE_HINT, first_ifd_tags
from srcnn_np.model import resolve_weights, upscale

from .conftest import random_weights, sky


def run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def float_image(channels, physical: bool, seed=0) -> np.ndarray:
    """(H, W[, C]) float32: a star field in [0, 1], or in ADU (~1000 to ~65000); alpha 0.25."""
    pixels = sky(14, 17, channels, np.uint16, seed).astype(np.float32) / np.float32(65535)
    if physical:
        pixels = 1000 + pixels * np.float32(64000)
    if channels in (2, 4):
        pixels[:, :, -1] = 0.25
    return pixels


def written(path) -> tuple:
    """(pixels, shape, SampleFormat, photometric) of the one image of a TIFF file, read by tifffile."""
    with tifffile.TiffFile(path) as tif:
        assert len(tif.pages) == 1
        page = tif.pages.first
        return page.asarray(), page.shape, page.sampleformat, page.photometric


@pytest.mark.parametrize("physical", [False, True], ids=["unit", "adu"])
@pytest.mark.parametrize("channels", [None, 3, 4], ids=["gray", "rgb", "rgba"])
def test_float32_tiff_round_trip_keeps_format_dtype_and_the_apis_values(tmp_path, weights_file, capsys, channels,
                                                                         physical):
    pixels = float_image(channels, physical)
    tifffile.imwrite(tmp_path / "in.tif", pixels, photometric="minisblack" if channels is None else "rgb",
                     extrasamples=("unassalpha",) if channels == 4 else None)
    code, _, err = run(["upscale", str(tmp_path / "in.tif"), "-o", str(tmp_path / "out.tif"), "-q",
                        "--weights", weights_file], capsys)
    assert code == EXIT_OK, err
    out, shape, sample_format, photometric = written(tmp_path / "out.tif")
    assert out.dtype == np.float32 and shape == (28, 34) + pixels.shape[2:]
    assert sample_format == tifffile.SAMPLEFORMAT.IEEEFP
    assert photometric == (tifffile.PHOTOMETRIC.MINISBLACK if channels is None else tifffile.PHOTOMETRIC.RGB)
    want = upscale(pixels, resolve_weights(random_weights(9)))
    assert np.array_equal(out, want), f"differs from srcnn_np.upscale by up to {np.abs(out - want).max()}"
    if physical:
        colour = out if channels is None else out[:, :, :3]
        assert colour.min() > 500, f"values above 1 came back in [{colour.min()}, {colour.max()}], not in ADU"


def test_nan_and_other_float_widths_round_trip(tmp_path, weights_file, capsys):
    """NaN pixels come back NaN over their 2 x 2 blocks; float16 and float64 TIFF come back float32."""
    pixels = float_image(None, physical=True, seed=1)
    pixels[3, 5] = np.nan
    for dtype in (np.float16, np.float32, np.float64):
        name = f"in{np.dtype(dtype).itemsize * 8}.tif"
        stored = (pixels / 65535).astype(dtype) if dtype == np.float16 else pixels.astype(dtype)
        tifffile.imwrite(tmp_path / name, stored)
        code, _, err = run(["upscale", str(tmp_path / name), "-o", str(tmp_path / f"x2_{name}"), "-q",
                            "--weights", weights_file], capsys)
        assert code == EXIT_OK, err
        out = written(tmp_path / f"x2_{name}")[0]
        assert out.dtype == np.float32 and out.shape == (28, 34)
        assert np.argwhere(np.isnan(out)).tolist() == [[6, 10], [6, 11], [7, 10], [7, 11]]
        assert np.array_equal(out, upscale(stored.astype(np.float32), resolve_weights(random_weights(9))),
                              equal_nan=True)


def test_missing_tifffile_gives_the_hint_for_rgb_float_tiff_too(tmp_path, monkeypatch, capsys):
    """The float sample format is read from the header without tifffile: RGB float TIFF (which
    Pillow cannot open) got 'not a readable image' before."""
    tifffile.imwrite(tmp_path / "rgb.tif", float_image(3, physical=False), photometric="rgb")
    tifffile.imwrite(tmp_path / "gray.tif", float_image(None, physical=True))
    monkeypatch.setitem(sys.modules, "tifffile", None)
    for name in ("rgb.tif", "gray.tif"):
        path = str(tmp_path / name)
        with pytest.raises(ImageIOError) as e:
            read_image(path)
        assert str(e.value) == f"{path}: {TIFFFILE_HINT}"
        code, _, err = run(["upscale", path, "-o", str(tmp_path / f"x2_{name}")], capsys)
        assert code == EXIT_FAILED and TIFFFILE_HINT in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / f"x2_{name}").exists()


@pytest.mark.parametrize("options", [{}, {"byteorder": ">"}, {"bigtiff": True}], ids=["le", "be", "bigtiff"])
def test_header_tags_are_read_without_decoding(tmp_path, options):
    tifffile.imwrite(tmp_path / "f.tif", np.zeros((5, 6, 3), np.float32), photometric="rgb", **options)
    tags = first_ifd_tags(tmp_path / "f.tif")
    assert (tags["width"], tags["height"], tags["samples"]) == ((6,), (5,), (3,))
    assert tags["sample_format"] == (3, 3, 3) and tags["bits"] == (32, 32, 32), tags
    (tmp_path / "p.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(32))
    assert first_ifd_tags(tmp_path / "p.png") is None
    (tmp_path / "cut.tif").write_bytes((tmp_path / "f.tif").read_bytes()[:8] if not options.get("bigtiff")
                                       else (tmp_path / "f.tif").read_bytes()[:16])
    assert first_ifd_tags(tmp_path / "cut.tif") is None  # corrupt: left to the decoder to name the fault


def test_float_tiff_to_fits_and_back_keeps_physical_values(tmp_path, weights_file, capsys):
    """FITS rows run bottom-up, image rows top-down: converted as Siril converts (flipped)."""
    fits = pytest.importorskip("astropy.io.fits")
    kw = resolve_weights(random_weights(9))
    pixels = float_image(3, physical=True, seed=2)
    tifffile.imwrite(tmp_path / "rgb.tif", pixels, photometric="rgb")
    code, _, err = run(["upscale", str(tmp_path / "rgb.tif"), "-o", str(tmp_path / "rgb.fits"), "-q",
                        "--weights", weights_file], capsys)
    assert code == EXIT_OK, err
    data = fits.getdata(tmp_path / "rgb.fits")
    assert data.shape == (3, 28, 34) and np.array_equal(data, image_as_fits_data(upscale(pixels, kw)))
    cube = image_as_fits_data(pixels)
    fits.PrimaryHDU(cube).writeto(tmp_path / "cube.fits")
    code, _, err = run(["upscale", str(tmp_path / "cube.fits"), "-o", str(tmp_path / "cube.tif"), "-q",
                        "--weights", weights_file], capsys)
    assert code == EXIT_OK, err
    out, shape, sample_format, _ = written(tmp_path / "cube.tif")
    fits_result = read_any(tmp_path / "cube.tif").pixels
    assert shape == (28, 34, 3) and sample_format == tifffile.SAMPLEFORMAT.IEEEFP and np.array_equal(out, fits_result)
    code, _, err = run(["upscale", str(tmp_path / "cube.fits"), "-o", str(tmp_path / "cube_x2.fits"), "-q",
                        "--weights", weights_file], capsys)
    assert code == EXIT_OK and np.array_equal(fits_data_as_image(fits.getdata(tmp_path / "cube_x2.fits")), out)
    assert out.min() > 500, "physical values, not [0, 1]"
    # crossings that would lose values stay refused, one line, nothing written
    Image = pytest.importorskip("PIL.Image")
    Image.fromarray(sky(8, 9, 3)).save(tmp_path / "photo.png")
    for source, target in (("cube.fits", "cube.png"), ("photo.png", "photo.fits")):
        code, _, err = run(["upscale", str(tmp_path / source), "-o", str(tmp_path / target),
                            "--weights", weights_file], capsys)
        assert code == EXIT_FAILED and "FITS converts only to FITS" in err and not (tmp_path / target).exists()


def test_physical_float_data_is_refused_where_it_would_be_clipped(tmp_path, weights_file, capsys):
    tifffile.imwrite(tmp_path / "adu.tif", float_image(3, physical=True), photometric="rgb")
    for target in ("o.png", "o.jpg", "o.xisf"):
        if target.endswith(".xisf"):
            pytest.importorskip("xisf")
        code, _, err = run(["upscale", str(tmp_path / "adu.tif"), "-o", str(tmp_path / target),
                            "--weights", weights_file], capsys)
        assert code == EXIT_FAILED and "outside [0, 1]" in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / target).exists()
