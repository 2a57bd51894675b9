"""SRCNN as in the seed project: bicubic upsampling, then three convolutions.

    x (N, 1, H, W) float32 in [0, 1]
    -> bicubic x scale (align_corners=False)  (N, 1, sH, sW)
    -> conv1 1->64 9x9 pad 4 + ReLU          (N, 64, sH, sW)
    -> conv2 64->32 5x5 pad 2 + ReLU         (N, 32, sH, sW)
    -> conv3 32->1 5x5 pad 2                 (N, 1, sH, sW), not clamped

The submodule names conv1, conv2, conv3 are part of the weight contract
(see srcnn_np/weights.py and tools/convert_weights.py).
"""
import torch
import torch.nn.functional as F
from torch import nn


class SRCNN(nn.Module):
    def __init__(self, scale: int = 2):
        super().__init__()
        self.scale = scale
        self.conv1 = nn.Conv2d(1, 64, kernel_size=9, padding=4)  # weight (64, 1, 9, 9), bias (64,)
        self.conv2 = nn.Conv2d(64, 32, kernel_size=5, padding=2)  # weight (32, 64, 5, 5), bias (32,)
        self.conv3 = nn.Conv2d(32, 1, kernel_size=5, padding=2)  # weight (1, 32, 5, 5), bias (1,)

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) -> (N, 1, scale*H, scale*W), torch bicubic (a = -0.75, clamped borders)."""
        return F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_stages(x)["output"]

    def forward_stages(self, x: torch.Tensor) -> dict:
        """Every intermediate activation, by name; used for the debug-state file."""
        up = self.upsample(x)
        conv1 = F.relu(self.conv1(up))
        conv2 = F.relu(self.conv2(conv1))
        out = self.conv3(conv2)
        return {"input": x, "upsampled": up, "conv1": conv1, "conv2": conv2, "output": out}


def from_weights(weights, scale: int | None = None) -> SRCNN:
    """An eval-mode SRCNN holding srcnn_np Weights (the .npz contract), for parity checks."""
    model = SRCNN(scale or weights.scale)
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in weights.arrays().items()})
    return model.eval()
