"""srcnn_np.eval.evaluate: the SR protocol (bicubic PSNR recomputed independently), JSON shape, errors."""
import argparse
import json

import numpy as np
import pytest
from PIL import Image

from srcnn_np import save_weights
from srcnn_np.eval import degrade, evaluate
from srcnn_np.eval.metrics import psnr, ssim
from srcnn_np.eval.synthetic import synthetic_sky
from srcnn_np.weights import CONV_SHAPES

SCALE = 3


def identity_arrays(seed=0):
    """Weights whose net is bicubic plus a small random perturbation."""
    rng = np.random.default_rng(seed)
    arrays = {k: (rng.normal(0, 1e-3, s)).astype(np.float32) for k, s in CONV_SHAPES.items()}
    arrays["conv1.weight"][0, 0, 4, 4] = 1.0
    arrays["conv2.weight"][0, 0, 2, 2] = 1.0
    arrays["conv3.weight"][0, 0, 2, 2] = 1.0
    return arrays


@pytest.fixture
def hr_dir(tmp_path):
    d = tmp_path / "hr"
    d.mkdir()
    Image.fromarray((synthetic_sky(50, 61, seed=1) * 255).round().astype(np.uint8)).save(d / "a.png")
    Image.fromarray((synthetic_sky(40, 40, seed=2) * 255).round().astype(np.uint8)).convert("RGBA").save(d / "b.png")
    (d / "readme.txt").write_text("not an image")
    return d


@pytest.fixture
def weights_file(tmp_path):
    path = tmp_path / "w.npz"
    save_weights(path, identity_arrays(), scale=SCALE, meta={"data": "test"})
    return path


def parse(argv):
    p = argparse.ArgumentParser()
    evaluate.add_arguments(p)
    return p.parse_args(argv)


def independent_bicubic_psnr(path, scale):
    """The protocol from scratch: torch bicubic up, Pillow antialiased down, BT.601 Y, border crop."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255
    h, w = rgb.shape[0] // scale * scale, rgb.shape[1] // scale * scale
    rgb = rgb[:h, :w].astype(np.float32)
    lr = np.stack([np.asarray(Image.fromarray(rgb[:, :, c], mode="F").resize((w // scale, h // scale),
                                                                               Image.BICUBIC))
                   for c in range(3)])
    up = F.interpolate(torch.from_numpy(lr)[None], scale_factor=scale, mode="bicubic",
                       align_corners=False)[0].clamp(0, 1).numpy()
    y_up = 0.299 * up[0] + 0.587 * up[1] + 0.114 * up[2]
    y_hr = 0.299 * rgb[:, :, 0] + 0.587 * rgb[:, :, 1] + 0.114 * rgb[:, :, 2]
    err = (y_up - y_hr)[scale:-scale, scale:-scale].astype(np.float64)
    return 10 * np.log10(1 / np.mean(err ** 2))


def test_json_output_and_independent_bicubic_psnr(hr_dir, weights_file, capsys):
    rc = evaluate.run(parse(["--hr", str(hr_dir), "--scale", str(SCALE), "--weights", str(weights_file), "--json"]))
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["scale"] == SCALE and [r["name"] for r in out["images"]] == ["a.png", "b.png"]
    for r in out["images"]:
        assert set(r) == {"name", "bicubic_psnr", "bicubic_ssim", "model_psnr", "model_ssim"}
        expected = independent_bicubic_psnr(hr_dir / r["name"], SCALE)
        assert abs(r["bicubic_psnr"] - expected) < 0.01, (r["name"], r["bicubic_psnr"], expected)
        assert 0 < r["bicubic_ssim"] <= 1 and 0 < r["model_ssim"] <= 1
    mean = out["mean"]
    assert mean["psnr_gain"] == pytest.approx(mean["model_psnr"] - mean["bicubic_psnr"])
    assert mean["bicubic_psnr"] == pytest.approx(np.mean([r["bicubic_psnr"] for r in out["images"]]))
    # a near-identity net is bicubic up to the perturbation
    assert abs(mean["psnr_gain"]) < 0.5, mean


def test_table_output(hr_dir, weights_file, capsys):
    assert evaluate.run(parse(["--hr", str(hr_dir), "--scale", str(SCALE), "--weights", str(weights_file)])) == 0
    text = capsys.readouterr().out
    assert "a.png" in text and "b.png" in text and text.splitlines()[-1].startswith("mean")


def test_make_lr_is_antialiased_bicubic():
    hr = np.zeros((12, 12), np.float32)
    hr[:, ::2] = 1.0  # finest stripes: an antialiased downscale averages them out
    lr = degrade.make_lr(hr, 2)
    assert lr.shape == (6, 6)
    np.testing.assert_allclose(lr[2:-2, 2:-2], 0.5, atol=0.05)
    with pytest.raises(ValueError, match="not a multiple"):
        degrade.make_lr(np.zeros((7, 8), np.float32), 2)


def test_metrics_known_values():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, (32, 32))
    b = a + 0.01
    assert psnr(a, b) == pytest.approx(40.0)
    assert psnr(a, a) == float("inf") and ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, rng.uniform(0, 1, (32, 32))) < 0.1
    c = a.copy()
    c[:2] = 0  # differences only inside the border do not count after the crop
    assert psnr(a, c, border=2) == float("inf")


@pytest.mark.parametrize("argv,message", [
    (["--hr", "NOPE"], "not a directory"),
    (["--hr", "EMPTY"], "no images"),
    (["--hr", "HR", "--weights", "missing.npz"], "missing.npz"),
    ([], "--hr DIR is required"),
    (["--stars", "--hr", "NOPE"], "not a directory"),
    (["--stars", "--size", "8"], "--size 8"),
])
def test_errors_are_one_line(argv, message, hr_dir, weights_file, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    subst = {"NOPE": str(tmp_path / "nope"), "EMPTY": str(tmp_path / "empty"), "HR": str(hr_dir),
             "missing.npz": str(tmp_path / "missing.npz")}
    argv = [subst.get(a, a) for a in argv]
    if "--weights" not in argv:
        argv += ["--weights", str(weights_file), "--scale", str(SCALE)]
    assert evaluate.run(parse(argv)) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_make_comparison_writes_four_panels_and_never_overwrites(hr_dir, weights_file, tmp_path, capsys):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    import make_comparison

    out = tmp_path / "docs" / "cmp.png"
    argv = [str(hr_dir / "a.png"), "--scale", str(SCALE), "--weights", str(weights_file), "--out", str(out)]
    assert make_comparison.main(argv) == 0
    with Image.open(out) as im:
        # a.png is 61 wide, 50 high: cropped to 60x48 at scale 3, each panel zoomed 2x, 4 px gaps
        assert im.size == (4 * 60 * 2 + 3 * 4, 48 * 2 + make_comparison.LABEL_HEIGHT), im.size
    before = out.read_bytes()
    assert make_comparison.main(argv) == 2
    assert "exists" in capsys.readouterr().err and out.read_bytes() == before


def test_json_has_no_nan():
    """evaluate --stars --json: figures that do not exist (no sky in a crowded field) are null."""
    nested = {"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": 2}}
    assert evaluate.finite_or_none(nested) == {"a": None, "b": [1.0, None], "c": {"d": 2}}
    json.loads(json.dumps(evaluate.finite_or_none(nested)), parse_constant=lambda c: pytest.fail(c))

