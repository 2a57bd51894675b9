"""Property-based tests of the array API (issue 7): `srcnn_np.upscale` against the torch reference.

For any shape >= 1x1 (small: <= 20x20 here), any dtype `upscale` accepts (uint8, uint16, float16/32/64,
either byte order), values anywhere in range (hypothesis favours the extremes), C-, Fortran-ordered,
strided and reversed arrays, 1 to 4 channels, both modes, scales 2-4 and any tile size: the output
has shape (sH, sW[, C]), is float32 in [0, 1], equals the reference within the parity tolerance,
and the input is left unchanged. Invalid arrays raise ValueError/TypeError, never anything else.
"""
from functools import lru_cache

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import srcnn_np
from reference.model import from_weights
from srcnn_np.color import rgb_to_ycbcr, ycbcr_to_rgb
from srcnn_np.geometry import edge_margin
from srcnn_np.options import EDGES
from srcnn_np.weights import Weights

from .checks import assert_close
from .conftest import PARITY_TOL, random_weights

ACCEPTED_DTYPES = [np.dtype(d) for d in ("u1", "<u2", ">u2", "<f2", ">f2", "<f4", ">f4", "<f8", ">f8")]
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@lru_cache(maxsize=None)
def weights_and_model(scale: int):
    """Random weights whose output spreads over [0, 1] and past it (torch's init alone gives +-0.1
    around 0, where clipping at 0 would hide half of any error)."""
    arrays = random_weights(20 + scale, scale=scale).arrays()
    arrays["conv3.weight"] = arrays["conv3.weight"] * np.float32(8)
    arrays["conv3.bias"] = np.full(1, 0.5, np.float32)
    weights = Weights.from_arrays(arrays, scale)
    return weights, from_weights(weights).eval()


def reference_float01(image: np.ndarray) -> np.ndarray:
    """What upscale must see: integers over their maximum, floats as they are, float32."""
    if image.dtype.kind == "u":
        return image.astype(np.float32) / np.float32(np.iinfo(image.dtype).max)
    return image.astype(np.float32)


def reference_upscale(image: np.ndarray, scale: int, mode: str, edges: str = "replicate") -> np.ndarray:
    """torch: each colour channel through the net (or Y only in mode y), alpha bicubic, clipped;
    edges="replicate": the net runs on planes extended by edge_margin(scale) edge pixels, cropped."""
    _, model = weights_and_model(scale)
    m = edge_margin(scale) if edges == "replicate" else 0
    x = reference_float01(image)
    planes = x[:, :, None] if x.ndim == 2 else x
    channels = planes.shape[2]
    colour = planes[:, :, : 1 if channels <= 2 else 3]
    with torch.no_grad():
        def net(a):  # (H, W, K) -> (sH, sW, K), every plane through the network
            a = np.pad(a, ((m, m), (m, m), (0, 0)), mode="edge")
            out = model(torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[:, None])[:, 0] \
                .numpy().transpose(1, 2, 0)
            return out[scale * m:out.shape[0] - scale * m, scale * m:out.shape[1] - scale * m]

        def bicubic(a):
            return model.upsample(torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[:, None])[:, 0] \
                .numpy().transpose(1, 2, 0)

        if mode == "y" and colour.shape[2] == 3:
            ycc = rgb_to_ycbcr(colour)
            out = ycbcr_to_rgb(np.concatenate([net(ycc[:, :, :1]), bicubic(ycc[:, :, 1:])], axis=2))
        else:
            out = net(colour)
        if channels in (2, 4):
            out = np.concatenate([out, bicubic(planes[:, :, -1:])], axis=2)
    out = np.clip(out, 0, 1)
    return out[:, :, 0] if x.ndim == 2 else out


@st.composite
def images(draw, max_side=20):
    """(H, W) or (H, W, C) arrays of an accepted dtype, in range, possibly non-contiguous."""
    dtype = draw(st.sampled_from(ACCEPTED_DTYPES))
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    channels = draw(st.sampled_from([None, 1, 2, 3, 4]))
    layout = draw(st.sampled_from(["C", "F", "strided", "reversed"]))
    base_h, base_w = (2 * h, 2 * w) if layout == "strided" else (h, w)
    shape = (base_h, base_w) if channels is None else (base_h, base_w, channels)
    if dtype.kind == "u":
        elements = st.integers(0, np.iinfo(dtype).max)
    else:
        elements = st.floats(0.0, 1.0, width=min(32, 8 * dtype.itemsize), allow_subnormal=dtype.itemsize > 2)
    a = draw(hnp.arrays(dtype, shape, elements=elements))
    if layout == "F":
        a = np.asfortranarray(a)
    elif layout == "strided":
        a = a[::2, 1::2]
    elif layout == "reversed":
        a = a[::-1, ::-1]
    return a


@PROPERTY_SETTINGS
@given(image=images(), scale=st.sampled_from([2, 3, 4]), mode=st.sampled_from(["rgb", "y"]),
       tile=st.one_of(st.none(), st.integers(1, 24)), edges=st.sampled_from(EDGES))
