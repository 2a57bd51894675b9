"""`python -m srcnn_np evaluate --stars`: what upscaling does to photometry and astrometry.

Protocol, per field (srcnn_np.eval.synthetic.StarField, or a real image made into one by real_field):

    truth     (s*H, s*W) float64 noiseless high-resolution image
    observed  (H, W) float64 low-resolution data: the s x s block mean of the truth (flux
              conserving: every low-resolution pixel holds the mean surface brightness of its block),
              plus Poisson and read noise (synthetic fields)
    variants  observed -> (s*H, s*W) by each method (bicubic, Lanczos-3, SRCNN general and astro),
              each through srcnn_np.science.upscale_science with and without conserve_flux, with the
              linear and the asinh stretch, exactly as `srcnn-np upscale x.fits` runs them; plus
              "native": the observed image measured as it is, the baseline every method is judged by

photutils measures each variant at the true star positions with the same aperture (radius
APERTURE_FWHM x FWHM, local background: sigma-clipped median of an annulus) as it measures the
noiseless truth, so a perfect method with no noise scores exactly 1 and 0:

    flux ratio       aperture flux / the truth's aperture flux (median, robust scatter per S/N)
    centroid error   first-moment centroid minus the truth's, in low-resolution pixels
    FWHM ratio       photutils' moment FWHM / the truth's, stars of S/N >= 100
    false            DAOStarFinder detections (5 sigma) farther than MATCH_FWHM x FWHM from every star
    lost             stars DAOStarFinder finds in the native image but not in the variant
    noise            residual (variant - truth) standard deviation on star-free sky, over the
                     native image's; its correlation between pixels one low-resolution pixel apart;
                     its median (sky bias); its standard deviation over the outer EDGE pixels (edge)

photutils (and astropy) are an optional extra: pip install "srcnn_np[science]".
"""
import sys
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..model import Upscaler, bicubic
from ..options import STRETCHES
from ..science import block_mean, block_repeat, upscale_science
from .synthetic import SNR_LEVELS, StarField, standard_star_fields

PHOTUTILS_HINT = 'evaluate --stars needs photutils: pip install "srcnn_np[science]"'
APERTURE_FWHM = 1.5  # aperture radius in FWHM
FWHM_APERTURE_FWHM = 2.5  # the FWHM is measured within this radius (in FWHM)
MIN_SKY_PIXELS = 100  # fewer sky pixels (a crowded field): no noise figures for that field
ANNULUS_FWHM = (2.5, 3.5)  # local background annulus radii in FWHM
MATCH_FWHM = 1.0  # a detection within this many FWHM (at least 1 low-res pixel) of a star is that star
DETECT_SIGMA = 5.0
SKY_MARGIN = 4  # low-res pixels between a star (or the image edge) and the sky pixels measured
EDGE = 2  # edge_noise: residual sigma over the outer EDGE low-res pixels, stars and all


def require_photutils():
    """Import photutils' pieces lazily; ImportError with the install hint when missing."""
    try:
        from astropy.stats import SigmaClip
        from photutils.aperture import ApertureStats, CircularAnnulus, CircularAperture
        from photutils.background import Background2D
        from photutils.detection import DAOStarFinder
    except ImportError as e:
        raise ImportError(PHOTUTILS_HINT) from e
    return SigmaClip, ApertureStats, CircularAnnulus, CircularAperture, Background2D, DAOStarFinder


def lanczos(plane: np.ndarray, scale: int) -> np.ndarray:
    """(H, W) float32 -> (sH, sW) float32, Lanczos-3 (Pillow, pixel centres aligned as bicubic)."""
    h, w = plane.shape
    img = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32))
    return np.asarray(img.resize((w * scale, h * scale), Image.Resampling.LANCZOS), dtype=np.float32)


def methods(scale: int, weights=None) -> dict:
    """name -> upscaler ((H, W) float32 in [0, 1] -> (sH, sW) float32): the interpolators
    unclipped, as scipy or reproject give them; SRCNN exactly as `srcnn-np upscale` runs it
    (clipped to [0, 1]). weights: an extra weights file, evaluated as "srcnn-custom"."""
    upscalers = {"bicubic": lambda p: bicubic(p, scale), "lanczos": lambda p: lanczos(p, scale)}
    nets = {"srcnn-general": Upscaler.load(scale=scale, model="general"),
            "srcnn-astro": Upscaler.load(scale=scale, model="astro")}
    if weights is not None:
        nets["srcnn-custom"] = Upscaler.load(weights, scale=scale)
    for name, upscaler in nets.items():
        upscalers[name] = upscaler
    return upscalers


