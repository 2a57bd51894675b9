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

star_field / standard_star_fields: star fields with a known truth at two resolutions, in electrons,
for the science-fidelity evaluation (srcnn_np.eval.star_eval, `evaluate --stars`).
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


PSFS = ("gaussian", "moffat")
GAUSSIAN_SIGMA_PER_FWHM = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def psf_profile(r2: np.ndarray, fwhm: float, psf: str = "moffat", beta: float = 3.0) -> np.ndarray:
    """Unnormalised circular PSF at squared radii r2 (pixels^2): 1 at the centre, FWHM `fwhm` pixels.

    psf: "gaussian" exp(-r^2 / 2 sigma^2), or "moffat" (1 + r^2 / alpha^2)^-beta.
    """
    if psf == "gaussian":
        return np.exp(-r2 / (2.0 * (fwhm * GAUSSIAN_SIGMA_PER_FWHM) ** 2))
    if psf == "moffat":
        return (1.0 + r2 / moffat_alpha(fwhm, beta) ** 2) ** (-beta)
    raise ValueError(f"psf must be one of {PSFS}, got {psf!r}")


def render_point_sources(height, width, y, x, amplitude, fwhm, psf="moffat", beta=3.0,
                         radius=12) -> np.ndarray:
    """Point sources -> (H, W, C) float64: source i at pixel centre (y[i], x[i]) carries the
    total amplitude[i] ((n, C)) in channel c, spread by the PSF over a (2*radius+1)^2 stamp
    (the profile is sampled at pixel centres and normalised to sum to 1 on the stamp).
    """
    amplitude = np.asarray(amplitude, dtype=np.float64)
    out = np.zeros((height, width, amplitude.shape[1]))
    offsets = np.arange(-radius, radius + 1)
    for yc, xc, a in zip(y, x, amplitude):
        cy, cx = round(yc), round(xc)
        ys, xs = cy + offsets, cx + offsets
        stamp = psf_profile((ys[:, None] - yc) ** 2 + (xs[None, :] - xc) ** 2, fwhm, psf, beta)
        stamp /= stamp.sum()
        y0, y1 = max(ys[0], 0), min(ys[-1] + 1, height)
        x0, x1 = max(xs[0], 0), min(xs[-1] + 1, width)
        if y0 < y1 and x0 < x1:
            out[y0:y1, x0:x1] += stamp[y0 - ys[0]:y1 - ys[0], x0 - xs[0]:x1 - xs[0], None] * a
    return out


def render_stars(height, width, catalog: StarCatalog, fwhm=2.5, beta=3.0, radius=12) -> np.ndarray:
    """Stars as Moffat profiles -> (H, W, 3) float64 linear intensity.

    Each profile is evaluated on a (2*radius+1)^2 stamp and normalised to its flux there.
    """
    return render_point_sources(height, width, catalog.y, catalog.x,
                                catalog.flux[:, None] * catalog.colour, fwhm, "moffat", beta, radius)


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


# ---------------------------------------------------------------------------------------------
# Star fields with known truth, for the science-fidelity evaluation (srcnn_np.eval.star_eval)

SNR_LEVELS = (5.0, 10.0, 30.0, 100.0, 300.0, 1000.0)


@dataclass(frozen=True)
class StarField:
    """A star field at two resolutions, in electrons per low-resolution pixel area (surface units).

    truth     (s*H, s*W) float64 noiseless high-resolution image: stars + sky + nebula
    stars     (s*H, s*W) float64 the stars alone
    observed  (H, W) float64 what the detector records: the s x s block mean of `truth`, Poisson
              and Gaussian read noise, clipped at `full_well` (saturation)
    y, x      (n,) float64 star centres in high-resolution pixel coordinates; low-resolution pixel
              i covers high-resolution pixels s*i .. s*i + s - 1, so x_lr = (x - (s - 1) / 2) / s
    flux      (n,) float64 total electrons; snr (n,) float64 the design S/N of each star in a
              radius-FWHM aperture; saturated (n,) bool stars with a pixel at full well
    fwhm      PSF FWHM in low-resolution pixels; sky_sigma the sky's per-pixel noise (electrons)
    """

    name: str
    scale: int
    truth: np.ndarray
    stars: np.ndarray
    observed: np.ndarray
    y: np.ndarray
    x: np.ndarray
    flux: np.ndarray
    snr: np.ndarray
    saturated: np.ndarray
    fwhm: float
    sky_sigma: float
    full_well: float


def flux_for_snr(snr, n_pixels, background_variance):
    """Total electrons a star needs for `snr` in an aperture of n_pixels with the given per-pixel
    background variance (electrons^2): snr = F / sqrt(F + n_pixels * variance), solved for F."""
    snr = np.asarray(snr, dtype=np.float64)
    b = n_pixels * background_variance
    return 0.5 * (snr ** 2 + np.sqrt(snr ** 4 + 4.0 * snr ** 2 * b))


