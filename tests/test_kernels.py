"""The Numba kernels against the naive float64 oracles in tests/naive.py, every conv test for each
register-block variant (AVX-512, AVX2, 4 lanes: any of them runs on any CPU)."""
import numpy as np
import pytest

from srcnn_np.cpu import isa, kernels, simd, winograd
from srcnn_np.model import KernelWeights, Workspace, forward_stages, upsample_conv1

from . import naive
from .checks import assert_close
from .conftest import random_weights

KW = KernelWeights.from_weights(random_weights(1))
each_variant = pytest.mark.parametrize("block", isa.VARIANTS.values(), ids=list(isa.VARIANTS))


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (7, 1), (5, 13), (32, 17)])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_matches_naive(shape, scale):
    img = np.random.default_rng(sum(shape) + scale).random(shape, dtype=np.float32)
    up = kernels.bicubic_upsample(img, scale)
    assert up.shape == (shape[0] * scale, shape[1] * scale) and up.dtype == np.float32
    assert_close(f"bicubic x{scale} of {shape}", up, naive.bicubic(img, scale), 2e-6)


@pytest.mark.parametrize("window", [(0, 0, 1, 1), (3, 5, 7, 2), (10, 0, 14, 33), (0, 21, 24, 13)])
def test_bicubic_window_is_the_slice_of_the_whole_image(window):
    y0, x0, h, w = window
    img = np.random.default_rng(3).random((12, 17), dtype=np.float32)
    pad = 2
    dst = np.full((h + 2 * pad + 1, w + 2 * pad + 3), -7.0, dtype=np.float32)
    kernels.bicubic_window(img, 2, y0, x0, h, w, dst, pad)
    whole = kernels.bicubic_upsample(img, 2)
    np.testing.assert_array_equal(dst[pad:pad + h, pad:pad + w], whole[y0:y0 + h, x0:x0 + w])
    untouched = np.ones(dst.shape, bool)
    untouched[pad:pad + h, pad:pad + w] = False
    assert (dst[untouched] == -7.0).all(), "bicubic_window wrote outside its window"


def test_bicubic_window_rejects_a_window_outside_the_image():
    img = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError):
        kernels.bicubic_window(img, 2, 0, 1, 8, 8, np.zeros((8, 9), np.float32), 0)


@each_variant
@pytest.mark.parametrize("width", [1, 5, 7, 8, 9, 13, 17, 40])
@pytest.mark.parametrize("layer", ["conv1", "conv2"])
def test_conv_relu_into_matches_naive_and_writes_only_the_interior(layer, width, block):
    w, b = (KW.w1, KW.b1) if layer == "conv1" else (KW.w2, KW.b2)
    K, cin, cout = w.shape[0], w.shape[2], w.shape[3]
    h, pad_in, pad_out = 6, K // 2, 2
    rng = np.random.default_rng(width)
    x = rng.standard_normal((h, width, cin)).astype(np.float32)
    src = kernels.padded_map(h, width, cin, pad_in)
    src[pad_in:pad_in + h, pad_in:pad_in + width] = x
    dst = np.full((h + 2 * pad_out, kernels.ceil_block(width) + 2 * pad_out, cout), -5.0, np.float32)
    kernels.conv_relu_into(src, w, b, width, True, dst, pad_out, block)
    inside = dst[pad_out:pad_out + h, pad_out:pad_out + width]
    assert_close(f"{layer} width {width} {block.name}", inside, naive.conv2d(x, w, b, True), 2e-5)
    untouched = np.ones(dst.shape[:2], bool)
    untouched[pad_out:pad_out + h, pad_out:pad_out + width] = False
    assert (dst[untouched] == -5.0).all(), "conv_relu_into wrote outside the interior"


@each_variant
def test_conv_relu_into_without_relu_keeps_negative_values(block):
    x = -np.ones((3, 5, 64), np.float32)
    src = kernels.padded_map(3, 5, 64, 2)
    src[2:5, 2:7] = x
    dst = kernels.padded_map(3, 5, 32, 0)
    kernels.conv_relu_into(src, KW.w2, KW.b2, 5, False, dst, 0, block)
    assert_close(f"conv2 without ReLU {block.name}", dst[:3, :5], naive.conv2d(x, KW.w2, KW.b2, False), 2e-5)
    assert (dst[:3, :5] < 0).any(), "the test input should give some negative outputs"


@each_variant
def test_relu_propagates_nan_like_torch(block):
    src = kernels.padded_map(1, 1, 64, 2)
    src[2, 2, 0] = np.nan
    dst = kernels.padded_map(1, 1, 32, 0)
    kernels.conv_relu_into(src, KW.w2, KW.b2, 1, True, dst, 0, block)
    assert np.isnan(dst[0, 0]).all(), f"NaN input should give NaN outputs, got {dst[0, 0]}"


