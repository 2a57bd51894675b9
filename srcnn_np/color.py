"""Colour conversions, BT.601 full-range YCbCr (the JPEG convention), float32 in [0, 1]."""
import numpy as np

# rows: Y, Cb, Cr as weights of R, G, B; Cb and Cr are offset by 0.5
RGB_TO_YCBCR = np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], dtype=np.float32
)
YCBCR_TO_RGB = np.linalg.inv(RGB_TO_YCBCR.astype(np.float64)).astype(np.float32)
CHROMA_OFFSET = np.array([0.0, 0.5, 0.5], dtype=np.float32)


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 RGB -> (H, W, 3) float32 YCbCr."""
    return rgb @ RGB_TO_YCBCR.T + CHROMA_OFFSET


def ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 YCbCr -> (H, W, 3) float32 RGB (not clipped)."""
    return (ycc - CHROMA_OFFSET) @ YCBCR_TO_RGB.T


def ycbcr_plane(rgb: np.ndarray, channel: int) -> np.ndarray:
    """(H, W, 3) float32 RGB -> (H, W) float32 plane `channel` of YCbCr (0 Y, 1 Cb, 2 Cr), without
    the (H, W, 3) YCbCr image."""
    plane = rgb @ RGB_TO_YCBCR[channel]
    plane += CHROMA_OFFSET[channel]
    return plane


def luminance(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 RGB -> (H, W) float32 Y."""
    return ycbcr_plane(rgb, 0)
