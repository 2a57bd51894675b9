"""The before/after viewer (issue 14): what the HTML file embeds, the CLI's bad inputs, and the page
itself in headless Chromium (slider, stretch, zoom to single pixels), checked on screenshots."""
import base64
import io
import json
import math
import re
import zlib

import numpy as np
import pytest
from PIL import Image

from srcnn_np.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from srcnn_np.io.imageio import quantize

from . import naive
from .chromium import Chromium, find_chromium
from .conftest import sky

DTYPES = {"u8": "<u1", "u16": "<u2", "f32": "<f4"}


def run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def page_data(html_path) -> dict:
    """The JSON a viewer page embeds, with "bicubic" and "upscaled" decoded to (H, W[, C]) arrays."""
    text = open(html_path, encoding="utf-8").read()
    data = json.loads(re.search(r'<script id="viewer-data" type="application/json">(.*?)</script>', text, re.S)[1])
    shape = (data["height"], data["width"]) + ((data["channels"],) if data["channels"] > 1 else ())
    for key in ("bicubic", "upscaled"):
        raw = zlib.decompress(base64.b64decode(data[key]))
        data[key] = np.frombuffer(raw, dtype=DTYPES[data["dtype"]]).reshape(shape)
    return data


def naive_bicubic_u8(lowres: np.ndarray, scale: int) -> np.ndarray:
    """(h, w[, C]) uint8 -> (sh, sw[, C]) uint8 through the slow bicubic oracle, quantised as written."""
    planes = lowres[:, :, None] if lowres.ndim == 2 else lowres
    up = np.stack([naive.bicubic(planes[:, :, c].astype(np.float32) / 255, scale) for c in range(planes.shape[2])], 2)
    return quantize(up[:, :, 0] if lowres.ndim == 2 else up, 8)


def save_png(path, pixels):
    Image.fromarray(pixels).save(path)
    return str(path)


# ---------------------------------------------------------------------------------------------
# What the file holds


def test_page_embeds_both_images_losslessly(tmp_path, capsys):
    lowres = sky(9, 7, 3, seed=1)
    upscaled = sky(27, 21, 3, seed=2)  # any image of 3x the size stands in for an SRCNN result
    lr, up = save_png(tmp_path / "lr.png", lowres), save_png(tmp_path / "up.png", upscaled)
    code, out, _ = run(["compare", lr, up, "-o", str(tmp_path / "view.html")], capsys)
    assert code == EXIT_OK and "view.html (21x27)" in out
    data = page_data(tmp_path / "view.html")
    assert (data["scale"], data["dtype"], data["channels"]) == (3, "u8", 3)
    np.testing.assert_array_equal(data["upscaled"], upscaled)
    want = naive_bicubic_u8(lowres, 3)
    diff = np.abs(data["bicubic"].astype(int) - want)
    assert diff.max() <= 1, f"bicubic off the oracle by up to {diff.max()} codes"  # float32 vs float64 rounding
    assert data["intervals"]["full"] == [0, 255]


def test_page_is_self_contained(tmp_path, capsys):
    lr, up = save_png(tmp_path / "lr.png", sky(8, 8)), save_png(tmp_path / "up.png", sky(16, 16))
    assert run(["compare", lr, up, "-o", str(tmp_path / "view.html")], capsys)[0] == EXIT_OK
    text = (tmp_path / "view.html").read_text()
    found = re.findall(r"https?:|//[a-z0-9.-]+\.[a-z]{2,}/|\b(?:src|href)\s*=|@import|url\(", text, re.I)
    assert found == [], f"references outside the file: {found}"