@each_variant
@pytest.mark.parametrize("width", [1, 5, 6, 8, 11, 24])
def test_conv_single_out_into_matches_naive(width, block):
    h = 4
    x = np.random.default_rng(width).standard_normal((h, width, 32)).astype(np.float32)
    src = kernels.padded_map(h, width, 32, 2)
    src[2:2 + h, 2:2 + width] = x
    dst = np.full((h + 1, width + 2), -9.0, np.float32)
    kernels.conv_single_out_into(src, KW.w3, KW.b3, width, dst, block)
    assert_close(f"conv3 {block.name}", dst[:h, :width], naive.conv2d(x, KW.w3, KW.b3, False)[:, :, 0], 2e-5)
    assert (dst[h:] == -9.0).all() and (dst[:, width:] == -9.0).all(), "conv3 wrote outside (h, width)"


def test_conv_kernels_reject_inconsistent_shapes():
    src = kernels.padded_map(4, 8, 64, 2)
    with pytest.raises(ValueError):  # 16 columns do not fit a dst made for 8
        kernels.conv_relu_into(src, KW.w2, KW.b2, 16, True, kernels.padded_map(4, 8, 32, 2), 2)
    with pytest.raises(ValueError):  # conv3 weights take 32 channels, src has 64
        kernels.conv_single_out_into(src, KW.w3, KW.b3, 8, np.zeros((4, 8), np.float32))


@each_variant
@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (5, 3), (9, 12)])
def test_forward_stages_match_naive_stage_by_stage(shape, block):
    lr = np.random.default_rng(7).random(shape, dtype=np.float32)
    got = forward_stages(lr, KW, block)
    want = naive.srcnn_stages(lr, KW)
    assert set(got) == set(want)
    for name in want:
        assert got[name].shape == want[name].shape and got[name].dtype == np.float32, name
        assert_close(f"stage {name} of {shape} {block.name}", got[name], want[name], 2e-5)


@pytest.mark.parametrize("shape", [(1,), (3,), (17, 5), (7, 12, 64), (534, 536, 64)])
def test_aligned_arrays_start_on_a_cache_line(shape):
    a = simd.aligned_empty(shape)
    assert a.shape == shape and a.dtype == np.float32 and a.flags.c_contiguous and a.flags.writeable
    assert a.ctypes.data % simd.CACHE_LINE == 0, f"{shape}: starts {a.ctypes.data % simd.CACHE_LINE} bytes into a line"
    src = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    b = simd.aligned_copy(src)
    assert b.dtype == np.float32 and b.ctypes.data % simd.CACHE_LINE == 0 and (b == src.astype(np.float32)).all()


def test_the_model_maps_and_weights_start_on_cache_lines():
    """What the kernels read with vector loads: the padded maps (new or laid into a Workspace's
    storage), the weights and the Winograd weights; NumPy alone starts large arrays 16 bytes in."""
    ws = Workspace()
    lr = np.random.default_rng(0).random((267, 267), dtype=np.float32)
    up, conv1 = upsample_conv1(lr, KW, 0, 0, 534, 534, ws)  # a default window (512 + 2 halos)
    arrays = {"upsampled": up, "conv1": conv1, "padded_map": kernels.padded_map(9, 13, 64, 2),
              "winograd weights": kernels.winograd_weights(KW.w2),
              **{name: getattr(KW, name) for name in ("w1", "b1", "w2", "b2", "w3", "b3")}}
    off = {name: a.ctypes.data % simd.CACHE_LINE for name, a in arrays.items()}
    assert not any(off.values()), f"bytes into a cache line: {off}"


def test_padded_map_in_reused_storage_zeroes_all_but_the_interior():
    storage = np.full(10_000, np.nan, np.float32)
    m = kernels.padded_map(3, 5, 4, 2, storage)
    assert m.shape == (7, 12, 4) and m.flags.c_contiguous
    assert np.shares_memory(m, storage)
    interior = np.zeros(m.shape, bool)
    interior[2:5, 2:7] = True
    assert (m[~interior] == 0).all(), "the border and the block-rounding columns must be zero"
    assert np.isnan(m[interior]).all(), "the interior is left for the kernel to overwrite"


@each_variant
@pytest.mark.parametrize("bands", [1, 2, 3, 50])
@pytest.mark.parametrize("h,width", [(1, 1), (5, 9), (40, 13)])
def test_fused_conv2_conv3_equals_the_two_kernels(h, width, bands, block):
    x = np.random.default_rng(h * width + bands).random((h, width, 64), dtype=np.float32)
    src = kernels.padded_map(h, width, 64, 2)
    src[2:2 + h, 2:2 + width] = x
    mid = kernels.padded_map(h, width, 32, 2)
    kernels.conv_relu_into(src, KW.w2, KW.b2, width, True, mid, 2, block)
    want = np.empty((h, width), np.float32)
    kernels.conv_single_out_into(mid, KW.w3, KW.b3, width, want, block)
    got = np.full((h, width), np.nan, np.float32)
    kernels.conv_relu_then_single_out_into(src, KW.w2, KW.b2, KW.w3, KW.b3, width, got, bands, block)
    assert_close(f"fused conv2+conv3 {h}x{width}, {bands} bands, {block.name}", got, want, 1e-6)


