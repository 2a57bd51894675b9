"""srcnn_np.science: dynamic range, blank pixels, flux conservation (numpy only, no astropy)."""
import numpy as np
import pytest

from srcnn_np.model import bicubic, upscale
from srcnn_np.science import (
    ASINH_SOFTENING,
    FILL_ROUNDS,
    BlankImageError,
    Normalisation,
    block_mean,
    block_repeat,
    fill_blanks,
    upscale_plane,
    upscale_science,
)

from .checks import assert_close


def bicubic_fn(scale):
    def fn(a):
        assert a.dtype == np.float32 and np.isfinite(a).all(), "the network got NaN/inf"
        return bicubic(a, scale)
    return fn


def repeat_fn(scale):
    return lambda a: block_repeat(a, scale)


def smooth_field(h=32, w=40, low=-3.0, high=5000.0, seed=0):
    """(h, w) float64 smooth positive-and-negative field spanning [low, high]."""
    y, x = np.mgrid[0:h, 0:w]
    f = np.sin(x / 6.0) * np.cos(y / 5.0) + 0.3 * x / w + np.random.default_rng(seed).normal(0, 0.01, (h, w))
    f = (f - f.min()) / (f.max() - f.min())
    return low + f * (high - low)


@pytest.mark.parametrize("stretch", ["linear", "asinh"])
def test_normalisation_maps_range_onto_unit_interval_and_inverts(stretch):
    x = np.array([[-7.5, 0.0, 1e3], [2.5e4, 3.1, -7.5]])
    norm = Normalisation(-7.5, 2.5e4, stretch)
    u = norm.forward(x)
    assert u.dtype == np.float32
    assert u.min() == 0.0 and u.max() == pytest.approx(1.0, abs=1e-7), u
    back = norm.inverse(u)
    assert_close("round trip", back, x, 1e-6 * 2.5e4)


def test_asinh_stretch_lifts_faint_values():
    norm = Normalisation(0.0, 1.0, "asinh")
    x = ASINH_SOFTENING / 10
    faint = norm.forward(np.array([x]))
    # slope at 0 is 1 / (a * asinh(1 / a)): 3.3 for astropy's default a = 0.1
    assert faint[0] > 3 * x, f"asinh maps {x} to {faint[0]}, expected > {3 * x}"


def test_normalisation_rejects_empty_range_and_unknown_stretch():
    with pytest.raises(ValueError, match="high > low"):
        Normalisation(1.0, 1.0)
    with pytest.raises(ValueError, match="stretch"):
        Normalisation(0.0, 1.0, "log")


@pytest.mark.parametrize("scale", [2, 3])
def test_units_come_back_unchanged_through_an_exact_upscaler(scale):
    data = smooth_field()
    out = upscale_science(data.astype(np.float32), repeat_fn(scale), scale)
    want = block_repeat(data.astype(np.float32).astype(np.float64), scale)
    span = data.max() - data.min()
    assert out.shape == (32 * scale, 40 * scale) and out.dtype == np.float32
    assert_close("units", out, want, 2e-6 * span)  # float32 rounding of the [0, 1] image


def test_output_is_the_linear_map_of_the_network_output():
    data = smooth_field()
    out = upscale_science(data, bicubic_fn(2), 2)
    low, high = data.min(), data.max()
    want = bicubic(((data - low) / (high - low)).astype(np.float32), 2) * (high - low) + low
    assert out.dtype == np.float64
    assert_close("linear", out, want, 2e-6 * (high - low))


def test_upscale_plane_maps_the_given_data_range_instead_of_its_own():
    data = np.zeros((16, 16))
    data[7, 8] = 100.0
    clipped_bicubic = lambda a: np.clip(bicubic(a, 2), 0.0, 1.0)
    own = upscale_plane(data, clipped_bicubic, 2)
    wide = upscale_plane(data, clipped_bicubic, 2, data_range=(-100.0, 100.0))
    unclipped = bicubic(data.astype(np.float32), 2)
    assert own.min() == 0.0 and unclipped.min() < -1.0, (own.min(), unclipped.min())
    assert_close("wide range keeps the ringing", wide, unclipped, 1e-5 * 200)
    const = upscale_plane(data, clipped_bicubic, 2, data_range=(3.0, 3.0))
    assert np.all(const == 3.0), np.unique(const)


