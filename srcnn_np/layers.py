"""The SRCNN architecture, written once: bicubic upsampling, then three convolutions.

    upsampled image                       (sH, sW, 1)
    -> conv1  9x9   1 -> 64  + ReLU       (sH, sW, 64)
    -> conv2  5x5  64 -> 32  + ReLU       (sH, sW, 32)
    -> conv3  5x5  32 -> 1                (sH, sW, 1)   not clipped

Every conv pads by kernel // 2 (the output keeps the input's size). What depends on the
architecture derives from LAYERS: the receptive field (geometry.HALO), the weight contract's
array shapes (weights.CONV_SHAPES) and the GPU kernels' and buffers' channel counts (gpu/).
The CPU kernels are written for this one-channel-in, one-channel-out shape (cpu/kernels.py).
The table is part of the weights format: a different architecture is a new FORMAT_VERSION
(and compiled kernels cached on disk must then be cleared: Numba keys its cache on each kernel's
own source file, not on this one). The PyTorch reference (reference/model.py) writes the same
architecture in torch on purpose: the parity tests compare two independent descriptions of it.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Conv:
    """One convolution layer: kernel x kernel taps, channels_in -> channels_out, bias, optional ReLU."""

    name: str  # its prefix in a weights file: "conv1" -> "conv1.weight", "conv1.bias"
    kernel: int  # odd kernel edge K; the layer pads by K // 2
    channels_in: int
    channels_out: int
    relu: bool

    @property
    def radius(self) -> int:
        """Pixels of padding on each side (K // 2): how far an output pixel reaches into the input."""
        return self.kernel // 2


LAYERS = (
    Conv("conv1", kernel=9, channels_in=1, channels_out=64, relu=True),
    Conv("conv2", kernel=5, channels_in=64, channels_out=32, relu=True),
    Conv("conv3", kernel=5, channels_in=32, channels_out=1, relu=False),
)
# Channels of each stage's map: the upsampled image, then each layer's output: (1, 64, 32, 1)
STAGE_CHANNELS = (LAYERS[0].channels_in, *(layer.channels_out for layer in LAYERS))

for _before, _after in zip(LAYERS, LAYERS[1:]):
    assert _before.channels_out == _after.channels_in, (_before, _after)
assert all(layer.kernel % 2 == 1 for layer in LAYERS), LAYERS
