"""Round trips through a real astronomy program (issue 14): Siril's headless siril-cli (Debian's siril,
1.0.6) opens srcnn_np's FITS, 16-bit and 32-bit float TIFF outputs and its `stat` agrees with ours; srcnn_np reads
what Siril saves, FITS and TIFF, with the same values. Skipped where siril-cli is not installed.

What Siril 1.0.6's `stat` prints, per layer, learnt from its output and checked here: mean, median and
sigma (population) leave zero pixels out, min and max take every pixel; values are printed with one
decimal, float data in [0, 1] in 16-bit units (times 65535); the median of float data is approximate
(seen within 1e-4 of the data's range; exact for 16-bit data). Float FITS data above 1 (srcnn_np
writes FITS in the input's units, e.g. ADU) is taken as 16-bit units: Siril divides it by 65535 on
loading, so its stat prints our numbers and its saved FITS holds ours / 65535. FITS rows run bottom-up, TIFF rows
top-down: Siril flips between them, so a FITS image saved by Siril as TIFF is the FITS array upside down.
"""
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

fits = pytest.importorskip("astropy.io.fits")
tifffile = pytest.importorskip("tifffile")

from srcnn_np.cli import EXIT_OK, main
from srcnn_np.io.formats import read_any

from .test_fits import star_field

SIRIL = shutil.which("siril-cli")
pytestmark = pytest.mark.skipif(SIRIL is None, reason="siril-cli not installed (Debian: apt-get install siril)")
STAT_LINE = re.compile(r"(B&W|Red|Green|Blue) layer: Mean: ([-\d.]+), Median: ([-\d.]+), Sigma: ([-\d.]+), "
                       r"AvgDev: [-\d.]+, Min: ([-\d.]+), Max: ([-\d.]+)")
PRINT_STEP = 0.05  # Siril prints one decimal
FLOAT_MEDIAN_TOLERANCE = 2e-4  # of the data's range: Siril's median of float data is approximate