@pytest.mark.parametrize("value", [0.0, -12.5, 3.0e7])
def test_constant_image_comes_back_constant_without_the_network(value):
    def must_not_run(a):
        raise AssertionError("the network ran on a constant image")

    data = np.full((9, 11), value, dtype=np.float32)
    for conserve in (False, True):
        out = upscale_science(data, must_not_run, 2, conserve_flux=conserve)
        assert out.shape == (18, 22) and np.all(out == np.float32(value)), (value, out.min(), out.max())


def test_single_star_on_zero_background_is_sane():
    peak = 6.0e4
    data = np.zeros((24, 24), np.float32)
    data[11, 13] = peak
    out = upscale_science(data, bicubic_fn(2), 2)
    assert np.isfinite(out).all()
    # The normalisation is linear: the output is the upscaler's response to a unit star, times peak,
    # so its ringing is the upscaler's own relative ringing, not amplified.
    unit_response = bicubic((data / peak).astype(np.float32), 2)
    want = unit_response * peak
    assert_close("star", out, want, 2e-6 * peak)
    conserved = upscale_science(data, bicubic_fn(2), 2, conserve_flux=True)
    assert np.isfinite(conserved).all()
    assert conserved.sum() == pytest.approx(4 * peak, rel=1e-6), conserved.sum()


def test_single_star_through_srcnn_stays_finite_and_in_range(weights):
    peak = 1e9
    data = np.zeros((12, 12), np.float32)
    data[5, 6] = peak
    out = upscale_science(data, lambda a: upscale(a, weights, scale=2), 2)
    # upscale clips to [0, 1], so the result stays in [0, peak] whatever the weights
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= peak, (out.min(), out.max())


def test_blank_pixels_come_back_nan_exactly_over_their_blocks():
    data = smooth_field().astype(np.float32)
    data[5:9, 10:15] = np.nan
    data[20, 3] = np.inf
    data[0, 0] = -np.inf
    data[31, 39] = np.nan
    blank = ~np.isfinite(data)
    for scale in (2, 3):
        out = upscale_science(data, bicubic_fn(scale), scale)
        want_nan = block_repeat(blank, scale)
        assert np.array_equal(np.isnan(out), want_nan), (np.argwhere(np.isnan(out) != want_nan)[:5])
        assert np.isfinite(out[~want_nan]).all()


def test_blank_patch_fill_disturbs_the_pixels_around_it_far_less_than_a_constant_fill():
    data = smooth_field()
    holed = data.copy()
    holed[10:18, 12:22] = np.nan
    hole = np.isnan(holed)
    full = upscale_science(data, bicubic_fn(2), 2)
    out = upscale_science(holed, bicubic_fn(2), 2)
    constant_fill = upscale_science(np.where(hole, np.median(data[~hole]), holed), bicubic_fn(2), 2)
    valid = ~np.isnan(out)
    grown_error = np.abs(out - full)[valid].max()
    constant_error = np.abs(constant_fill - full)[valid].max()
    assert grown_error < 0.25 * constant_error, \
        f"next to the patch: grown fill moved pixels by {grown_error:.4g}, constant fill by {constant_error:.4g}"


def test_fill_blanks_keeps_known_pixels_and_fills_deep_holes_with_the_median():
    data = np.full((40, 40), 2.0)
    data[:, 20:] = 4.0
    blank = np.zeros_like(data, bool)
    blank[2:38, 2:38] = True
    filled = fill_blanks(np.where(blank, np.nan, data), blank)
    assert np.array_equal(filled[~blank], data[~blank])
    assert np.isfinite(filled).all()
    assert filled.min() >= 2.0 and filled.max() <= 4.0, (filled.min(), filled.max())
    deep = filled[2 + FILL_ROUNDS:38 - FILL_ROUNDS, 2 + FILL_ROUNDS:38 - FILL_ROUNDS]
    assert np.all(deep == np.median(data[~blank])), np.unique(deep)
    ring = filled[2, 5]  # next to the known 2.0 border on the left half
    assert ring == 2.0, ring


