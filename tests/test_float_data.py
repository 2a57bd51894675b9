"""Float data outside [0, 1] is never clipped silently (issue 23, part 2): srcnn_np.upscale maps it
from each channel's finite range into the network's [0, 1] and back, exactly as the FITS path
(srcnn_np.science.upscale_science) does; chunked.upscale, the viewer and evaluate follow the same rule."""
import numpy as np
import pytest
from PIL import Image

import srcnn_np
from srcnn_np import science
from srcnn_np.eval import degrade
from srcnn_np.model import Upscaler, resolve_weights, to_float01, upscale
from srcnn_np.viewer import ViewImage, bicubic_image

from . import naive
from .conftest import sky


def adu_field(h=40, w=48, c=None, seed=0) -> np.ndarray:
    """(H, W[, C]) float32 in ADU: a star field on a sky of ~1000, peaks near 65535 (unstretched data)."""
    return 1000 + sky(h, w, c, np.uint16, seed).astype(np.float32) * np.float32(64000 / 65535)


def science_path(data: np.ndarray, kw, **options) -> np.ndarray:
    """The FITS path's result for (H, W) or (H, W, C) data: upscale_science plane by plane."""
    planes = data if data.ndim == 2 else data.transpose(2, 0, 1)
    out = science.upscale_science(planes, lambda p: upscale(p, kw, scale=kw.scale), kw.scale, **options)
    return out if data.ndim == 2 else out.transpose(1, 2, 0)


@pytest.mark.parametrize("channels", [None, 3])
def test_float_data_in_adu_round_trips_the_physical_range(channels):
    """The issue's case, with the shipped weights: [0, 65535] float32 came back in [0, 1], mostly 1.0."""
    data = adu_field(c=channels)
    kw = resolve_weights(None, 2)
    out = srcnn_np.upscale(data, kw)
    want = science_path(data, kw)
    assert out.dtype == np.float32 and out.shape == want.shape
    assert np.array_equal(out, want), f"differs from the FITS path by up to {np.abs(out - want).max()}"
    low, high = float(data.min()), float(data.max())
    assert out.max() > 0.9 * high and abs(out.min() - low) < 0.1 * (high - low), \
        f"output range [{out.min()}, {out.max()}] vs input [{low}, {high}]"
    assert np.mean(out == 1.0) == 0, f"{np.mean(out == 1.0):.1%} of the pixels at 1.0: clipped"


def test_mode_y_maps_the_channels_and_runs_luminance_once(weights):
    """mode "y" sees all channels at once (colour mixes into luminance): mapped per channel, in
    physical units, and equal to the network on the mapped image mapped back."""
    data = adu_field(c=3, seed=1)
    kw = resolve_weights(weights)
    out = upscale(data, kw, mode="y")
    unit = np.stack([science.Normalisation(data[:, :, c].min(), data[:, :, c].max()).forward(data[:, :, c])
                     for c in range(3)], axis=2)
    net = upscale(unit, kw, mode="y")
    want = np.stack([science.Normalisation(data[:, :, c].min(), data[:, :, c].max()).inverse(net[:, :, c])
                     for c in range(3)], axis=2).astype(np.float32)
    np.testing.assert_allclose(out, want, rtol=0, atol=1e-6 * float(data.max()))


def test_float_data_within_unit_range_is_taken_as_it_is(weights):
    """No mapping for finite data in [0, 1]: the same result as 16-bit data of the same values,
    and the mapped path with the identity range (0, 1) agrees bit for bit."""
    u16 = sky(24, 30, 3, np.uint16, seed=2)
    unit = u16.astype(np.float32) / np.float32(65535)
    kw = resolve_weights(weights)
    out = upscale(unit, kw)
    assert np.array_equal(out, upscale(u16, kw))
    assert np.array_equal(out, Upscaler(kw)(unit, data_ranges=[(0.0, 1.0)] * 3))
    assert 0 <= out.min() and out.max() <= 1


def test_blank_pixels_are_filled_and_come_back_nan(weights):
    data = adu_field(seed=3)
    data[5, 7] = np.nan
    data[20, 1] = np.inf
    kw = resolve_weights(weights)
    out = upscale(data, kw)
    assert np.array_equal(out, science_path(data, kw), equal_nan=True)
    blank = np.isnan(out)
    want = np.zeros_like(blank)
    want[10:12, 14:16] = want[40:42, 2:4] = True
    assert np.array_equal(blank, want), f"NaN at {np.argwhere(blank).tolist()}"