def test_upscale_matches_reference(image, scale, mode, tile, edges):
    weights, _ = weights_and_model(scale)
    before = image.copy()
    got = srcnn_np.upscale(image, weights, mode=mode, scale=scale, tile=tile, edges=edges)
    np.testing.assert_array_equal(image, before, err_msg="upscale changed its input")
    h, w = image.shape[:2]
    want_shape = (scale * h, scale * w) + image.shape[2:]
    assert got.dtype == np.float32 and got.shape == want_shape, f"got {got.dtype} {got.shape}, want {want_shape}"
    assert np.all((got >= 0) & (got <= 1)), f"output outside [0, 1]: min {got.min()}, max {got.max()}"
    assert_close(f"upscale {image.dtype.str} {image.shape} x{scale} {mode} tile={tile} edges={edges}", got,
                 reference_upscale(image, scale, mode, edges), PARITY_TOL, key="properties upscale")


@settings(max_examples=25, deadline=None, derandomize=True)
@given(value=st.sampled_from([0, 1]), dtype=st.sampled_from(ACCEPTED_DTYPES), side=st.integers(1, 12))
def test_constant_extremes(value, dtype, side):
    """All-black and all-white images of every dtype: exact match with the reference."""
    top = np.iinfo(dtype).max if dtype.kind == "u" else 1
    image = np.full((side, side, 3), value * top, dtype=dtype)
    weights, _ = weights_and_model(2)
    assert_close(f"constant {value} {dtype.str}", srcnn_np.upscale(image, weights), reference_upscale(image, 2, "rgb"),
                 PARITY_TOL, key="properties upscale")


@settings(max_examples=40, deadline=None, derandomize=True)
@given(image=hnp.arrays(st.sampled_from([np.dtype("<f4"), np.dtype(">f8"), np.dtype("<f2")]),
                        hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=6),
                        elements=st.floats(allow_nan=True, allow_infinity=True, width=16)))
def test_non_finite_floats_are_blank_pixels(image):
    """NaN and inf in a float image are blank pixels, as in FITS (issue 23): NaN over their 2 x 2
    output blocks and nowhere else; a one-line ValueError when no colour pixel is finite or alpha
    is not coverage in [0, 1]."""
    weights, _ = weights_and_model(2)
    if image.ndim == 3 and image.shape[2] > 4:
        image = image[:, :, :4]
    planes = image[:, :, None] if image.ndim == 2 else image
    colour = planes[:, :, : 1 if planes.shape[2] <= 2 else 3]
    alpha = planes[:, :, 3 if planes.shape[2] == 4 else 1] if planes.shape[2] in (2, 4) else np.zeros(1)
    if not np.isfinite(colour).any() or not (np.isfinite(alpha).all() and 0 <= alpha.min() and alpha.max() <= 1):
        with pytest.raises(ValueError) as e:
            srcnn_np.upscale(image, weights)
        assert "\n" not in str(e.value)
        return
    out = srcnn_np.upscale(image, weights)
    out_colour = (out[:, :, None] if out.ndim == 2 else out)[:, :, : colour.shape[2]]
    want = np.repeat(np.repeat(~np.isfinite(colour), 2, axis=0), 2, axis=1)
    assert np.array_equal(np.isnan(out_colour), want), f"NaN at {np.argwhere(np.isnan(out_colour)).tolist()}"
    assert np.isfinite(out_colour[~want]).all()


@pytest.mark.parametrize("image, error", [
    (np.zeros((0, 5), np.uint8), ValueError),
    (np.zeros((5, 0, 3), np.uint8), ValueError),
    (np.zeros((5,), np.uint8), ValueError),
    (np.zeros((2, 3, 4, 1), np.uint8), ValueError),
    (np.zeros((4, 4, 5), np.uint8), ValueError),
    (np.zeros((4, 4), np.int16), TypeError),
    (np.zeros((4, 4), np.uint32), TypeError),
    (np.zeros((4, 4), bool), TypeError),
    (np.zeros((4, 4), np.complex64), TypeError),
    (np.zeros((4, 4), object), TypeError),
], ids=["0xN", "Nx0x3", "1-D", "4-D", "5 channels", "int16", "uint32", "bool", "complex", "object"])
def test_invalid_arrays_raise_clear_errors(image, error):
    weights, _ = weights_and_model(2)
    with pytest.raises(error) as e:
        srcnn_np.upscale(image, weights)
    assert "\n" not in str(e.value) and str(e.value), repr(e.value)


@settings(max_examples=20, deadline=None, derandomize=True)
@given(value=st.floats(0.015625, 0.984375, width=32), scale=st.sampled_from([2, 3, 4]),
       shape=st.sampled_from([(1, 1), (3, 17), (16, 16), (29, 8, 3)]))
def test_flat_image_stays_flat_to_its_edges(value, scale, shape):
    """A flat sky comes out flat to the last pixel with edges="replicate" (the convs' zero padding
    never meets the image), for the shipped model of each scale."""
    image = np.full(shape, value, np.float32)
    got = srcnn_np.upscale(image, scale=scale)
    spread = float(got.max() - got.min())
    assert spread <= 1e-5, f"flat {value} {shape} x{scale}: output spans {spread:.2e} (> 1e-5)"


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_zero_edges_leave_the_artifacts_that_replicate_removes(scale):
    """The network as torch runs it (edges="zero") is not flat near the border of a flat sky."""
    got = srcnn_np.upscale(np.full((16, 16), 0.2, np.float32), scale=scale, edges="zero")
    centre = got[got.shape[0] // 2, got.shape[1] // 2]
    assert abs(float(got[0, 0] - centre)) > 1e-2, f"x{scale}: corner {got[0, 0]} vs centre {centre}"