def test_all_blank_image_fails_clearly():
    data = np.full((8, 8), np.nan, np.float32)
    with pytest.raises(BlankImageError, match="every pixel is blank"):
        upscale_science(data, bicubic_fn(2), 2)
    with pytest.raises(BlankImageError, match="every plane"):
        upscale_science(np.stack([data, data]), bicubic_fn(2), 2)


def test_cube_planes_are_normalised_separately_and_blank_planes_stay_blank():
    plane = smooth_field(16, 20, 0.0, 1.0).astype(np.float32)
    cube = np.stack([plane, np.full_like(plane, np.nan), plane * 1000 + 7])
    out = upscale_science(cube, bicubic_fn(2), 2)
    assert out.shape == (3, 32, 40) and out.dtype == np.float32
    assert np.isnan(out[1]).all()
    want = out[0].astype(np.float64) * 1000 + 7
    assert_close("plane 2", out[2], want, 1e-5 * np.abs(want).max())


def test_four_dimensional_data_keeps_leading_axes():
    data = np.random.default_rng(2).random((2, 3, 8, 10)).astype(np.float32)
    out = upscale_science(data, bicubic_fn(2), 2)
    assert out.shape == (2, 3, 16, 20)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_conserve_flux_surface_block_means_equal_input(scale):
    data = smooth_field(low=10.0, high=9000.0).astype(np.float32)
    data[3, 4] = np.nan
    out = upscale_science(data, bicubic_fn(scale), scale, conserve_flux=True)
    means = block_mean(out, scale)
    ok = np.isfinite(data)
    rel = np.abs(means[ok] - data[ok]) / np.abs(data[ok])
    assert rel.max() <= 1e-5, f"block mean off by {rel.max():.3g} relative"
    assert np.isnan(means[3, 4])


def test_conserve_flux_total_block_sums_equal_input():
    scale = 3
    data = smooth_field(low=1.0, high=500.0)
    out = upscale_science(data, bicubic_fn(scale), scale, conserve_flux=True, flux_units="total")
    sums = block_mean(out, scale) * scale * scale
    rel = np.abs(sums - data) / np.abs(data)
    assert rel.max() <= 1e-5, f"block sum off by {rel.max():.3g} relative"
    assert out.sum() == pytest.approx(data.sum(), rel=1e-5)


def test_total_flux_units_divide_by_block_area_even_without_conservation():
    data = smooth_field(low=1.0, high=500.0)
    surface = upscale_science(data, bicubic_fn(2), 2)
    total = upscale_science(data, bicubic_fn(2), 2, flux_units="total")
    assert_close("total x 4", total * 4, surface, 1e-12 * np.abs(surface).max())


def test_conserve_flux_handles_zero_and_negative_pixels():
    data = smooth_field(low=-100.0, high=100.0)
    data[4:8, 4:8] = 0.0
    out = upscale_science(data, bicubic_fn(2), 2, conserve_flux=True)
    assert np.isfinite(out).all()
    assert_close("block means", block_mean(out, 2), data, 1e-9 * 200)


@pytest.mark.parametrize("dtype, want", [(np.int16, np.float32), (np.uint16, np.float32),
                                         (np.float32, np.float32), (np.float64, np.float64)])
def test_output_dtype(dtype, want):
    data = (np.arange(48).reshape(6, 8) * 3).astype(dtype)
    assert upscale_science(data, bicubic_fn(2), 2).dtype == want


def test_bad_arguments_and_bad_upscalers_raise():
    data = smooth_field(8, 8)
    with pytest.raises(ValueError, match="flux_units"):
        upscale_science(data, bicubic_fn(2), 2, flux_units="per-pixel")
    with pytest.raises(ValueError, match="stretch"):
        upscale_science(data, bicubic_fn(2), 2, stretch="log")
    with pytest.raises(ValueError, match="scale"):
        upscale_science(data, bicubic_fn(2), 0)
    with pytest.raises(ValueError, match="shape"):
        upscale_science(np.zeros(8), bicubic_fn(2), 2)
    with pytest.raises(ValueError, match="returned shape"):
        upscale_science(data, bicubic_fn(3), 2)
    with pytest.raises(ValueError, match="NaN or inf"):
        upscale_science(data, lambda a: np.full((16, 16), np.nan, np.float32), 2)
