"""srcnn_np against the torch reference: stage by stage, on random and real images.

Tolerances (float32 end to end): bicubic <= 1e-5, every network stage and the output <= 1e-4.
The network stages are checked for every register-block variant of the CPU kernels (AVX-512,
AVX2, 4 lanes: each runs on any CPU).
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import srcnn_np
from reference.debug_state import debug_state
from reference.model import from_weights
from srcnn_np.cpu import isa
from srcnn_np.model import KernelWeights, forward_stages
from srcnn_np.weights import load_weights

from .checks import assert_close
from .conftest import BICUBIC_TOL, PARITY_TOL, random_weights

SIZES = [(1, 1), (1, 9), (9, 1), (7, 13), (64, 64), (129, 257)]
each_variant = pytest.mark.parametrize("block", isa.VARIANTS.values(), ids=list(isa.VARIANTS))


def nchw_to_hwc(a: np.ndarray) -> np.ndarray:
    """(1, C, H, W) -> (H, W, C), or (H, W) when C == 1."""
    hwc = a[0].transpose(1, 2, 0)
    return hwc[:, :, 0] if hwc.shape[2] == 1 else hwc


def check_against_debug_state(weights, image, block):
    state = debug_state(weights, image)
    mine = forward_stages(image, KernelWeights.from_weights(weights), block)
    for stage in ("upsampled", "conv1", "conv2", "output"):
        tol = BICUBIC_TOL if stage == "upsampled" else PARITY_TOL
        assert_close(f"{stage} {image.shape} {block.name}", mine[stage], nchw_to_hwc(state[stage]), tol,
                     key=f"parity {stage}")


@each_variant
@pytest.mark.parametrize("shape", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_random_weights_random_image(shape, block):
    image = np.random.default_rng(sum(shape)).random(shape, dtype=np.float32)
    check_against_debug_state(random_weights(1), image, block)


@each_variant
@pytest.mark.parametrize("shape", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_shipped_weights_random_image(shape, block):
    image = np.random.default_rng(7 + sum(shape)).random(shape, dtype=np.float32)
    check_against_debug_state(load_weights(), image, block)


@each_variant
@pytest.mark.parametrize("which", ["random", "shipped"])
def test_hubble_deep_field_crop(hubble_gray, which, block):
    weights = random_weights(2) if which == "random" else load_weights()
    check_against_debug_state(weights, hubble_gray[100:197, 300:411], block)


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (5, 1), (2, 3), (17, 31), (64, 65)])
def test_bicubic_matches_torch(scale, shape):
    image = np.random.default_rng(scale * 100 + shape[1]).random(shape, dtype=np.float32)
    want = F.interpolate(torch.from_numpy(image)[None, None], scale_factor=scale, mode="bicubic",
                         align_corners=False)[0, 0].numpy()
    assert_close(f"bicubic x{scale} {shape}", srcnn_np.bicubic_upsample(image, scale), want, BICUBIC_TOL,
                 key="parity bicubic_upsample")


@pytest.mark.parametrize("shape", [(3, 4100), (4100, 3)], ids=["wide", "tall"])
def test_bicubic_taps_far_from_origin(shape):
    """At x3 the sample positions (o + 0.5) / 3 - 0.5 of outputs far from the origin lose float32
    digits; torch's kernel rounds them as fused multiply-adds do, and so must the taps (plain
    float32 steps were 2e-4 off torch here)."""
    image = np.random.default_rng(shape[0]).random(shape, dtype=np.float32)
    want = F.interpolate(torch.from_numpy(image)[None, None], scale_factor=3, mode="bicubic",
                         align_corners=False)[0, 0].numpy()
    assert_close(f"bicubic x3 {shape}", srcnn_np.bicubic_upsample(image, 3), want, BICUBIC_TOL,
                 key="parity bicubic_upsample")


@each_variant
@pytest.mark.parametrize("scale", [3, 4])
def test_network_other_scales(scale, block):
    image = np.random.default_rng(scale).random((11, 14), dtype=np.float32)
    check_against_debug_state(random_weights(3, scale=scale), image, block)


@pytest.mark.parametrize("edges", ["zero", "replicate"])
@pytest.mark.parametrize("mode", ["rgb", "y"])
def test_upscale_rgb_image_against_torch_per_channel(mode, edges):
    """upscale() on an RGB uint8 image == torch run channel by channel (rgb) or on Y (y), clipped;
    edges="replicate": torch run on the planes extended by edge_margin(2) edge pixels, then cropped."""
    from srcnn_np.color import rgb_to_ycbcr, ycbcr_to_rgb
    from srcnn_np.geometry import edge_margin

    from skimage import data

    rgb8 = data.hubble_deep_field()[200:263, 50:101]
    weights = random_weights(4)
    model = from_weights(weights)
    x = rgb8.astype(np.float32) / 255
    planes = rgb_to_ycbcr(x) if mode == "y" else x
    m = edge_margin(2) if edges == "replicate" else 0
    planes = np.pad(planes, ((m, m), (m, m), (0, 0)), mode="edge")
    with torch.no_grad():
        t = torch.from_numpy(np.ascontiguousarray(planes.transpose(2, 0, 1)))[:, None]
        net = model(t)[:, 0].numpy().transpose(1, 2, 0)
        if mode == "y":
            chroma = model.upsample(t)[:, 0].numpy().transpose(1, 2, 0)
            net = ycbcr_to_rgb(np.concatenate([net[:, :, :1], chroma[:, :, 1:]], axis=2))
    want = np.clip(net[2 * m:net.shape[0] - 2 * m, 2 * m:net.shape[1] - 2 * m], 0, 1)
    got = srcnn_np.upscale(rgb8, weights, mode=mode, edges=edges)
    assert got.dtype == np.float32 and got.shape == (126, 102, 3)
    assert_close(f"upscale mode={mode} edges={edges}", got, want, PARITY_TOL,
                 key=f"parity upscale mode={mode} edges={edges}")