def variant_name(method: str, conserve_flux: bool, stretch: str) -> str:
    return method + (" +flux" if conserve_flux else "") + (" asinh" if stretch == "asinh" else "")


@dataclass(frozen=True)
class Photometry:
    """photutils aperture measurements of n sources: flux (n,), y, x (n,) moment centroids and
    fwhm (n,), all in high-resolution pixel units (flux in the image's units x low-res pixel area)."""

    flux: np.ndarray
    y: np.ndarray
    x: np.ndarray
    fwhm: np.ndarray


class Meter:
    """photutils measurements with one fixed protocol (the module docstring's)."""

    def __init__(self):
        (self.SigmaClip, self.ApertureStats, self.CircularAnnulus, self.CircularAperture,
         self.Background2D, self.DAOStarFinder) = require_photutils()

    def photometry(self, image, y, x, fwhm, pixel_area) -> Photometry:
        """Aperture photometry of (H, W) `image` at pixel positions (y, x) for a PSF of `fwhm`
        pixels; pixel_area: one pixel's area in low-resolution pixels (1 / s^2 when upscaled).
        Flux and centroid in a radius APERTURE_FWHM x fwhm aperture, FWHM (second moments) in
        one FWHM_APERTURE_FWHM x wider, so the wings count."""
        if len(x) == 0:
            return Photometry(*(np.empty(0),) * 4)
        xy = np.column_stack([x, y])
        annulus = self.CircularAnnulus(xy, ANNULUS_FWHM[0] * fwhm, ANNULUS_FWHM[1] * fwhm)
        local = self.ApertureStats(image, annulus, sigma_clip=self.SigmaClip(sigma=3.0)).median
        stats = self.ApertureStats(image, self.CircularAperture(xy, APERTURE_FWHM * fwhm), local_bkg=local)
        wide = self.ApertureStats(image, self.CircularAperture(xy, FWHM_APERTURE_FWHM * fwhm), local_bkg=local)
        return Photometry(np.asarray(stats.sum) * pixel_area, np.asarray(stats.y_centroid),
                          np.asarray(stats.x_centroid), np.asarray(getattr(wide.fwhm, "value", wide.fwhm)))

    def background(self, image, fwhm):
        """photutils Background2D of (H, W) `image` in boxes of ~8 FWHM (at least 3 a side)."""
        box = int(max(8, min(8 * fwhm, min(image.shape) // 3)))
        return self.Background2D(image, box, exclude_percentile=50.0)  # crowded fields clip many pixels

    def detect(self, image, fwhm) -> tuple:
        """DAOStarFinder at DETECT_SIGMA x the background RMS: (y, x) (k,) arrays of detections."""
        bkg = self.background(image, fwhm)
        finder = self.DAOStarFinder(DETECT_SIGMA * bkg.background_rms_median, fwhm)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "no sources found" is a result, not a problem
            found = finder(image - bkg.background)
        if found is None:
            return np.empty(0), np.empty(0)
        return np.asarray(found["y_centroid"]), np.asarray(found["x_centroid"])


def matched(det_y, det_x, y, x, radius) -> tuple:
    """(star has a detection within radius (n,) bool, detection is within radius of a star (k,) bool)."""
    if len(det_y) == 0 or len(y) == 0:
        return np.zeros(len(y), bool), np.zeros(len(det_y), bool)
    d2 = (det_y[:, None] - y[None, :]) ** 2 + (det_x[:, None] - x[None, :]) ** 2
    close = d2 <= radius ** 2
    return close.any(axis=0), close.any(axis=1)


def lag_correlation(residual, sky, lag) -> float:
    """Mean correlation of (H, W) `residual` with itself shifted by `lag` pixels along y and x,
    over pixel pairs that are both sky; NaN when fewer than MIN_SKY_PIXELS pairs."""
    values = []
    for a, b, sa, sb in ((residual[:, :-lag], residual[:, lag:], sky[:, :-lag], sky[:, lag:]),
                         (residual[:-lag], residual[lag:], sky[:-lag], sky[lag:])):
        keep = sa & sb
        if keep.sum() < MIN_SKY_PIXELS:
            return float("nan")
        values.append(np.corrcoef(a[keep], b[keep])[0, 1])
    return float(np.mean(values))


def sky_pixels(stars: np.ndarray, sky_sigma: float) -> np.ndarray:
    """(H, W) star light -> (H, W) bool: pixels at least SKY_MARGIN pixels from the image edge
    and from any pixel where the stars reach 0.05 sky sigma (beyond every method's reach:
    bicubic sees 2 pixels, Lanczos 3, SRCNN about 4 at x2)."""
    from scipy.ndimage import binary_dilation  # photutils depends on scipy

    sky = ~binary_dilation(stars >= 0.05 * sky_sigma, iterations=SKY_MARGIN)
    sky[:SKY_MARGIN] = sky[-SKY_MARGIN:] = sky[:, :SKY_MARGIN] = sky[:, -SKY_MARGIN:] = False
    return sky


def edge_pixels(shape: tuple, width: int) -> np.ndarray:
    """(H, W) bool: the outer `width` pixels of the image."""
    edge = np.ones(shape, bool)
    edge[width:-width, width:-width] = False
    return edge


def evaluate_field(field: StarField, upscalers: dict, meter: Meter, *, conserve=(False, True),
                   stretches=STRETCHES) -> dict:
    """Every variant of one field -> {variant name: per-star arrays and per-field counts}.

    Per star: flux_ratio, dy, dx (low-res pixels), fwhm_ratio, snr; per field: false, lost, found,
    noise_ratio, noise_corr, sky_bias and edge_noise (NaN for a real image: its noise is unknown).
    """
    s, fwhm = field.scale, field.fwhm
    ref = meter.photometry(field.truth, field.y, field.x, fwhm * s, 1.0 / s ** 2)
    native_residual = field.observed - block_mean(field.truth, s)  # the noise itself
    if np.isfinite(field.sky_sigma):  # (H, W) bool, sky pixels of a synthetic field
        off_stars = sky_pixels(block_mean(field.stars, s), field.sky_sigma)
    else:
        off_stars = np.zeros(field.observed.shape, bool)
    has_sky = off_stars.sum() >= MIN_SKY_PIXELS
    native_sigma = native_residual[off_stars].std() if has_sky else np.nan
    radius = max(MATCH_FWHM * fwhm, 1.0) * s
    usable = ~field.saturated

    def score(phot, det_y, det_x, residual, sky, lag):
        found, real = matched(det_y, det_x, field.y, field.x, radius)
        edge = edge_pixels(residual.shape, EDGE * lag)
        return {"flux_ratio": (phot.flux / ref.flux)[usable], "dy": ((phot.y - ref.y) / s)[usable],
                "dx": ((phot.x - ref.x) / s)[usable], "fwhm_ratio": (phot.fwhm / ref.fwhm)[usable],
                "snr": field.snr[usable], "found": found, "false": int((~real).sum()),
                "noise_ratio": float(residual[sky].std() / native_sigma) if has_sky else np.nan,
                "sky_bias": float(np.median(residual[sky]) / native_sigma) if has_sky else np.nan,
                "noise_corr": lag_correlation(residual, sky, lag) if has_sky else np.nan,
                "edge_noise": float(residual[edge].std() / native_sigma) if has_sky else np.nan}

    # native: measured on the low-resolution pixels, converted to high-resolution coordinates
    lr_y, lr_x = (field.y - (s - 1) / 2) / s, (field.x - (s - 1) / 2) / s
    p = meter.photometry(field.observed, lr_y, lr_x, fwhm, 1.0)
    native_phot = Photometry(p.flux, s * p.y + (s - 1) / 2, s * p.x + (s - 1) / 2, p.fwhm * s)
    det_y, det_x = meter.detect(field.observed, fwhm)
    rows = {"native": score(native_phot, s * det_y + (s - 1) / 2, s * det_x + (s - 1) / 2,
                            native_residual, off_stars, 1)}
    native_found = rows["native"]["found"]
    hr_sky = block_repeat(off_stars, s)
    for method, fn in upscalers.items():
        for flux in conserve:
            for stretch in stretches:
                image = upscale_science(field.observed, fn, s, conserve_flux=flux, stretch=stretch)
                phot = meter.photometry(image, field.y, field.x, fwhm * s, 1.0 / s ** 2)
                rows[variant_name(method, flux, stretch)] = score(
                    phot, *meter.detect(image, fwhm * s), image - field.truth, hr_sky, s)
    for row in rows.values():
        row["lost"] = int((native_found & ~row["found"]).sum())
    return rows


def real_field(name: str, image: np.ndarray, scale: int, meter: Meter, fwhm: float = 2.0) -> StarField:
    """A real (H, W) float image as a StarField: the image (cropped to multiples of `scale`) is the
    truth, its block mean the observed data, DAOStarFinder's detections on the truth the stars.

    The truth's own noise stays in it (nothing is added); S/N is estimated per source from the
    observed image's background RMS; `fwhm` (low-res pixels) sets the apertures and the finder.
    """
    s = scale
    truth = np.asarray(image, dtype=np.float64)[: image.shape[0] // s * s, : image.shape[1] // s * s]
    observed = block_mean(truth, s)
    y, x = meter.detect(truth, fwhm * s)
    sigma = float(meter.background(observed, fwhm).background_rms_median)
    flux = meter.photometry(truth, y, x, fwhm * s, 1.0 / s ** 2).flux
    snr = flux / (sigma * np.sqrt(np.pi * fwhm ** 2))
    keep = np.isfinite(flux) & (flux > 0)
    return StarField(name, s, truth, np.zeros_like(truth), observed, y[keep], x[keep], flux[keep],
                     snr[keep], np.zeros(int(keep.sum()), bool), float(fwhm), np.nan, np.inf)


def snr_bin(snr: np.ndarray) -> np.ndarray:
    """Index of the nearest SNR_LEVELS value (in log S/N) for each S/N; -1 for NaN."""
    levels = np.log(np.asarray(SNR_LEVELS))
    out = np.abs(np.log(np.where(np.isfinite(snr) & (snr > 0), snr, 1.0))[:, None] - levels).argmin(axis=1)
    return np.where(np.isfinite(snr) & (snr > 0), out, -1)


def robust_sigma(a: np.ndarray) -> float:
    """1.4826 x the median absolute deviation: the standard deviation of a normal sample."""
    a = a[np.isfinite(a)]
    return float(1.4826 * np.median(np.abs(a - np.median(a)))) if a.size else float("nan")


def nanmean(values) -> float:
    """Mean of the finite values; NaN when there are none (no field had sky to measure)."""
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def summarise(fields: list) -> dict:
    """[evaluate_field result per field] -> {variant: summary}, pooling stars over the fields.

    summary: by_snr {level: {n, flux_median, flux_scatter, centroid_bias, centroid_scatter}},
    fwhm_ratio (median, S/N >= 100), false and lost per field, noise_ratio, noise_corr and
    sky_bias (median sky residual in native sigmas), edge_noise (residual sigma over the outer
    EDGE low-res pixels, in native sigmas), means over the fields.
    centroid_bias: the larger of |median dy| and |median dx|; centroid_scatter: robust sigma of
    dy and dx pooled; both in low-resolution pixels.
    """
    out = {}
    for variant in fields[0]:
        rows = [f[variant] for f in fields]
        cat = {k: np.concatenate([r[k] for r in rows]) for k in ("flux_ratio", "dy", "dx", "fwhm_ratio", "snr")}
        bins = snr_bin(cat["snr"])
        by_snr = {}
        for i, level in enumerate(SNR_LEVELS):
            sel = bins == i
            if not sel.any():
                continue
            fr, dy, dx = cat["flux_ratio"][sel], cat["dy"][sel], cat["dx"][sel]
            by_snr[f"{level:g}"] = {
                "n": int(sel.sum()), "flux_median": float(np.nanmedian(fr)), "flux_scatter": robust_sigma(fr),
                "centroid_bias": float(max(abs(np.nanmedian(dy)), abs(np.nanmedian(dx)))),
                "centroid_scatter": robust_sigma(np.concatenate([dy, dx]))}
        bright = cat["snr"] >= 100
        out[variant] = {
            "by_snr": by_snr,
            "fwhm_ratio": float(np.nanmedian(cat["fwhm_ratio"][bright])) if bright.any() else float("nan"),
            "false_per_field": float(np.mean([r["false"] for r in rows])),
            "lost_per_field": float(np.mean([r["lost"] for r in rows])),
            "noise_ratio": nanmean([r["noise_ratio"] for r in rows]),
            "noise_corr": nanmean([r["noise_corr"] for r in rows]),
            "sky_bias": nanmean([r["sky_bias"] for r in rows]),
            "edge_noise": nanmean([r["edge_noise"] for r in rows]),
        }
    return out


def run_suite(scale: int = 2, *, size: int = 96, seed: int = 0, real_images=(), weights=None,
              conserve=(False, True), stretches=STRETCHES, log=None) -> dict:
    """The whole evaluation: {'synthetic': summary, 'real': summary or None, 'fields': names}.

    real_images: [(name, (H, W) float image)], e.g. the Y channel of press images.
    """
    meter = Meter()
    upscalers = methods(scale, weights)
    results = {"scale": scale, "fields": [], "real_fields": []}
    synthetic = []
    for field in standard_star_fields(scale, size, seed):
        if log:
            log(f"field {field.name} ({len(field.flux)} stars)")
        synthetic.append(evaluate_field(field, upscalers, meter, conserve=conserve, stretches=stretches))
        results["fields"].append(field.name)
    results["synthetic"] = summarise(synthetic)
    real = []
    for name, image in real_images:
        if log:
            log(f"image {name}")
        field = real_field(name, image, scale, meter)
        if len(field.flux):
            real.append(evaluate_field(field, upscalers, meter, conserve=conserve, stretches=stretches))
            results["real_fields"].append(name)
    results["real"] = summarise(real) if real else None
    return results


TABLE_LEVELS = ("10", "100", "1000")


def format_summary(summary: dict, title: str) -> str:
    """A text table: per variant, flux ratio median +- scatter and centroid bias / scatter at S/N
    10, 100, 1000, FWHM ratio, false and lost detections per field, noise ratio and correlation."""
    head = (f"{'variant':<28}" + "".join(f"{'flux S/N ' + l:>17}" for l in TABLE_LEVELS)
            + "".join(f"{'centroid ' + l:>15}" for l in TABLE_LEVELS)
            + f"{'FWHM':>6}{'false':>7}{'lost':>6}{'noise':>7}{'corr':>6}{'sky':>7}{'edge':>7}")
    lines = [title, head]
    for variant, s in summary.items():
        cells = []
        for l in TABLE_LEVELS:
            b = s["by_snr"].get(l)
            cells.append(f"{b['flux_median']:>9.3f} ±{b['flux_scatter']:.3f}" if b else f"{'-':>17}")
        for l in TABLE_LEVELS:
            b = s["by_snr"].get(l)
            cells.append(f"{b['centroid_bias']:>7.3f}/{b['centroid_scatter']:.3f}" if b else f"{'-':>15}")
        lines.append(f"{variant:<28}" + "".join(cells) + f"{s['fwhm_ratio']:6.2f}{s['false_per_field']:7.1f}"
                     f"{s['lost_per_field']:6.1f}{s['noise_ratio']:7.2f}{s['noise_corr']:6.2f}{s['sky_bias']:+7.2f}{s['edge_noise']:7.1f}")
    return "\n".join(lines)


def format_results(results: dict) -> str:
    s = results["scale"]
    parts = [format_summary(results["synthetic"],
                            f"x{s} synthetic star fields ({len(results['fields'])}): flux ratio median ±scatter; "
                            "centroid bias/scatter (low-res px); FWHM ratio (S/N>=100); false and lost "
                            "detections per field; sky noise sigma vs native; its correlation at 1 low-res px; "
                            "sky bias in native sigmas; residual sigma on the outer 2 low-res px (native sigmas)")]
    if results["real"]:
        parts.append(format_summary(results["real"], f"x{s} real images ({len(results['real_fields'])}), "
                                    "stars = detections on the original; S/N estimated"))
    return "\n\n".join(parts)


def log_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