def siril(workdir, *commands) -> str:
    """Run a Siril script in workdir (HOME there too, so Siril's config stays out of the real one);
    its log; fails the test if the script fails."""
    script = os.path.join(workdir, "test.ssf")
    with open(script, "w") as f:
        f.write("requires 1.0.0\n" + "\n".join(commands) + "\n")
    env = {**os.environ, "HOME": str(workdir), "XDG_CONFIG_HOME": os.path.join(workdir, ".config")}
    done = subprocess.run([SIRIL, "-s", script, "-d", str(workdir)], capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    log = done.stdout + done.stderr
    assert done.returncode == 0 and "Script execution finished successfully" in log, log[-3000:]
    return log


def siril_stats(log: str) -> list[dict]:
    """Every `stat` layer line of a Siril log: [{'mean', 'median', 'sigma', 'min', 'max'}] in order."""
    return [dict(zip(("mean", "median", "sigma", "min", "max"), map(float, m.groups()[1:])))
            for m in STAT_LINE.finditer(log)]


def our_stats(plane: np.ndarray) -> dict:
    """The numbers Siril's stat prints, computed here from the array Siril was given."""
    a = plane.astype(np.float64)
    if a.dtype.kind == "f" and np.issubdtype(plane.dtype, np.floating) and a.max() <= 1:
        a = a * 65535
    nonzero = a[a != 0]
    return {"mean": nonzero.mean(), "median": np.median(nonzero), "sigma": nonzero.std(), "min": a.min(),
            "max": a.max()}


def assert_stats_agree(siril_layer: dict, plane: np.ndarray, what: str):
    ours = our_stats(plane)
    floating = np.issubdtype(plane.dtype, np.floating)
    for key in ours:
        tolerance = PRINT_STEP + 1e-6 * abs(ours[key])
        if key == "median" and floating:
            tolerance += FLOAT_MEDIAN_TOLERANCE * (ours["max"] - ours["min"])
        assert abs(siril_layer[key] - ours[key]) <= tolerance, \
            f"{what}: Siril's {key} {siril_layer[key]} vs ours {ours[key]:.4f} (tolerance {tolerance:.3g})"


def upscale(source, target):
    assert main(["upscale", str(source), "-o", str(target), "-q"]) == EXIT_OK


def test_siril_opens_our_fits_outputs_and_agrees_on_their_statistics(tmp_path):
    """From a 16-bit FITS (written as float32 in the input's units) and a 32-bit float FITS in [0, 1]."""
    counts = np.clip(star_field((40, 50)) * 3, 0, 65535).astype(np.uint16)
    normalised = (star_field((40, 50)) / 6e4).astype(np.float32)
    fits.PrimaryHDU(counts).writeto(tmp_path / "u16.fits")  # BITPIX 16, BZERO 32768
    fits.PrimaryHDU(normalised).writeto(tmp_path / "f32.fits")
    upscale(tmp_path / "u16.fits", tmp_path / "u16_x2.fits")
    upscale(tmp_path / "f32.fits", tmp_path / "f32_x2.fits")
    log = siril(tmp_path, "load u16_x2.fits", "stat", "load f32_x2.fits", "stat",
                "load u16_x2.fits", "save u16_x2_siril", "load f32_x2.fits", "save f32_x2_siril")
    stats = siril_stats(log)
    assert len(stats) == 2, log[-2000:]
    for layer, name in zip(stats, ("u16_x2.fits", "f32_x2.fits")):
        ours = fits.getdata(tmp_path / name)
        assert ours.dtype == np.dtype(">f4") and ours.shape == (80, 100)
        assert_stats_agree(layer, ours, name)
        saved = read_any(tmp_path / name.replace(".fits", "_siril.fit")).data.astype(np.float64)
        want = ours / 65535.0 if ours.max() > 1 else ours.astype(np.float64)  # Siril's float range is [0, 1]
        relative = np.abs(saved - want).max() / want.max()
        assert relative < 1e-7, f"{name}: Siril saved other values, max difference {relative:.3g} of the maximum"


def test_siril_opens_our_16bit_tiff_outputs_gray_and_rgb(tmp_path):
    rng = np.random.default_rng(1)
    gray = (rng.random((30, 40)) ** 3 * 65535).astype(np.uint16)
    rgb = (rng.random((30, 40, 3)) ** 3 * 65535).astype(np.uint16)
    tifffile.imwrite(tmp_path / "gray.tif", gray)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    upscale(tmp_path / "gray.tif", tmp_path / "gray_x2.tif")
    upscale(tmp_path / "rgb.tif", tmp_path / "rgb_x2.tif")
    log = siril(tmp_path, "load gray_x2.tif", "stat", "save gray_x2_siril", "load rgb_x2.tif", "stat",
                "savetif rgb_x2_siril")
    stats = siril_stats(log)
    assert len(stats) == 4, log[-2000:]
    ours_gray, ours_rgb = tifffile.imread(tmp_path / "gray_x2.tif"), tifffile.imread(tmp_path / "rgb_x2.tif")
    assert ours_gray.dtype == ours_rgb.dtype == np.uint16 and ours_rgb.shape == (60, 80, 3)
    assert_stats_agree(stats[0], ours_gray, "gray_x2.tif")
    for c, layer in enumerate(stats[1:]):
        assert_stats_agree(layer, ours_rgb[:, :, c], f"rgb_x2.tif channel {c}")
    assert np.array_equal(read_any(tmp_path / "gray_x2_siril.fit").data, ours_gray[::-1])  # FITS is bottom-up
    assert np.array_equal(read_any(tmp_path / "rgb_x2_siril.tif").pixels, ours_rgb)


def test_siril_reads_our_32bit_float_tiff_outputs_with_our_values(tmp_path):
    """Float32 TIFF outputs, gray and RGB in [0, 1] and gray in ADU (values above 1, kept in their
    units): Siril loads each, its stat agrees on [0, 1] data, and the FITS it saves holds our values
    exactly (flipped: FITS is bottom-up); its 32-bit TIFF of ours reads back equal."""
    rng = np.random.default_rng(4)
    unit_gray = rng.random((30, 40)).astype(np.float32)
    unit_rgb = rng.random((30, 40, 3)).astype(np.float32)
    adu = (1000 + star_field((30, 40)) * 3).astype(np.float32)
    tifffile.imwrite(tmp_path / "gray.tif", unit_gray)
    tifffile.imwrite(tmp_path / "rgb.tif", unit_rgb, photometric="rgb")
    tifffile.imwrite(tmp_path / "adu.tif", adu)
    for name in ("gray", "rgb", "adu"):
        upscale(tmp_path / f"{name}.tif", tmp_path / f"{name}_x2.tif")
    log = siril(tmp_path, "load gray_x2.tif", "stat", "save gray_x2_siril", "savetif32 gray_x2_siril32",
                "load rgb_x2.tif", "stat", "save rgb_x2_siril", "load adu_x2.tif", "save adu_x2_siril")
    assert "32-bit file rgb_x2.tif, 3 layer(s)" in log, log[-2000:]
    stats = siril_stats(log)
    assert len(stats) == 4, log[-2000:]
    ours = {name: tifffile.imread(tmp_path / f"{name}_x2.tif") for name in ("gray", "rgb", "adu")}
    assert ours["gray"].dtype == ours["rgb"].dtype == ours["adu"].dtype == np.float32
    assert ours["rgb"].shape == (60, 80, 3) and ours["adu"].max() > 1000
    assert_stats_agree(stats[0], ours["gray"], "gray_x2.tif")
    for c, layer in enumerate(stats[1:]):
        assert_stats_agree(layer, ours["rgb"][:, :, c], f"rgb_x2.tif channel {c}")
    for name in ("gray", "adu"):
        saved = read_any(tmp_path / f"{name}_x2_siril.fit").data
        assert saved.dtype.kind == "f" and np.array_equal(saved, ours[name][::-1]), \
            f"{name}: Siril saved other values, max difference {np.abs(saved - ours[name][::-1]).max()}"
    saved = read_any(tmp_path / "rgb_x2_siril.fit").data
    assert np.array_equal(saved, ours["rgb"][::-1].transpose(2, 0, 1))
    assert np.array_equal(read_any(tmp_path / "gray_x2_siril32.tif").pixels, ours["gray"])


def test_we_read_what_siril_saves_with_the_same_values(tmp_path):
    """Siril loads a 16-bit FITS, a float FITS and a 16-bit TIFF and saves them as FITS and TIFF;
    srcnn_np reads each with the values Siril was given, and upscales them."""
    counts = (np.random.default_rng(2).random((24, 30)) * 60000).astype(np.uint16)
    normalised = np.random.default_rng(3).random((24, 30)).astype(np.float32)
    fits.PrimaryHDU(counts).writeto(tmp_path / "counts.fits")
    fits.PrimaryHDU(normalised).writeto(tmp_path / "norm.fits")
    tifffile.imwrite(tmp_path / "photo.tif", counts)
    siril(tmp_path, "load counts.fits", "save s_counts", "savetif s_counts",
          "load norm.fits", "save s_norm", "load photo.tif", "save s_photo", "savetif s_photo")
    assert np.array_equal(read_any(tmp_path / "s_counts.fit").data, counts)
    assert np.array_equal(read_any(tmp_path / "s_counts.tif").pixels, counts[::-1])
    saved = read_any(tmp_path / "s_norm.fit").data
    assert saved.dtype.kind == "f" and np.array_equal(saved, normalised)
    assert np.array_equal(read_any(tmp_path / "s_photo.tif").pixels, counts)
    assert np.array_equal(read_any(tmp_path / "s_photo.fit").data, counts[::-1])
    for name in ("s_counts.fit", "s_norm.fit", "s_counts.tif"):
        stem, ext = os.path.splitext(name)
        upscale(tmp_path / name, tmp_path / f"{stem}_x2{ext}")
