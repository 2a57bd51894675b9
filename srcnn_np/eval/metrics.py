"""Image-quality metrics of the standard super-resolution protocol, NumPy only.

Both metrics take two (H, W) float32 luminance images in [0, 1] (BT.601 Y, see color.luminance)
and crop `border` pixels from every side before scoring, as SR papers do (border = scale).
"""
import numpy as np

SSIM_SIGMA = 1.5  # Wang et al. 2004: 11x11 Gaussian window, sigma 1.5
SSIM_RADIUS = 5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def crop_border(image: np.ndarray, border: int) -> np.ndarray:
    """(H, W, ...) -> (H - 2*border, W - 2*border, ...)."""
    if border == 0:
        return image
    if image.shape[0] <= 2 * border or image.shape[1] <= 2 * border:
        raise ValueError(f"image of shape {image.shape} is too small for a {border}-pixel border crop")
    return image[border:-border, border:-border]


def _checked_pair(a, b, border):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"expected two (H, W) images of the same shape, got {a.shape} and {b.shape}")
    return crop_border(a, border), crop_border(b, border)


def psnr(reference: np.ndarray, test: np.ndarray, border: int = 0) -> float:
    """Peak signal-to-noise ratio in dB for a peak of 1.0; inf when the images are equal."""
    a, b = _checked_pair(reference, test, border)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0.0 else 10.0 * np.log10(1.0 / mse)


def _gaussian_filter_valid(image: np.ndarray) -> np.ndarray:
    """(H, W) float64 -> (H - 2r, W - 2r) float64, separable Gaussian, 'valid' region only."""
    x = np.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=np.float64)
    g = np.exp(-(x ** 2) / (2 * SSIM_SIGMA ** 2))
    g /= g.sum()
    n = len(g)
    rows = sum(g[k] * image[:, k:image.shape[1] - n + 1 + k] for k in range(n))
    return sum(g[k] * rows[k:rows.shape[0] - n + 1 + k, :] for k in range(n))


def ssim(reference: np.ndarray, test: np.ndarray, border: int = 0) -> float:
    """Mean structural similarity (Wang et al. 2004, Gaussian window, data range 1.0)."""
    a, b = _checked_pair(reference, test, border)
    if min(a.shape) < 2 * SSIM_RADIUS + 1:
        raise ValueError(f"SSIM needs at least {2 * SSIM_RADIUS + 1}x{2 * SSIM_RADIUS + 1} pixels "
                         f"after the border crop, got {a.shape}")
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    mu_a, mu_b = _gaussian_filter_valid(a), _gaussian_filter_valid(b)
    var_a = _gaussian_filter_valid(a * a) - mu_a ** 2
    var_b = _gaussian_filter_valid(b * b) - mu_b ** 2
    cov = _gaussian_filter_valid(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))