def test_fits_embeds_float_data_and_bicubic_of_filled_blanks(tmp_path, capsys):
    from astropy.io import fits

    rng = np.random.default_rng(3)
    lowres = rng.normal(100, 5, (10, 12)).astype(np.float32)
    lowres[4:6, 5:7] += 3e4  # a bright star: high dynamic range
    lowres[1, 1] = np.nan
    upscaled = rng.normal(100, 5, (20, 24)).astype(np.float32) * 1e3
    upscaled[2:4, 2:4] = np.nan
    fits.writeto(tmp_path / "lr.fits", lowres)
    header = fits.Header()
    header["SRCFLUXU"] = "total"  # the provenance keyword srcnn_np writes (model.Upscaler.provenance)
    fits.writeto(tmp_path / "up.fits", upscaled, header)
    assert run(["compare", str(tmp_path / "lr.fits"), str(tmp_path / "up.fits"), "-o", str(tmp_path / "v.html")],
               capsys)[0] == EXIT_OK
    data = page_data(tmp_path / "v.html")
    assert data["dtype"] == "f32" and data["default"] == {"stretch": "asinh", "clip": "99.5"}
    assert data["fits_rows"]  # FITS rows travel bottom row first: drawn as ds9 draws them
    data["bicubic"], data["upscaled"] = data["bicubic"][::-1], data["upscaled"][::-1]
    np.testing.assert_array_equal(data["upscaled"], upscaled)  # NaN where NaN
    filled = lowres.astype(np.float64)
    filled[1, 1] = np.mean([lowres[y, x] for y in (0, 1, 2) for x in (0, 1, 2) if (y, x) != (1, 1)])
    want = naive.bicubic(filled, 2) / 4  # SRCFLUXU says flux units total: blocks sum to their input pixel
    want[2:4, 2:4] = np.nan  # the blank input pixel's block
    np.testing.assert_allclose(data["bicubic"], want, rtol=1e-5, atol=1e-3)
    finite = np.concatenate([want[np.isfinite(want)], upscaled[np.isfinite(upscaled)]])
    np.testing.assert_allclose(data["intervals"]["99"], np.percentile(finite, [0.5, 99.5]), rtol=1e-4)


def test_upscale_compare_writes_a_viewer_per_output(tmp_path, weights_file, capsys):
    (tmp_path / "in").mkdir()
    for name in ("a", "b"):
        save_png(tmp_path / "in" / f"{name}.png", sky(6, 5, 3, seed=ord(name)))
    code, out, _ = run(["upscale", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--weights", weights_file,
                        "--compare"], capsys)
    assert code == EXIT_OK and out.count("; viewer ") == 2
    for name in ("a", "b"):
        data = page_data(tmp_path / "out" / f"{name}_x2_compare.html")
        with Image.open(tmp_path / "out" / f"{name}_x2.png") as im:
            np.testing.assert_array_equal(data["upscaled"], np.asarray(im))
        assert data["names"] == {"lowres": f"{name}.png", "upscaled": f"{name}_x2.png"}


def test_upscale_compare_refuses_an_existing_viewer_before_upscaling(tmp_path, weights_file, capsys):
    lr = save_png(tmp_path / "a.png", sky(6, 5))
    (tmp_path / "a_x2_compare.html").write_text("mine")
    code, _, err = run(["upscale", lr, "-o", str(tmp_path / "a_x2.png"), "--weights", weights_file, "--compare"],
                       capsys)
    assert code == EXIT_FAILED and "a_x2_compare.html: exists" in err and len(err.splitlines()) == 1
    assert (tmp_path / "a_x2_compare.html").read_text() == "mine" and not (tmp_path / "a_x2.png").exists()


@pytest.mark.parametrize("case, message", [
    ("not_a_multiple", "is not an integer upscale of"),
    ("same_size", "is not an integer upscale of"),
    ("gray_vs_rgb", "RGB, but"),
    ("unreadable", "not a readable image"),
    ("missing", "no such file or directory"),
    ("fits_vs_png", "compare FITS with FITS"),
    ("too_large", "more than the viewer embeds (1000)"),
    ("exists", "exists (use --overwrite to replace it)"),
])
def test_bad_inputs_one_line_and_nothing_written(tmp_path, capsys, case, message):
    lr = save_png(tmp_path / "lr.png", sky(20, 20))
    up = save_png(tmp_path / "up.png", sky(40, 40))
    out = tmp_path / "view.html"
    extra = []
    if case == "not_a_multiple":
        up = save_png(tmp_path / "odd.png", sky(41, 40))
    elif case == "same_size":
        up = save_png(tmp_path / "same.png", sky(20, 20))
    elif case == "gray_vs_rgb":
        up = save_png(tmp_path / "rgb.png", sky(40, 40, 3))
    elif case == "unreadable":
        (tmp_path / "bad.png").write_bytes(b"not an image at all")
        up = str(tmp_path / "bad.png")
    elif case == "missing":
        up = str(tmp_path / "nope.png")
    elif case == "fits_vs_png":
        up = str(tmp_path / "up.fits")
    elif case == "too_large":
        extra = ["--max-pixels", "1000"]
    elif case == "exists":
        out.write_text("mine")
    code, _, err = run(["compare", lr, up, "-o", str(out), *extra], capsys)
    assert code == EXIT_FAILED and message in err and len(err.splitlines()) == 1, err
    assert (out.read_text() == "mine") if case == "exists" else not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_upscale_compare_refuses_zarr(tmp_path, weights_file, capsys):
    lr = save_png(tmp_path / "a.png", sky(6, 5))
    code, _, err = run(["upscale", lr, "-o", str(tmp_path / "a.zarr"), "--weights", weights_file, "--compare"], capsys)
    assert code == EXIT_USAGE and "--compare: no viewer for a .zarr" in err and not (tmp_path / "a.zarr").exists()


