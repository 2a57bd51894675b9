"""Tiled inference equals the untiled network (<= 1e-5), whatever the tile size and image shape."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import srcnn_np
from srcnn_np.geometry import HALO, tile_windows
from srcnn_np import model
from srcnn_np.model import KernelWeights, forward_stages, srcnn_forward

from .checks import assert_close
from .conftest import random_weights

TILED_TOL = 1e-5
KW = KernelWeights.from_weights(random_weights(3))


@pytest.mark.parametrize("tile", list(range(1, 18)) + [23, 64, 1000])
@pytest.mark.parametrize("shape", [(1, 1), (1, 13), (11, 1), (9, 14)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_tiled_equals_untiled_random_image(shape, tile):
    lr = np.random.default_rng(tile + 100 * shape[0]).random(shape, dtype=np.float32)
    untiled = forward_stages(lr, KW)["output"]
    assert_close(f"tile {tile} of {shape}", srcnn_forward(lr, KW, tile), untiled, TILED_TOL)


@given(h=st.integers(1, 40), w=st.integers(1, 40), tile=st.integers(4, 50), seed=st.integers(0, 99))
@settings(max_examples=25, deadline=None)
def test_tiled_equals_untiled_any_shape(h, w, tile, seed):
    lr = np.random.default_rng(seed).standard_normal((h, w)).astype(np.float32)
    untiled = forward_stages(lr, KW)["output"]
    assert_close(f"tile {tile} of {(h, w)}", srcnn_forward(lr, KW, tile), untiled, TILED_TOL)


@pytest.mark.parametrize("tile", [13, 100, 129])
def test_tiled_equals_untiled_real_image(hubble_gray, tile):
    lr = np.ascontiguousarray(hubble_gray[200:330, 500:597])  # 130 x 97: no tile divides 260 x 194
    untiled = forward_stages(lr, KW)["output"]
    assert_close(f"hubble crop, tile {tile}", srcnn_forward(lr, KW, tile), untiled, TILED_TOL)


def test_upscale_rgb_does_not_depend_on_the_tile():
    data = pytest.importorskip("skimage.data")

    rgb = data.astronaut()[100:160, 200:245]  # uint8 (60, 45, 3)
    weights = random_weights(4)
    whole = srcnn_np.upscale(rgb, weights, tile=10_000)
    for tile in (5, 33):
        assert_close(f"upscale tile {tile}", srcnn_np.upscale(rgb, weights, tile=tile), whole, TILED_TOL)


def test_mode_y_does_not_depend_on_the_chroma_band(monkeypatch):
    """Mode y upsamples and converts chroma in bands of rows: one row at a time gives the same bits."""
    rgb = np.random.default_rng(5).random((23, 31, 4), dtype=np.float32)
    weights = random_weights(4, scale=3)
    whole = srcnn_np.upscale(rgb, weights, mode="y", scale=3)
    monkeypatch.setattr(model, "CHROMA_BAND_PIXELS", 1)
    banded = srcnn_np.upscale(rgb, weights, mode="y", scale=3)
    assert np.array_equal(banded, whole), f"max difference {np.abs(banded - whole).max()}"


def test_mode_y_peak_memory_is_at_most_mode_rgb():
    """Mode y (the net on Y only) must not hold full-size YCbCr copies: its peak traced memory is
    at most mode rgb's (measured 0.91 of it; before the fix 2.2 times)."""
    import tracemalloc

    image = (np.random.default_rng(6).random((512, 512, 3)) * 65535).astype(np.uint16)
    weights = model.resolve_weights(random_weights(4))
    peaks = {}
    for mode in ("rgb", "y"):
        srcnn_np.upscale(image[:64, :64], weights, mode=mode, tile=128)  # one-time allocations outside the count
        tracemalloc.start()
        try:
            srcnn_np.upscale(image, weights, mode=mode, tile=128)
            peaks[mode] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peaks["y"] <= peaks["rgb"], f"peak bytes: mode y {peaks['y']}, mode rgb {peaks['rgb']}"


@pytest.mark.parametrize("length,tile", [(1, 1), (1, 512), (17, 4), (100, 100), (101, 25), (1000, 333)])
def test_tile_windows_partition_the_axis_with_halo(length, tile):
    spans = list(tile_windows(length, tile))
    assert [s[0] for s in spans] == list(range(0, length, tile))
    assert spans[-1][1] == length
    for (start, stop, wstart, wstop), nxt in zip(spans, spans[1:] + [None]):
        assert nxt is None or nxt[0] == stop
        assert wstart == max(start - HALO, 0) and wstop == min(stop + HALO, length)


@pytest.mark.parametrize("tile", [0, -3])
def test_tile_must_be_positive(tile):
    with pytest.raises(ValueError, match="tile"):
        srcnn_forward(np.zeros((4, 4), np.float32), KW, tile)


@pytest.mark.parametrize("shape, mode", [((40, 30, 3), "rgb"), ((40, 30, 3), "y"), ((9, 7), "rgb"), ((9, 7, 4), "rgb")])
def test_on_tile_is_called_once_per_network_tile(shape, mode):
    """The CLI's progress bar for large images counts tiles: network_tiles must match the calls."""
    from srcnn_np.model import network_tiles, upscale

    calls = []
    image = np.zeros(shape, np.uint8)
    upscale(image, random_weights(1), mode=mode, tile=16, on_tile=lambda: calls.append(1))
    assert len(calls) == network_tiles(shape, mode, 16, 2), (len(calls), network_tiles(shape, mode, 16, 2))
