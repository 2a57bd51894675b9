"""reference/train.py --quick: outputs, weights export and conversion, resume, near-identity init."""
import csv
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F
from PIL import Image

from reference import data, train
from reference.model import SRCNN
from srcnn_np import load_weights


def quick(out, *extra):
    return train.main(["--stage", "general", "--quick", "--astro-dir", "none", "--out", str(out), *extra])


def read_log(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_quick_general_run_writes_log_plot_checkpoints_and_weights(tmp_path):
    npz = tmp_path / "w.npz"
    assert quick(tmp_path / "run", "--export", str(npz)) == 0
    run = tmp_path / "run"
    rows = read_log(run / "log.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert all(np.isfinite(float(r["train_loss"])) and np.isfinite(float(r["val_natural_psnr"])) for r in rows)
    with Image.open(run / "curves.png") as im:
        assert im.format == "PNG" and im.size[0] > 100
    w = load_weights(npz, scale=2)
    assert w.meta["epochs"] == 2 and w.meta["model"] == "general"
    assert w.meta["train_loop_s"] == float(rows[-1]["wall_s"]) <= w.meta["wall_time_s"]
    assert w.meta["val_psnr_y"]["natural"] == pytest.approx(float(rows[-1]["val_natural_psnr"]))
    assert "camera@96" in w.meta["data"]["train"] and w.meta["data"]["val_natural"] == ["chelsea@64"]
    state = torch.load(run / "model.pt", weights_only=True)["model"]
    for name, a in w.arrays().items():
        np.testing.assert_array_equal(a, state[name].numpy(), err_msg=name)


def test_converter_reads_the_training_checkpoint(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    import convert_weights

    assert quick(tmp_path / "run", "--export", str(tmp_path / "direct.npz")) == 0
    convert_weights.convert(tmp_path / "run" / "model.pt", tmp_path / "converted.npz")
    a, b = load_weights(tmp_path / "direct.npz"), load_weights(tmp_path / "converted.npz")
    for name in a.arrays():
        np.testing.assert_array_equal(a.arrays()[name], b.arrays()[name], err_msg=name)
    assert b.meta["epochs"] == 2 and b.meta["config"]["quick"] is True


def test_resume_continues_to_the_same_result(tmp_path):
    assert quick(tmp_path / "full") == 0
    assert quick(tmp_path / "split", "--stop-after", "1") == 0
    assert not (tmp_path / "split" / "model.pt").exists()
    assert quick(tmp_path / "split", "--resume") == 0
    full = torch.load(tmp_path / "full" / "model.pt", weights_only=True)["model"]
    split = torch.load(tmp_path / "split" / "model.pt", weights_only=True)["model"]
    for name in full:
        torch.testing.assert_close(split[name], full[name], rtol=0, atol=0, msg=name)
    rows = read_log(tmp_path / "split" / "log.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]


def test_resume_without_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert quick(tmp_path / "empty", "--resume") == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_quick_astro_fine_tune_from_general(tmp_path):
    assert quick(tmp_path / "general") == 0
    rc = train.main(["--stage", "astro", "--quick", "--astro-dir", "none", "--out", str(tmp_path / "astro"),
                     "--init", str(tmp_path / "general" / "model.pt"), "--export", str(tmp_path / "a.npz")])
    assert rc == 0
    meta = load_weights(tmp_path / "a.npz").meta
    assert meta["model"] == "astro" and "moon" in meta["data"]["train"]
    assert any(n.startswith("synthetic-") for n in meta["data"]["train"])
    assert meta["init_meta"]["model"] == "general" and meta["init_meta"]["init_meta"] is None  # the history


def test_near_identity_init_is_bicubic():
    model = SRCNN(3)
    train.init_near_identity(model, torch.Generator().manual_seed(0))
    x = 0.25 + 0.5 * torch.rand(2, 1, 20, 24)  # bicubic overshoot stays > 0, so ReLU passes it
    with torch.no_grad():
        out = model(x)
        up = F.interpolate(x, scale_factor=3, mode="bicubic", align_corners=False)
    torch.testing.assert_close(out, up, rtol=0, atol=1e-6)


@pytest.mark.parametrize("scale", [2, 4])
def test_validation_scores_the_net_as_srcnn_np_upscale_runs_it(scale):
    """train.validate == PSNR of srcnn_np.upscale (edges replicated) with the same weights, so the
    PSNR a run logs is the one `evaluate` reports; zero-padded edges would score differently."""
    import srcnn_np
    from srcnn_np.eval.metrics import psnr

    weights = load_weights(scale=scale)
    model = SRCNN(scale)
    model.load_state_dict({k: torch.tensor(v) for k, v in weights.arrays().items()})
    im = data.train_image("sky", np.full((40, 48, 3), 0.3, np.float32)
                          + np.random.default_rng(scale).normal(0, 0.002, (40, 48, 3)).astype(np.float32), scale)
    got = train.validate(model, [im], scale)
    want = psnr(im.hr, srcnn_np.upscale(im.lr, weights, scale=scale), border=scale)
    zero = psnr(im.hr, srcnn_np.upscale(im.lr, weights, scale=scale, edges="zero"), border=scale)
    assert abs(got - want) < 1e-3 and abs(got - zero) > 0.05, (got, want, zero)


def test_bf16_run_trains_and_exports_plain_float32_weights(tmp_path):
    npz = tmp_path / "w.npz"
    assert quick(tmp_path / "run", "--precision", "bf16", "--export", str(npz)) == 0
    w = load_weights(npz, scale=2)
    assert w.meta["precision"] == "bf16"
    state = torch.load(tmp_path / "run" / "model.pt", weights_only=True)["model"]
    for name, a in w.arrays().items():
        assert a.dtype == np.float32 and a.flags.c_contiguous, name
        assert state[name].is_contiguous(), name  # not channels-last on disk
        np.testing.assert_array_equal(a, state[name].numpy(), err_msg=name)
    fresh = SRCNN(2)
    train.init_near_identity(fresh, torch.Generator().manual_seed(0))
    assert not torch.equal(fresh.conv2.weight, state["conv2.weight"])  # it did train


@pytest.mark.parametrize("name", sorted(data.OTHER_PACKAGE_IMAGES) + ["stereo_motorcycle"])
def test_other_package_images_load_as_rgb(name):
    rgb = data.natural_rgb(name)
    assert rgb.dtype == np.float32 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert min(rgb.shape[:2]) >= 256 and 0.0 <= rgb.min() < rgb.max() <= 1.0
    assert name in data.NATURAL_TRAIN and name not in data.NATURAL_HELD_OUT


def test_missing_image_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r"'china' needs sklearn.datasets: pip install -e '\.\[reference\]'"):
        data.natural_rgb("china")


def test_held_out_natural_images_are_never_trained_on():
    assert not set(data.NATURAL_HELD_OUT) & set(data.NATURAL_TRAIN)
    assert "clock_motion" not in data.NATURAL_TRAIN  # a blurred copy of the held-out clock