def test_output_must_be_html(tmp_path, capsys):
    lr, up = save_png(tmp_path / "lr.png", sky(8, 8)), save_png(tmp_path / "up.png", sky(16, 16))
    code, _, err = run(["compare", lr, up, "-o", str(tmp_path / "view.png")], capsys)
    assert code == EXIT_USAGE and "end its name with .html" in err and not (tmp_path / "view.png").exists()


# ---------------------------------------------------------------------------------------------
# The page in a real browser

WIDTH, HEIGHT = 800, 600
needs_chromium = pytest.mark.skipif(find_chromium() is None, reason="no chromium on PATH (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser():
    with Chromium() as b:
        yield b


class Page:
    """A viewer page open in the browser; screen pixels of image pixels at an integer zoom."""

    def __init__(self, browser, html_path, **state):
        self.browser = browser
        browser.open(f"file://{html_path}", WIDTH, HEIGHT)
        browser.evaluate("viewer.ready")
        self.set(**state)

    def set(self, **state):
        self.state = self.browser.evaluate(f"viewer.set({json.dumps(state)})")
        rect = self.browser.evaluate("JSON.parse(JSON.stringify(canvas.getBoundingClientRect()))")
        self.left, self.top, self.width, self.height = rect["left"], rect["top"], rect["width"], rect["height"]
        self.pixels = np.asarray(Image.open(io.BytesIO(self.browser.screenshot())).convert("RGB"))

    def corner(self, x: int, y: int) -> tuple[int, int]:
        """Screenshot (column, row) of the top left corner of drawn image pixel (x, y), zoom an integer."""
        z = self.state["zoom"]
        ox = math.floor(self.width / 2 - self.state["cx"] * z + 0.5)  # JavaScript's Math.round (half up,
        oy = math.floor(self.height / 2 - self.state["cy"] * z + 0.5)  # not Python's half to even)
        return int(self.left + ox + x * z), int(self.top + oy + y * z)

    def block(self, x: int, y: int) -> np.ndarray:
        """The (zoom, zoom, 3) screen block drawn image pixel (x, y) is drawn as."""
        (sx, sy), z = self.corner(x, y), self.state["zoom"]
        return self.pixels[sy:sy + z, sx:sx + z]

    def divider_x(self) -> float:
        return self.left + self.state["slider"] * self.width


def uniform_colour(block: np.ndarray, where: str) -> tuple:
    colours = np.unique(block.reshape(-1, 3), axis=0)
    assert len(colours) == 1, f"{where}: a block of {len(colours)} colours, e.g. {colours[:4].tolist()}"
    return tuple(int(v) for v in colours[0])


@needs_chromium
def test_slider_shows_bicubic_left_and_srcnn_right(tmp_path, capsys, browser):
    # LOWRES red only, UPSCALED blue only: every screen pixel says which image it shows, and its value
    lowres = np.zeros((8, 8, 3), np.uint8)
    lowres[:, :, 0] = sky(8, 8, seed=4) // 2 + 100
    upscaled = np.zeros((16, 16, 3), np.uint8)
    upscaled[:, :, 2] = sky(16, 16, seed=5) // 2 + 100
    lr, up = save_png(tmp_path / "lr.png", lowres), save_png(tmp_path / "up.png", upscaled)
    assert run(["compare", lr, up, "-o", str(tmp_path / "view.html")], capsys)[0] == EXIT_OK
    bicubic = naive_bicubic_u8(lowres, 2)
    page = Page(browser, tmp_path / "view.html", zoom=16, cx=8, cy=8, slider=0.5, stretch="linear", clip="full")
    for slider in (0.5, 0.45, 0.56):  # the divider at image column 8, 5.5, 11
        page.set(slider=slider)
        shown = {"bicubic": 0, "SRCNN": 0}
        for y in range(16):
            for x in range(16):
                block = page.block(x, y)
                left_edge = page.corner(x, y)[0]
                if abs(left_edge - page.divider_x()) < 20 or abs(left_edge + 16 - page.divider_x()) < 20:
                    continue  # the block the divider line crosses
                colour = uniform_colour(block, f"slider {slider}, pixel ({x}, {y})")
                if left_edge + 16 <= page.divider_x():
                    side, want = "bicubic", (int(bicubic[y, x, 0]), 0, 0)
                else:
                    side, want = "SRCNN", (0, 0, int(upscaled[y, x, 2]))
                assert colour == want, f"slider {slider}: pixel ({x}, {y}), {side} side, shows {colour}, want {want}"
                shown[side] += 1
        assert min(shown.values()) >= 16 * 3, f"slider {slider}: blocks checked per side {shown}"


@needs_chromium
def test_stretch_and_interval_change_displayed_values(tmp_path, browser):
    from astropy.io import fits

    from srcnn_np.viewer import write_viewer

    rng = np.random.default_rng(6)
    lowres = rng.uniform(0, 100, (8, 8)).astype(np.float32)
    upscaled = np.geomspace(1, 5000, 16 * 16, dtype=np.float32).reshape(16, 16) - 20  # mostly faint: asinh matters
    fits.writeto(tmp_path / "lr.fits", lowres)
    fits.writeto(tmp_path / "up.fits", upscaled)
    write_viewer(tmp_path / "lr.fits", tmp_path / "up.fits", tmp_path / "view.html")
    intervals = page_data(tmp_path / "view.html")["intervals"]
    page = Page(browser, tmp_path / "view.html", zoom=16, cx=8, cy=8, slider=0.0)  # SRCNN side only
    points = [(0, 0), (6, 10), (0, 12), (8, 13), (4, 14), (15, 15)]  # up the ramp, row by row
    seen = {}
    for stretch, clip, a in [("linear", "minmax", 0.1), ("asinh", "minmax", 0.1), ("asinh", "minmax", 0.01),
                             ("linear", "99", 0.1)]:
        page.set(stretch=stretch, clip=clip, soft=a)
        lo, hi = intervals[clip]
        for x, y in points:
            unit = (float(upscaled[y, x]) - lo) / (hi - lo)
            if stretch == "asinh":
                unit = np.arcsinh(unit / a) / np.arcsinh(1 / a)
            want = int(round(np.clip(unit, 0, 1) * 255))
            # FITS: row 0 drawn at the bottom
            colour = uniform_colour(page.block(x, 15 - y), f"{stretch} {clip} a={a} ({x}, {y})")
            assert colour[0] == colour[1] == colour[2] and abs(colour[0] - want) <= 1, \
                f"{stretch} {clip} a={a}: pixel ({x}, {y}) = {upscaled[y, x]} shown as {colour}, want {want}"
            seen[(stretch, clip, a, x, y)] = colour[0]
    x, y = 6, 10  # the mouse over a pixel: its FITS coordinates (1-based, y up) and both values
    left, top = page.corner(x, 15 - y)
    page.browser.call("Input.dispatchMouseEvent", session=True, type="mouseMoved", x=left + 8, y=top + 8)
    text = page.browser.evaluate("document.getElementById('readout').textContent")
    assert text.startswith(f"FITS x {x + 1}, y {y + 1}: bicubic "), text
    srcnn = float(re.search(r"\| SRCNN (\S+)", text)[1])
    assert abs(srcnn - upscaled[y, x]) <= 1e-4 * abs(upscaled[y, x]), f"readout {text!r}, pixel {upscaled[y, x]}"
    faint = [(x, y) for x, y in points if 0 < seen[("linear", "minmax", 0.1, x, y)] < 128]
    assert len(faint) >= 3, f"test image: faint points {faint}"
    for x, y in faint:  # asinh lifts the faint end, a smaller softening more, a percentile clip too
        assert seen[("asinh", "minmax", 0.1, x, y)] > seen[("linear", "minmax", 0.1, x, y)] + 5
        assert seen[("asinh", "minmax", 0.01, x, y)] > seen[("asinh", "minmax", 0.1, x, y)] + 5
        assert seen[("linear", "99", 0.1, x, y)] > seen[("linear", "minmax", 0.1, x, y)]


@needs_chromium
@pytest.mark.parametrize("dtype, bright, shown", [(np.uint8, 255, 255), (np.uint16, 128 * 257, 128)])
def test_zoom_draws_single_pixels_as_blocks(tmp_path, capsys, browser, dtype, bright, shown):
    checker = (np.indices((16, 16)).sum(axis=0) % 2 * bright).astype(dtype)  # one-pixel checkerboard
    lr, up = save_png(tmp_path / "lr.png", sky(8, 8, dtype=dtype)), save_png(tmp_path / "up.png", checker)
    assert run(["compare", lr, up, "-o", str(tmp_path / "view.html")], capsys)[0] == EXIT_OK
    assert page_data(tmp_path / "view.html")["dtype"] == {np.uint8: "u8", np.uint16: "u16"}[dtype]
    for zoom in (4, 12, 32):
        page = Page(browser, tmp_path / "view.html", zoom=zoom, cx=8, cy=8, slider=0.0)
        for y in range(3, 13) if zoom < 32 else range(6, 10):
            for x in range(3, 13) if zoom < 32 else range(4, 12):
                colour = uniform_colour(page.block(x, y), f"zoom {zoom}, pixel ({x}, {y})")
                want = (shown if checker[y, x] else 0,) * 3  # linear over the full range 0..2^bits - 1
                assert colour == want, f"zoom {zoom}: pixel ({x}, {y}) = {checker[y, x]} shown as {colour}, want {want}"


# ---------------------------------------------------------------------------------------------
# What the network added: the residual view, blink, and compare's summary of the residual

POSITIVE, NEGATIVE, BLANK = (255, 112, 32), (32, 144, 255), (96, 96, 96)  # viewer.html's diverging scale


def residual_colour(r: float, limit: float, stretch: str = "linear", a: float = 0.1) -> tuple:
    """The colour viewer.html draws residual r in: black at 0, towards POSITIVE or NEGATIVE."""
    if np.isnan(r):
        return BLANK
    t = abs(r) / limit
    if stretch == "asinh":
        t = np.arcsinh(t / a) / np.arcsinh(1 / a)
    t = min(1.0, t)
    return tuple(int(math.floor(c * t + 0.5)) for c in (POSITIVE if r >= 0 else NEGATIVE))  # Math.round


def known_difference(shape: tuple, seed: int) -> np.ndarray:
    """A residual image of signed steps, every sign and size present: values in {-40, -13, 0, 13, 40}
    (13 / 40 of each colour channel is no half-way case for rounding)."""
    return np.random.default_rng(seed).choice([-40, -13, 0, 13, 40], size=shape)


def gray_pair_with_difference(tmp_path) -> tuple[str, str, np.ndarray]:
    """LOWRES 8x8 gray and UPSCALED = bicubic(LOWRES) + a known difference (no clipping): paths and
    the difference (16, 16) in 8-bit codes."""
    lowres = (sky(8, 8, seed=7) // 4 + 90).astype(np.uint8)  # 90..153: room for +-40
    difference = known_difference((16, 16), seed=8)
    upscaled = (naive_bicubic_u8(lowres, 2).astype(int) + difference).astype(np.uint8)
    return save_png(tmp_path / "lr.png", lowres), save_png(tmp_path / "up.png", upscaled), difference


def test_compare_summary_reports_the_residual(tmp_path, capsys):
    lr, up, _ = gray_pair_with_difference(tmp_path)
    code, out, _ = run(["compare", lr, up, "-o", str(tmp_path / "view.html")], capsys)
    data = page_data(tmp_path / "view.html")
    residual = data["upscaled"].astype(float) - data["bicubic"]  # what the page shows: srcnn_np's bicubic
    rms = math.sqrt(np.mean(residual ** 2))
    match = re.search(r"SRCNN - bicubic: RMS ([\d.e+-]+), min ([\d.e+-]+), max ([\d.e+-]+) \(8-bit codes\)$", out.strip())
    assert code == EXIT_OK and match, out
    printed = [float(v) for v in match.groups()]
    want = [rms, residual.min(), residual.max()]
    assert np.allclose(printed, want, rtol=1e-3), f"printed {printed}, want {want}"
    assert want[1] <= -39 and want[2] >= 39  # the known steps of +-40, give or take the oracle's rounding
    assert data["residual_limits"]["maxabs"] == np.abs(residual).max() and data["units"] == "8-bit codes"
    np.testing.assert_allclose(data["residual_limits"]["99"], np.percentile(np.abs(residual), 99))


@needs_chromium
def test_residual_view_draws_signed_colours(tmp_path, capsys, browser):
    lr, up, _ = gray_pair_with_difference(tmp_path)
    assert run(["compare", lr, up, "-o", str(tmp_path / "view.html")], capsys)[0] == EXIT_OK
    data = page_data(tmp_path / "view.html")
    residual = data["upscaled"].astype(float) - data["bicubic"]
    page = Page(browser, tmp_path / "view.html", zoom=16, cx=8, cy=8, slider=0.5, mode="residual")
    for stretch, clip, a in [("linear", "maxabs", 0.1), ("asinh", "maxabs", 0.05), ("linear", "99", 0.1)]:
        page.set(rstretch=stretch, rclip=clip, rsoft=a)
        limit = data["residual_limits"][clip]
        signs = set()
        for y in range(16):
            for x in range(16):
                colour = uniform_colour(page.block(x, y), f"{stretch} {clip}: pixel ({x}, {y})")  # no divider line
                want = residual_colour(residual[y, x], limit, stretch, a)
                assert colour == want, f"{stretch} {clip} a={a}: residual {residual[y, x]} at ({x}, {y}) " \
                    f"drawn {colour}, want {want}"
                signs.add(int(np.sign(residual[y, x])))
        assert signs == {-1, 0, 1}
    y, x = np.argwhere(residual == residual.min())[0]  # the mouse over a negative residual: its value, in codes
    left, top = page.corner(x, y)
    page.browser.call("Input.dispatchMouseEvent", session=True, type="mouseMoved", x=left + 8, y=top + 8)
    text = page.browser.evaluate("document.getElementById('readout').textContent")
    assert text.endswith(f"SRCNN \u2212 bicubic {int(residual[y, x])} 8-bit codes"), text


@needs_chromium
def test_residual_view_of_fits_data_with_blanks(tmp_path, browser):
    from astropy.io import fits

    from srcnn_np.viewer import write_viewer

    lowres = np.random.default_rng(9).normal(1000, 50, (8, 8)).astype(np.float32)
    lowres[2, 3] = np.nan
    fits.writeto(tmp_path / "lr.fits", lowres)
    bicubic = page_data_bicubic(tmp_path, lowres)
    difference = known_difference((16, 16), seed=10).astype(np.float32) * 2.5  # physical units
    upscaled = bicubic + difference
    header = fits.Header()
    header["BUNIT"] = "ADU"
    fits.writeto(tmp_path / "up.fits", upscaled, header)
    comparison = write_viewer(tmp_path / "lr.fits", tmp_path / "up.fits", tmp_path / "view.html")
    finite = difference[np.isfinite(upscaled)]
    assert comparison.units == "ADU" and (comparison.lowest, comparison.highest) == pytest.approx((-100, 100), abs=1e-3)
    assert comparison.rms == pytest.approx(np.sqrt(np.mean(finite.astype(float) ** 2)), rel=1e-4)
    page = Page(browser, tmp_path / "view.html", zoom=16, cx=8, cy=8, mode="residual", rclip="maxabs")
    for y in range(16):
        for x in range(16):
            colour = uniform_colour(page.block(x, 15 - y), f"FITS pixel ({x}, {y})")  # row 0 at the bottom
            r = np.nan if np.isnan(upscaled[y, x]) else float(difference[y, x])  # exact but for float32 rounding
            want = residual_colour(r, 100.0)
            assert colour == want, f"FITS ({x}, {y}): residual {r} drawn {colour}, want {want}"
    assert page.browser.evaluate("document.getElementById('legend-text').textContent") == "\u00b1100 ADU"


def page_data_bicubic(tmp_path, lowres: np.ndarray) -> np.ndarray:
    """The bicubic the viewer computes for a FITS LOWRES (blanks NaN over their block), float32."""
    from astropy.io import fits

    from srcnn_np.viewer import ViewImage, bicubic_image

    header = fits.getheader(tmp_path / "lr.fits")
    up = ViewImage(np.zeros((16, 16), np.float32), header)
    return bicubic_image(ViewImage(lowres, header), up, 2)


@needs_chromium
def test_blink_alternates_bicubic_and_srcnn_at_the_same_zoom(tmp_path, capsys, browser):
    lowres = np.zeros((8, 8, 3), np.uint8)
    lowres[:, :, 0] = sky(8, 8, seed=11) // 2 + 100  # red only: bicubic
    upscaled = np.zeros((16, 16, 3), np.uint8)
    upscaled[:, :, 2] = sky(16, 16, seed=12) // 2 + 100  # blue only: SRCNN
    lr, up = save_png(tmp_path / "lr.png", lowres), save_png(tmp_path / "up.png", upscaled)
    assert run(["compare", lr, up, "-o", str(tmp_path / "view.html")], capsys)[0] == EXIT_OK
    bicubic = naive_bicubic_u8(lowres, 2)
    page = Page(browser, tmp_path / "view.html", zoom=16, cx=8, cy=8, stretch="linear", clip="full",
                mode="blink", blink_ms=300)
    seen = {}
    for _ in range(60):
        before = page.browser.evaluate("viewer.blink")
        page.set()  # a screenshot
        label = page.browser.evaluate("document.getElementById('left-label').textContent")
        if page.browser.evaluate("viewer.blink") != before:
            continue  # it changed while the screenshot was taken
        for y in range(16):
            for x in range(16):  # the whole image, no divider: the same blocks, one image or the other
                colour = uniform_colour(page.block(x, y), f"blink {before}: pixel ({x}, {y})")
                want = (int(bicubic[y, x, 0]), 0, 0) if before["showing"] == "bicubic" else (0, 0, int(upscaled[y, x, 2]))
                assert colour == want, f"blink showing {before}: pixel ({x}, {y}) is {colour}, want {want}"
        assert label.startswith("bicubic" if before["showing"] == "bicubic" else "SRCNN"), (before, label)
        seen.setdefault(before["showing"], before["flips"])
        if len(seen) == 2:
            break
    assert set(seen) == {"bicubic", "upscaled"}, f"blink showed only {seen} in 60 screenshots"
    page.set(mode="split")  # the timer stops
    flips = page.browser.evaluate("viewer.blink")["flips"]
    page.browser.evaluate("new Promise((done) => setTimeout(done, 700))")
    assert page.browser.evaluate("viewer.blink")["flips"] == flips


@needs_chromium
def test_keys_switch_views_and_leave_the_browsers_own_alone(tmp_path, capsys, browser):
    lr, up, _ = gray_pair_with_difference(tmp_path)
    assert run(["compare", lr, up, "-o", str(tmp_path / "view.html")], capsys)[0] == EXIT_OK
    page = Page(browser, tmp_path / "view.html")
    modes = []
    for key, modifiers in [("r", 0), ("b", 0), ("s", 0), ("r", 2), ("b", 4)]:  # 2: Ctrl, 4: Meta
        page.browser.call("Input.dispatchKeyEvent", session=True, type="keyDown", key=key, text=key, modifiers=modifiers)
        modes.append(page.browser.evaluate("viewer.state.mode"))
    assert modes == ["residual", "blink", "split", "split", "split"], modes
