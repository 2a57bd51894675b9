"""The weight contract: round trips, the converter, and every way a file can break it."""
import io
import json
import zipfile

import numpy as np
import pytest

from srcnn_np.weights import CONV_SHAPES, FORMAT_VERSION, WEIGHTS_MAGIC, WeightsError, load_weights, save_weights
from tools.convert_weights import convert
from tools.convert_weights import main as convert_main

from .conftest import random_weights


@pytest.fixture
def torch():
    """torch for the converter tests, which skip where it is absent (CI's torch-free floor environment)."""
    return pytest.importorskip("torch")


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def valid_arrays(**overrides):
    w = random_weights(5)
    arrays = {"magic": np.int32(WEIGHTS_MAGIC), "format_version": np.int32(FORMAT_VERSION),
              "scale": np.int32(2), "meta": np.frombuffer(b'{"a": 1}', np.uint8), **w.arrays()}
    arrays.update(overrides)
    return {k: v for k, v in arrays.items() if v is not None}


def test_round_trip(tmp_path):
    w = random_weights(1)
    save_weights(tmp_path / "w.npz", w.arrays(), scale=2, meta={"data": "test", "psnr": 30.5})
    back = load_weights(tmp_path / "w.npz")
    assert back.meta == {"data": "test", "psnr": 30.5} and back.scale == 2
    for name, a in w.arrays().items():
        np.testing.assert_array_equal(back.arrays()[name], a, err_msg=name)
        assert back.arrays()[name].dtype == np.float32


def test_hand_written_valid_file_loads(tmp_path):
    assert load_weights(write_npz(tmp_path / "ok.npz", **valid_arrays())).meta == {"a": 1}


@pytest.mark.parametrize("overrides, message", [
    ({"format_version": np.int32(99)}, "format_version 99, this srcnn_np reads 1; regenerate"),
    ({"format_version": None}, "no magic/format_version"),
    ({"magic": np.int32(1234)}, "bad magic number"),
    ({"conv2.bias": None}, "missing arrays ['conv2.bias']"),
    ({"extra": np.zeros(3, np.float32)}, "unexpected ['extra']"),
    ({"conv1.weight": np.zeros((64, 1, 7, 7), np.float32)}, "conv1.weight has shape (64, 1, 7, 7), expected (64, 1, 9, 9)"),
    ({"conv3.bias": np.zeros((1,), np.float64)}, "conv3.bias has dtype float64, expected float32"),
    ({"conv2.weight": np.full((32, 64, 5, 5), np.nan, np.float32)}, "conv2.weight holds NaN or inf"),
    ({"conv1.bias": np.array([object()] * 64, dtype=object)}, "holds Python objects; refusing to unpickle"),
    ({"meta": np.frombuffer(b"\xff\xfe", np.uint8)}, "meta is not UTF-8 JSON"),
    ({"scale": np.int32(3)}, "weights are for scale 3, asked for scale 2"),
], ids=["version", "no-version", "magic", "missing", "extra", "shape", "dtype", "nan", "pickle", "meta", "scale"])
def test_rejects_broken_files(tmp_path, overrides, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **valid_arrays(**overrides))
    with pytest.raises(WeightsError) as e:
        load_weights(path)
    assert message in str(e.value) and str(path) in str(e.value)
    assert "\n" not in str(e.value)


def test_rejects_non_zip_and_truncated(tmp_path):
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(WeightsError, match="not an .npz archive"):
        load_weights(tmp_path / "text.npz")
    good = tmp_path / "good.npz"
    save_weights(good, random_weights(1).arrays(), scale=2)
    (tmp_path / "cut.npz").write_bytes(good.read_bytes()[:-3000])
    with pytest.raises(WeightsError):
        load_weights(tmp_path / "cut.npz")
    with pytest.raises(WeightsError, match="cannot read"):
        load_weights(tmp_path / "missing.npz")


def test_refuses_claimed_size_before_reading(tmp_path):
    """A member whose header claims a huge array (a zip bomb) is refused from its zip entry size alone."""
    path = tmp_path / "bomb.npz"
    arrays = valid_arrays()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, a in arrays.items():
            buf = io.BytesIO()
            np.save(buf, np.zeros(50_000_000, np.uint8) if name == "meta" else a)
            zf.writestr(name + ".npy", buf.getvalue())
    assert path.stat().st_size < 1_000_000  # 50 MB of zeros compress to almost nothing
    with pytest.raises(WeightsError, match="meta claims"):
        load_weights(path)


def test_converter_from_state_dict_and_checkpoint(tmp_path, torch):
    from reference.model import SRCNN

    torch.manual_seed(0)
    model = SRCNN(2)
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    torch.save({"model": model.state_dict(), "config": {"scale": 2, "epochs": 3}, "meta": {"data": "x"}},
               tmp_path / "ckpt.pt")
    convert(tmp_path / "sd.pt", tmp_path / "a.npz")
    assert convert_main([str(tmp_path / "ckpt.pt"), str(tmp_path / "b.npz"), "--meta", '{"psnr": 1.5}']) == 0
    a, b = load_weights(tmp_path / "a.npz"), load_weights(tmp_path / "b.npz")
    assert b.meta["config"]["epochs"] == 3 and b.meta["data"] == "x" and b.meta["psnr"] == 1.5
    for name in CONV_SHAPES:
        want = model.state_dict()[name].numpy()
        np.testing.assert_array_equal(a.arrays()[name], want, err_msg=name)
        np.testing.assert_array_equal(b.arrays()[name], want, err_msg=name)


def test_converter_never_overwrites_without_flag(tmp_path, capsys, torch):
    from reference.model import SRCNN

    torch.save(SRCNN(2).state_dict(), tmp_path / "sd.pt")
    (tmp_path / "w.npz").write_bytes(b"precious")
    assert convert_main([str(tmp_path / "sd.pt"), str(tmp_path / "w.npz")]) == 2
    assert "exists (use --overwrite" in capsys.readouterr().err
    assert (tmp_path / "w.npz").read_bytes() == b"precious"
    assert convert_main([str(tmp_path / "sd.pt"), str(tmp_path / "w.npz"), "--overwrite"]) == 0
    assert load_weights(tmp_path / "w.npz").scale == 2


def test_converter_rejects_wrong_model(tmp_path, capsys, torch):
    torch.save({"fc.weight": torch.zeros(3)}, tmp_path / "other.pt")
    assert convert_main([str(tmp_path / "other.pt"), str(tmp_path / "o.npz")]) == 2
    assert "lacks ['conv1.weight'" in capsys.readouterr().err
    assert not (tmp_path / "o.npz").exists()


def test_shipped_weights_are_valid_and_documented():
    w = load_weights()
    assert w.scale == 2
    for key in ("data", "epochs"):
        assert key in w.meta, f"shipped meta lacks {key!r}: {json.dumps(w.meta)[:200]}"


def test_upscale_refuses_weights_of_another_scale():
    import srcnn_np

    with pytest.raises(ValueError, match="weights are for scale 3, asked for scale 2"):
        srcnn_np.upscale(np.zeros((4, 4), np.uint8), random_weights(1, scale=3))
    assert srcnn_np.upscale(np.zeros((4, 4), np.uint8), random_weights(1, scale=3), scale=3).shape == (12, 12)
