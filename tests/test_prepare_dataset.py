"""tools/prepare_dataset.py: ground truths never enlarged, deterministic split, filters, manifest."""
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import prepare_dataset as prep

from reference.data import split_of
from srcnn_np.eval.degrade import load_rgb, make_lr
from srcnn_np.eval.synthetic import synthetic_sky


def save(path, rgb):
    Image.fromarray(np.round(rgb * 255).astype(np.uint8)).save(path)


@pytest.fixture
def src(tmp_path):
    d = tmp_path / "src"
    d.mkdir()
    for i, (h, w) in enumerate([(300, 400), (90, 100), (256, 256), (513, 300), (64, 64), (200, 150)]):
        save(d / f"sky{i}.png", synthetic_sky(h, w, seed=i))
    diagram = np.ones((200, 200, 3))
    diagram[50:150:10, 20:180] = 0.0  # black lines on a white page
    save(d / "diagram.png", diagram)
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (d / "notes.txt").write_text("not an image")
    return d


def test_ground_truths_are_never_enlarged(src, tmp_path):
    m = prep.prepare(src, tmp_path / "ds", scale=3, size=256)
    assert len(m["images"]) == 6
    for r in m["images"]:
        side = min(r["source_size"])
        hr = Image.open(tmp_path / "ds" / r["hr"])
        lr = Image.open(tmp_path / "ds" / r["lr"])
        assert hr.size[0] == hr.size[1] <= min(side, 256), (r["source"], hr.size, r["source_size"])
        assert hr.size[0] % 3 == 0 and lr.size == (hr.size[0] // 3, hr.size[1] // 3)
        assert hr.mode == "RGB"
        assert list(hr.size) == r["hr_size"]
    sizes = {r["source"]: r["hr_size"][0] for r in m["images"]}
    assert sizes["sky0.png"] == 255 and sizes["sky1.png"] == 90 and sizes["sky4.png"] == 63


def test_lr_is_the_evaluate_degradation_of_the_ground_truth(src, tmp_path):
    m = prep.prepare(src, tmp_path / "ds", scale=2)
    for r in m["images"]:
        hr = load_rgb(tmp_path / "ds" / r["hr"])
        lr = load_rgb(tmp_path / "ds" / r["lr"])
        err = np.abs(lr - np.clip(make_lr(hr, 2), 0, 1)).max()
        assert err <= 1.0 / 255 + 1e-6, (r["source"], err)


def test_exclusions_and_manifest_records(src, tmp_path):
    m = prep.prepare(src, tmp_path / "ds", scale=2, exclude={"sky5.png"})
    reasons = {r["source"]: r["reason"] for r in m["excluded"]}
    assert set(reasons) == {"sky5.png", "diagram.png", "corrupt.png"}
    assert "filter" in reasons["sky5.png"] and "drawing" in reasons["diagram.png"]
    assert "corrupt.png" in reasons["corrupt.png"] and "image" in reasons["corrupt.png"]
    for r in m["images"]:
        digest = hashlib.sha256((src / r["source"]).read_bytes()).hexdigest()
        assert r["sha256"] == digest and r["split"] == split_of(r["source"])
    on_disk = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert on_disk == m


def test_deterministic_and_split_by_seeded_name_hash(src, tmp_path):
    a = prep.prepare(src, tmp_path / "a", scale=2, val_fraction=0.5, seed=1)
    b = prep.prepare(src, tmp_path / "b", scale=2, val_fraction=0.5, seed=1)
    assert a["images"] == b["images"]
    for r in a["images"]:
        assert (tmp_path / "a" / r["hr"]).read_bytes() == (tmp_path / "b" / r["hr"]).read_bytes()
        assert r["split"] == split_of(r["source"], 0.5, seed=1)
    names = [f"img{i}.png" for i in range(400)]
    val = sum(split_of(n, 0.2, seed=0) == "val" for n in names)
    assert abs(val - 80) < 5 * np.sqrt(400 * 0.2 * 0.8), val
    assert [split_of(n, 0.2, 0) for n in names] != [split_of(n, 0.2, 5) for n in names]


def test_existing_destination_needs_force(src, tmp_path, capsys):
    dst = tmp_path / "ds"
    dst.mkdir()
    (dst / "keep.txt").write_text("mine")
    assert prep.main([str(src), str(dst)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (dst / "keep.txt").read_text() == "mine"
    assert prep.main([str(src), str(dst), "--force"]) == 0
    assert not (dst / "keep.txt").exists() and (dst / "manifest.json").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []


def test_filter_file_parsing(tmp_path):
    f = tmp_path / "filter.txt"
    f.write_text("# illustrations\nheic1.png  # artist's impression\n\n  opo2.jpg\n")
    assert prep.read_filter(f) == {"heic1.png", "opo2.jpg"}


def test_illustration_guard():
    rng = np.random.default_rng(0)
    scan = np.clip(0.97 + rng.normal(0, 0.01, (64, 64, 3)), 0, 1)  # a noisy white page
    assert "diagram" in prep.illustration_reason(scan)
    flat = np.zeros((64, 64, 3))
    flat[:, 32:] = [0.8, 0.2, 0.1]  # two flat fills
    assert "drawing" in prep.illustration_reason(flat)
    assert prep.illustration_reason(synthetic_sky(64, 64, seed=1)) is None


def test_images_of_one_release_share_a_split():
    from reference.data import release_group

    assert release_group("heic0206c.png") == "heic0206" and release_group("camera.png") == "camera"
    for seed in range(20):
        splits = {split_of(f"heic0910{c}.png", 0.5, seed) for c in "abhs"}
        assert len(splits) == 1, (seed, splits)