def test_flux_options_act_as_for_fits(weights):
    data = adu_field(seed=4)
    kw = resolve_weights(weights)
    for options in ({"conserve_flux": True}, {"conserve_flux": True, "flux_units": "total"},
                    {"stretch": "asinh"}):
        out = upscale(data, kw, **options)
        want = science_path(data, kw, **options)
        assert np.array_equal(out, want), f"{options}: up to {np.abs(out - want).max()} from the FITS path"
    sums = science.block_view(upscale(data, kw, conserve_flux=True, flux_units="total"), 2).sum(axis=(2, 3))
    np.testing.assert_allclose(sums, data, rtol=1e-5)
    # options also reach data in [0, 1] (range (0, 1), nothing renormalised)
    unit = data / np.float32(65535)
    means = science.block_mean(upscale(unit, kw, conserve_flux=True), 2)
    np.testing.assert_allclose(means, unit, atol=1e-6)


def test_alpha_stays_coverage_and_must_be_in_unit_range(weights):
    data = np.concatenate([adu_field(c=3, seed=5), np.full((40, 48, 1), 0.5, np.float32)], axis=2)
    kw = resolve_weights(weights)
    out = upscale(data, kw)
    assert out.shape == (80, 96, 4) and np.array_equal(out[:, :, :3], upscale(data[:, :, :3], kw))
    np.testing.assert_allclose(out[:, :, 3], 0.5, atol=1e-6)
    data[0, 0, 3] = 2.0
    with pytest.raises(ValueError, match=r"alpha outside \[0, 1\]"):
        upscale(data, kw)


def test_impossible_mapping_raises_one_line(weights):
    kw = resolve_weights(weights)
    with pytest.raises(ValueError) as e:
        upscale(np.full((6, 7), np.nan, np.float32), kw)
    assert "[0, 1]" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ValueError) as e:
        to_float01(adu_field())  # the helper behind the unmapped path refuses, never clips
    assert "[0, 1]" in str(e.value) and "stretch=" in str(e.value) and "\n" not in str(e.value)


def test_dask_upscale_maps_with_the_whole_array_ranges(weights):
    da = pytest.importorskip("dask.array")
    from srcnn_np import chunked

    kw = resolve_weights(weights)
    for data, mode in ((adu_field(60, 70, seed=6), "rgb"), (adu_field(60, 70, 3, seed=7), "y")):
        data[13, 17] = np.nan
        out = chunked.upscale(da.from_array(data, chunks=(25, 30) + data.shape[2:]), kw, mode=mode).compute()
        want = upscale(data, kw, mode=mode)
        assert out.dtype == np.float32 and np.array_equal(np.isnan(out), np.isnan(want))
        # chunks see their neighbours' pixels, not the whole image: float rounding, as for [0, 1] data
        np.testing.assert_allclose(out, want, rtol=0, atol=1e-5 * float(np.nanmax(data)))
        assert np.nanmax(out) > 1000, "the output is in ADU, not [0, 1]"


def test_viewer_bicubic_of_float_data_keeps_physical_units():
    """A float image outside [0, 1] (a float TIFF in ADU) is shown as the FITS path shows FITS data:
    bicubic in physical units, blanks NaN over their blocks, never clipped to [0, 1]."""
    lowres = adu_field(10, 12, seed=8)
    lowres[3, 4] = np.nan
    upscaled = ViewImage(np.zeros((20, 24), np.float32))
    up = bicubic_image(ViewImage(lowres), upscaled, 2)
    filled = science.fill_blanks(lowres, np.isnan(lowres))
    want = naive.bicubic(filled, 2)
    want[6:8, 8:10] = np.nan
    np.testing.assert_allclose(up, want, rtol=1e-5, atol=1e-2)
    assert np.nanmax(up) > 1000


def test_evaluate_maps_a_float_ground_truth_as_the_network_sees_it(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    data = adu_field(24, 30, 3, seed=9)
    tifffile.imwrite(tmp_path / "adu.tif", data, photometric="rgb")
    loaded = degrade.load_rgb(tmp_path / "adu.tif")
    lows, highs = data.min(axis=(0, 1)), data.max(axis=(0, 1))
    want = ((data.astype(np.float64) - lows) / (highs - lows)).astype(np.float32)
    assert np.array_equal(loaded, want), f"up to {np.abs(loaded - want).max()} from the min-max map"
    data[2, 3, 1] = np.nan
    tifffile.imwrite(tmp_path / "blank.tif", data, photometric="rgb")
    with pytest.raises(ValueError, match="NaN or inf"):
        degrade.load_rgb(tmp_path / "blank.tif")
    unit = np.asarray(Image.fromarray(sky(16, 20, 3)), dtype=np.float32) / np.float32(255)
    tifffile.imwrite(tmp_path / "unit.tif", unit, photometric="rgb")
    assert np.array_equal(degrade.load_rgb(tmp_path / "unit.tif"), unit)  # [0, 1] data unchanged
