"""Tiled inference gives the untiled network's bits, whatever the tile size, image shape, scale,
edge mode and kernel variant (np.array_equal, not a tolerance)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import srcnn_np
from srcnn_np.cpu import isa
from srcnn_np.geometry import HALO, tile_windows
from srcnn_np import model
from srcnn_np.model import KernelWeights, forward_stages, srcnn_forward

from .checks import assert_close
from .conftest import random_weights

KW = KernelWeights.from_weights(random_weights(3))


def assert_same_bits(name, got, want):
    """got == want bit for bit (assert_close at tolerance 0 names the pixels that differ)."""
    assert_close(name, got, want, 0.0)
    assert np.array_equal(got, want), name


@pytest.mark.parametrize("tile", list(range(1, 18)) + [23, 64, 1000])
@pytest.mark.parametrize("shape", [(1, 1), (1, 13), (11, 1), (9, 14)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_tiled_equals_untiled_random_image(shape, tile):
    lr = np.random.default_rng(tile + 100 * shape[0]).random(shape, dtype=np.float32)
    untiled = forward_stages(lr, KW)["output"]
    assert_same_bits(f"tile {tile} of {shape}", srcnn_forward(lr, KW, tile), untiled)


@given(h=st.integers(1, 40), w=st.integers(1, 40), tile=st.integers(4, 50), seed=st.integers(0, 99))
@settings(max_examples=25, deadline=None)
def test_tiled_equals_untiled_any_shape(h, w, tile, seed):
    lr = np.random.default_rng(seed).standard_normal((h, w)).astype(np.float32)
    untiled = forward_stages(lr, KW)["output"]
    assert_same_bits(f"tile {tile} of {(h, w)}", srcnn_forward(lr, KW, tile), untiled)


@pytest.mark.parametrize("tile", [13, 100, 129])
def test_tiled_equals_untiled_real_image(hubble_gray, tile):
    lr = np.ascontiguousarray(hubble_gray[200:330, 500:597])  # 130 x 97: no tile divides 260 x 194
    untiled = forward_stages(lr, KW)["output"]
    assert_same_bits(f"hubble crop, tile {tile}", srcnn_forward(lr, KW, tile), untiled)


@pytest.mark.parametrize("edges", ["replicate", "zero"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_upscale_does_not_depend_on_the_tile(scale, edges):
    """Odd sizes, tiles that cut the image at every phase of the kernels' blocks, both edge modes."""
    data = pytest.importorskip("skimage.data")

    rgb = data.astronaut()[100:147, 200:233]  # uint8 (47, 33, 3)
    weights = random_weights(4, scale)
    whole = srcnn_np.upscale(rgb, weights, scale=scale, tile=10_000, edges=edges)
    for tile in (5, 18, 33, 61):
        assert_same_bits(f"x{scale} edges={edges} tile {tile}",
                         srcnn_np.upscale(rgb, weights, scale=scale, tile=tile, edges=edges), whole)


@pytest.mark.parametrize("variant", list(isa.VARIANTS))
def test_tiles_give_the_same_bits_in_every_variant(variant, monkeypatch):
    """Each register block (avx512, avx2, lanes4) on any CPU: tiled output equals untiled, bit for bit."""
    monkeypatch.setattr(isa, "BLOCK", isa.VARIANTS[variant])
    lr = np.random.default_rng(7).random((45, 38), dtype=np.float32)
    untiled = forward_stages(lr, KW)["output"]
    for tile in (7, 16, 29, 50):
        assert_same_bits(f"{variant} tile {tile}", srcnn_forward(lr, KW, tile), untiled)


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
    """The CLI's progress bar for large images counts tiles: Upscaler.tiles must match the calls."""
    from srcnn_np.model import Upscaler

    calls = []
    upscaler = Upscaler.load(random_weights(1), mode=mode, tile=16)
    upscaler(np.zeros(shape, np.uint8), on_tile=lambda: calls.append(1))
    assert len(calls) == upscaler.tiles(shape), (len(calls), upscaler.tiles(shape))
