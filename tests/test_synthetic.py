"""srcnn_np.eval.synthetic: determinism, star counts and flux law, PSF, Sersic profile, noise."""
import numpy as np
import pytest

from srcnn_np.eval import synthetic as syn


def test_deterministic_by_seed():
    a = syn.synthetic_sky(64, 80, seed=7)
    b = syn.synthetic_sky(64, 80, seed=7)
    c = syn.synthetic_sky(64, 80, seed=8)
    assert a.shape == (64, 80, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.1
    assert a.min() >= 0.0 and a.max() <= 1.0


def test_star_count_is_poisson_in_the_density():
    h = w = 256
    density = 1 / 100
    counts = [len(syn.synthetic_sky(h, w, seed=s, star_density=density, return_catalog=True)[1].flux)
              for s in range(5)]
    mean = density * h * w
    for n in counts:
        assert abs(n - mean) < 5 * np.sqrt(mean), (n, mean)


@pytest.mark.parametrize("index", [1.0, 1.5, 2.5])
def test_flux_follows_the_power_law(index):
    rng = np.random.default_rng(0)
    cat = syn.star_catalog(512, 512, rng, 4000, flux_min=0.05, flux_index=index)
    assert cat.flux.min() >= 0.05
    mle = len(cat.flux) / np.sum(np.log(cat.flux / 0.05))  # Pareto index estimate
    sigma = index / np.sqrt(len(cat.flux))
    assert abs(mle - index) < 5 * sigma, (mle, index, sigma)


def test_moffat_star_has_its_flux_and_fwhm():
    cat = syn.StarCatalog(np.array([20.0]), np.array([20.0]), np.array([3.0]), np.ones((1, 3)))
    img = syn.render_stars(41, 41, cat, fwhm=4.0, beta=3.0, radius=12)
    np.testing.assert_allclose(img[:, :, 0].sum(), 3.0, rtol=1e-9)
    row = img[20, :, 0]
    half = row[20] / 2
    # the profile crosses half maximum between two pixels right of the centre: interpolate
    k = np.argmax(row[20:] < half) + 20
    crossing = (k - 1) + (row[k - 1] - half) / (row[k - 1] - row[k]) - 20
    assert abs(2 * crossing - 4.0) < 0.25, crossing


def test_stars_cut_at_the_border_do_not_crash_or_leak():
    cat = syn.StarCatalog(np.array([-3.0, 30.5]), np.array([2.0, 31.7]), np.array([1.0, 1.0]), np.ones((2, 3)))
    img = syn.render_stars(32, 32, cat)
    assert img.shape == (32, 32, 3) and np.isfinite(img).all()
    assert 0 < img[:, :, 0].sum() < 2.0


def test_sersic_profile_at_effective_radius():
    n, r_eff = 2.0, 6.0
    g = syn.sersic(41, 41, 20, 20, r_eff=r_eff, n=n, ellipticity=0.0, angle=0.0, peak=1.0)
    b_n = 2 * n - 1 / 3 + 0.009876 / n
    np.testing.assert_allclose(g[20, 26], np.exp(-b_n), rtol=1e-9)
    assert g[20, 20] == g.max()


def test_blank_sky_noise_is_poisson_plus_read_noise():
    sky, gain, read = 0.05, 500.0, 0.004
    img = syn.synthetic_sky(256, 256, seed=3, star_density=0, n_galaxies=0, diffuse=0, sky=sky, gain=gain,
                            read_noise=read, stretch=False)[:, :, 0].astype(np.float64)
    expected_var = sky / gain + read ** 2
    n = img.size
    assert abs(img.mean() - sky) < 5 * np.sqrt(expected_var / n), img.mean()
    assert abs(img.var() / expected_var - 1) < 5 * np.sqrt(2 / n), (img.var(), expected_var)


def test_stretch_brightens_faint_structure_monotonically():
    x = np.linspace(0, 1, 101)
    y = syn.asinh_stretch(x)
    assert y[0] == 0 and abs(y[-1] - 1) < 1e-12
    assert np.all(np.diff(y) > 0)
    assert y[1] > 4 * x[1], (x[1], y[1])  # faint signal lifted