def test_conv_kernels_reject_a_channel_count_the_block_does_not_divide():
    w = np.zeros((3, 3, 1, 24), np.float32)  # 24 output channels: not a multiple of 16 (avx2)
    src = kernels.padded_map(2, 4, 1, 1)
    dst = kernels.padded_map(2, 4, 24, 0)
    with pytest.raises(ValueError, match="inconsistent shapes"):
        kernels.conv_relu_into(src, w, np.zeros(24, np.float32), 4, True, dst, 0, isa.VARIANTS["avx2"])


def test_winograd_transform_is_the_row_correlation():
    """y = AT ((G g) * (BT d)) is the 5-tap correlation of the 8 inputs, in float64, and BT's
    entries (quarters) are exact in float32. Nested along columns, it is the 2D one
    (test_winograd_conv2_matches_naive_for_every_tile_anchor)."""
    at, g, bt = winograd.transform_matrices()
    rng = np.random.default_rng(5)
    for _ in range(20):
        taps, d = rng.standard_normal(5), rng.standard_normal(8)
        want = np.array([taps @ d[i:i + 5] for i in range(4)])
        got = at @ ((g @ taps) * (bt @ d))
        assert np.abs(got - want).max() < 1e-12, f"Winograd F(4, 5): {got} != {want}"
    assert (winograd.BT.astype(np.float64) == bt).all() and (bt * 4 == np.round(bt * 4)).all()


@each_variant
@pytest.mark.parametrize("y_origin", [0, 1, 3])
@pytest.mark.parametrize("x_origin", [0, 1, 2, 3, 6])
@pytest.mark.parametrize("width", [1, 3, 6, 29])
def test_winograd_conv2_matches_naive_for_every_tile_anchor(width, x_origin, y_origin, block):
    h = 6
    x = np.random.default_rng(width + x_origin).standard_normal((h, width, 64)).astype(np.float32)
    src = kernels.padded_map(h, width, 64, 2)
    src[2:2 + h, 2:2 + width] = x
    dst = np.full((h + 4, kernels.ceil_block(width) + 4, 32), -5.0, np.float32)
    kernels.conv_relu_into(src, KW.w2, KW.b2, width, False, dst, 2, block, x_origin=x_origin, y_origin=y_origin)
    assert_close(f"conv2 width {width} x_origin {x_origin} y_origin {y_origin} {block.name}",
                 dst[2:2 + h, 2:2 + width], naive.conv2d(x, KW.w2, KW.b2, False), 2e-5)
    dst[2:2 + h, 2:2 + width] = -5.0
    assert (dst == -5.0).all(), "conv_relu_into wrote outside the interior"


@each_variant
def test_fused_windows_give_the_bits_of_the_whole_map(block):
    """Winograd tiles are anchored to image column 0: a window that starts at any column computes
    the pixels away from its edges exactly as the whole map does, bit for bit. "Away": a tile's
    rounding depends on all 8 of its inputs, so a conv2 pixel is exact when its whole tile reads
    the window's data (tile start >= 2), and a conv3 pixel when the 5 conv2 pixels it reads are:
    7 columns from the window's left edge."""
    h, width = 6, 41
    x = np.random.default_rng(8).random((h, width, 64), dtype=np.float32)
    src = kernels.padded_map(h, width, 64, 2)
    src[2:2 + h, 2:2 + width] = x
    whole = np.empty((h, width), np.float32)
    kernels.conv_relu_then_single_out_into(src, KW.w2, KW.b2, KW.w3, KW.b3, width, whole, 1, block)
    for c0 in range(1, 8):
        w = width - c0
        win = kernels.padded_map(h, w, 64, 2)
        win[2:2 + h, 2:2 + w] = x[:, c0:]
        got = np.empty((h, w), np.float32)
        kernels.conv_relu_then_single_out_into(win, KW.w2, KW.b2, KW.w3, KW.b3, w, got, 1, block, x_origin=c0)
        np.testing.assert_array_equal(got[:, 7:], whole[:, c0 + 7:],
                                      err_msg=f"window from column {c0}, {block.name}")


def test_conv_relu_into_runs_a_5x5_conv_whose_channels_no_vector_divides():
    """Winograd needs Cin in whole vectors; any other 5x5 conv runs directly."""
    x = np.random.default_rng(2).standard_normal((5, 9, 3)).astype(np.float32)
    w = np.random.default_rng(3).standard_normal((5, 5, 3, 16)).astype(np.float32)
    b = np.zeros(16, np.float32)
    src = kernels.padded_map(5, 9, 3, 2)
    src[2:7, 2:11] = x
    dst = kernels.padded_map(5, 9, 16, 0)
    kernels.conv_relu_into(src, w, b, 9, True, dst, 0, isa.VARIANTS["avx2"])
    assert_close("5x5 conv with 3 input channels", dst[:5, :9], naive.conv2d(x, w, b, True), 2e-5)