def star_positions(size, n, rng, layout, margin):
    """(y, x) of n stars in low-resolution pixel coordinates in a size x size field: "grid" places
    them on a jittered square grid (isolated stars), "random" uniformly (crowding and blends)."""
    if layout == "random":
        return rng.uniform(margin, size - 1 - margin, n), rng.uniform(margin, size - 1 - margin, n)
    if layout != "grid":
        raise ValueError(f"layout must be 'grid' or 'random', got {layout!r}")
    side = int(np.ceil(np.sqrt(n)))
    step = (size - 2 * margin) / side
    cells = rng.permutation(side * side)[:n]
    jitter = rng.uniform(-0.2, 0.2, (2, n)) * step
    y = margin + (cells // side + 0.5) * step + jitter[0]
    x = margin + (cells % side + 0.5) * step + jitter[1]
    return y, x


def star_field(name="field", size=96, scale=2, seed=0, *, psf="moffat", fwhm=2.5, beta=2.5,
               n_stars=36, layout="grid", snr_levels=SNR_LEVELS, sky=100.0, read_noise=5.0,
               nebula=0.0, n_saturated=0) -> StarField:
    """A size x size low-resolution star field and its scale x finer truth, fixed by `seed`.

    Stars take the S/N levels in turn (snr_levels) at sub-pixel positions; fwhm is in
    low-resolution pixels. nebula: peak of a smooth nebular background (diffuse_field) in units of
    the sky level. n_saturated: extra stars 30x brighter than the brightest level; the full well is
    twice the brightest pixel the other stars and the background reach, so exactly those saturate.
    """
    rng = np.random.default_rng(seed)
    s = scale
    margin = 2.0 * fwhm + 2.0
    y_lr, x_lr = star_positions(size, n_stars + n_saturated, rng, layout, margin)
    snr = np.resize(np.asarray(snr_levels, dtype=np.float64), n_stars)
    rng.shuffle(snr)
    snr = np.concatenate([snr, np.full(n_saturated, np.nan)])
    flux = flux_for_snr(snr, np.pi * fwhm ** 2, sky + read_noise ** 2)
    flux[n_stars:] = 30.0 * flux_for_snr(max(snr_levels), np.pi * fwhm ** 2, sky + read_noise ** 2)
    y, x = s * y_lr + (s - 1) / 2.0, s * x_lr + (s - 1) / 2.0
    radius = int(np.ceil((8.0 if psf == "moffat" else 3.0) * fwhm * s))

    def render(which):  # surface units: a star's high-res pixels sum to flux * s^2, its block means to flux
        return render_point_sources(s * size, s * size, y[which], x[which], flux[which, None] * s * s,
                                    fwhm * s, psf, beta, radius)[:, :, 0]

    unsaturated = render(slice(0, n_stars))
    stars = unsaturated + render(slice(n_stars, None))
    background = np.full_like(stars, sky)
    if nebula > 0:
        background += nebula * sky * diffuse_field(s * size, s * size, rng, slope=4.0)
    truth = stars + background
    expected = truth.reshape(size, s, size, s).mean(axis=(1, 3))
    observed = rng.poisson(expected).astype(np.float64) + rng.normal(0.0, read_noise, expected.shape)
    full_well = 2.0 * (unsaturated.reshape(size, s, size, s).mean(axis=(1, 3)).max() + background.max())
    observed = np.minimum(observed, full_well)
    iy, ix = np.clip(np.round(y_lr).astype(int), 0, size - 1), np.clip(np.round(x_lr).astype(int), 0, size - 1)
    saturated = observed[iy, ix] >= full_well
    return StarField(name, s, truth, stars, observed, y, x, flux, snr, saturated, float(fwhm),
                     float(np.sqrt(sky + read_noise ** 2)), float(full_well))


def standard_star_fields(scale=2, size=96, seed=0) -> list:
    """The evaluation suite: FWHM 1.5 to 4 low-resolution pixels, Gaussian and Moffat PSFs,
    S/N 5 to 1000, sparse and crowded, saturated stars on a smooth nebula."""
    return [
        star_field("sparse gaussian fwhm 1.5", size, scale, seed, psf="gaussian", fwhm=1.5),
        star_field("sparse moffat fwhm 2.5", size, scale, seed + 1, psf="moffat", fwhm=2.5),
        star_field("sparse gaussian fwhm 4", size, scale, seed + 2, psf="gaussian", fwhm=4.0, n_stars=25),
        star_field("crowded moffat fwhm 2", size, scale, seed + 3, psf="moffat", fwhm=2.0,
                   n_stars=size * size // 60, layout="random"),
        star_field("saturated on nebula, moffat fwhm 2.5", size, scale, seed + 4, psf="moffat",
                   fwhm=2.5, n_stars=30, nebula=20.0, n_saturated=4),
    ]
