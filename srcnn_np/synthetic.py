"""Synthetic sky images, NumPy only, deterministic by random seed.

    stars     Moffat PSF, positions uniform, total fluxes from a power law
              dN/dF ~ F^-(index + 1) for F >= flux_min (Pareto), colour from a random tint
    galaxies  a few Sersic profiles with random index, radius, ellipticity and angle
    diffuse   faint nebulosity: Gaussian random field with a power-law spectrum, exponentiated
    sky       constant background level
    noise     Poisson (photon counts at `gain` counts per unit) plus Gaussian read noise
    display   optional asinh stretch, as press images are, then clipped to [0, 1]

Linear intensities are in units of the full display range before the stretch. Used by the tests
and as extra fine-tuning data (reference/train.py).
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StarCatalog:
    """Stars drawn for one image: y, x (n,) float64 pixel centres, flux (n,) float64 totals,
    colour (n, 3) float64 RGB tints (mean 1)."""

    y: np.ndarray
    x: np.ndarray
    flux: np.ndarray
    colour: np.ndarray


def moffat_alpha(fwhm: float, beta: float) -> float:
    """Moffat core width alpha for a given FWHM (pixels) and beta."""
    return fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))


def star_catalog(height, width, rng, n_stars, flux_min=0.05, flux_index=1.5) -> StarCatalog:
    """n_stars uniform positions with Pareto(flux_index) fluxes >= flux_min."""
    y = rng.uniform(0, height, n_stars) - 0.5
    x = rng.uniform(0, width, n_stars) - 0.5
    flux = flux_min * (1.0 - rng.uniform(0, 1, n_stars)) ** (-1.0 / flux_index)
    t = rng.uniform(0, 1, (n_stars, 1))  # 0 hot (blue) .. 1 cool (red)
    colour = (1 - t) * np.array([0.8, 0.95, 1.25]) + t * np.array([1.25, 0.95, 0.7])
    return StarCatalog(y, x, flux, colour)


def render_stars(height, width, catalog: StarCatalog, fwhm=2.5, beta=3.0, radius=12) -> np.ndarray:
    """Stars as Moffat profiles -> (H, W, 3) float64 linear intensity.

    Each profile is evaluated on a (2*radius+1)^2 stamp and normalised to its flux there.
    """
    out = np.zeros((height, width, 3))
    alpha = moffat_alpha(fwhm, beta)
    offsets = np.arange(-radius, radius + 1)
    for y, x, f, c in zip(catalog.y, catalog.x, catalog.flux, catalog.colour):
        cy, cx = round(y), round(x)
        ys, xs = cy + offsets, cx + offsets
        r2 = (ys[:, None] - y) ** 2 + (xs[None, :] - x) ** 2
        stamp = (1.0 + r2 / alpha ** 2) ** (-beta)
        stamp *= f / stamp.sum()
        y0, y1 = max(ys[0], 0), min(ys[-1] + 1, height)
        x0, x1 = max(xs[0], 0), min(xs[-1] + 1, width)
        if y0 < y1 and x0 < x1:
            out[y0:y1, x0:x1] += stamp[y0 - ys[0]:y1 - ys[0], x0 - xs[0]:x1 - xs[0], None] * c
    return out


def sersic(height, width, y, x, r_eff, n, ellipticity, angle, peak) -> np.ndarray:
    """One Sersic profile I(r) = Ie exp(-b_n ((r / r_eff)^(1/n) - 1)) -> (H, W) float64, max ~peak."""
    b_n = 2.0 * n - 1.0 / 3.0 + 0.009876 / n  # Ciotti & Bertin (1999) approximation
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    dy, dx = yy - y, xx - x
    ca, sa = np.cos(angle), np.sin(angle)
    u, v = dx * ca + dy * sa, (-dx * sa + dy * ca) / (1.0 - ellipticity)
    r = np.sqrt(u ** 2 + v ** 2)
    return peak * np.exp(-b_n * (r / r_eff) ** (1.0 / n))


def diffuse_field(height, width, rng, slope=3.0) -> np.ndarray:
    """Smooth positive field (H, W) float64 in [0, 1]: power-law spectrum ~ k^-slope, exponentiated."""
    ky = np.fft.fftfreq(height)[:, None]
    kx = np.fft.rfftfreq(width)[None, :]
    k = np.sqrt(ky ** 2 + kx ** 2)
    k[0, 0] = 1.0
    amp = k ** (-slope / 2.0)
    amp[0, 0] = 0.0
    noise = rng.normal(size=(height, width // 2 + 1)) + 1j * rng.normal(size=(height, width // 2 + 1))
    field = np.fft.irfft2(noise * amp, s=(height, width))
    field = (field - field.mean()) / (field.std() + 1e-12)
    e = np.exp(1.5 * field)
    return e / e.max()


def add_noise(linear: np.ndarray, rng, gain=2000.0, read_noise=0.002) -> np.ndarray:
    """Poisson noise of `gain` counts per unit intensity plus Gaussian read noise (intensity units)."""
    counts = rng.poisson(np.clip(linear, 0, None) * gain)
    return counts / gain + rng.normal(0.0, read_noise, linear.shape)


def asinh_stretch(linear: np.ndarray, softening=0.05) -> np.ndarray:
    """Display stretch asinh(x / a) / asinh(1 / a), clipped to [0, 1]."""
    return np.clip(np.arcsinh(np.clip(linear, 0, None) / softening) / np.arcsinh(1.0 / softening), 0, 1)


def synthetic_sky(height, width, seed=0, *, star_density=1 / 200, flux_min=0.05, flux_index=1.5,
                  fwhm=2.5, beta=3.0, n_galaxies=3, diffuse=0.15, sky=0.02, gain=2000.0,
                  read_noise=0.002, stretch=True, return_catalog=False):
    """A synthetic sky image (H, W, 3) float32 RGB in [0, 1], fully determined by `seed`.

    star_density: mean stars per pixel (the count is Poisson); diffuse: peak of the nebulosity;
    stretch: apply asinh_stretch (False gives the clipped linear image, for tests).
    return_catalog: also return the StarCatalog.
    """
    rng = np.random.default_rng(seed)
    catalog = star_catalog(height, width, rng, int(rng.poisson(star_density * height * width)),
                           flux_min, flux_index)
    linear = render_stars(height, width, catalog, fwhm, beta)
    for _ in range(n_galaxies):
        tint = np.array([1.1, 1.0, 0.85]) * rng.uniform(0.85, 1.15, 3)
        g = sersic(height, width, rng.uniform(0, height), rng.uniform(0, width),
                   r_eff=rng.uniform(3, 0.08 * min(height, width) + 3), n=rng.uniform(0.7, 4.0),
                   ellipticity=rng.uniform(0, 0.7), angle=rng.uniform(0, np.pi), peak=rng.uniform(0.1, 0.6))
        linear += g[:, :, None] * tint
    if diffuse > 0:
        hue = rng.dirichlet([1.0, 1.0, 1.0]) * 3.0
        linear += diffuse * diffuse_field(height, width, rng)[:, :, None] * hue
    linear += sky
    noisy = add_noise(linear, rng, gain, read_noise)
    image = asinh_stretch(noisy) if stretch else np.clip(noisy, 0.0, 1.0)
    image = image.astype(np.float32)
    return (image, catalog) if return_catalog else image
