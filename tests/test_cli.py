"""The CLI on real files: formats, bit depths, batches, and every bad input named in issue 2."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from srcnn_np.io import png
from srcnn_np.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main

from .conftest import random_weights, save_png, sky


def run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def snapshot(directory):
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(directory.rglob("*")) if p.is_file()}


def test_rgb_png_8bit(tmp_path, weights_file, capsys):
    Image.fromarray(sky(20, 30, 3)).save(tmp_path / "in.png")
    code, out, _ = run([ "upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"),
                        "--weights", weights_file], capsys)
    assert code == EXIT_OK and "30x20 -> 60x40" in out
    with Image.open(tmp_path / "out.png") as im:
        assert im.mode == "RGB" and im.size == (60, 40)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_gray_png_16bit_keeps_depth_and_values(tmp_path, weights_file, capsys):
    from srcnn_np import upscale

    image = sky(17, 11, dtype=np.uint16)
    save_png(str(tmp_path / "g16.png"), image)
    code, _, _ = run(["upscale", str(tmp_path / "g16.png"), "-o", str(tmp_path / "o16.png"),
                      "--weights", weights_file], capsys)
    assert code == EXIT_OK
    back = png.read_png16(str(tmp_path / "o16.png"))
    assert back.dtype == np.uint16 and back.shape == (34, 22)
    want = np.rint(upscale(image, random_weights(9)) * 65535).astype(np.uint16)
    np.testing.assert_array_equal(back, want)


def test_rgb_png_16bit(tmp_path, weights_file, capsys):
    save_png(str(tmp_path / "c16.png"), sky(9, 8, 3, np.uint16))
    code, _, _ = run(["upscale", str(tmp_path / "c16.png"), "-o", str(tmp_path / "o.png"),
                      "--weights", weights_file, "--mode", "y"], capsys)
    assert code == EXIT_OK
    back = png.read_png16(str(tmp_path / "o.png"))
    assert back.dtype == np.uint16 and back.shape == (18, 16, 3)


def test_rgba_png_alpha_is_bicubic(tmp_path, weights_file, capsys):
    from srcnn_np import bicubic_upsample

    rgba = sky(12, 10, 4)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    code, _, _ = run(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "b.png"),
                      "--weights", weights_file], capsys)
    assert code == EXIT_OK
    out = np.asarray(Image.open(tmp_path / "b.png"))
    assert out.shape == (24, 20, 4)
    alpha = np.rint(np.clip(bicubic_upsample(rgba[:, :, 3] / np.float32(255), 2), 0, 1) * 255)
    np.testing.assert_array_equal(out[:, :, 3], alpha.astype(np.uint8))


def test_jpeg_and_exif_orientation(tmp_path, weights_file, capsys):
    im = Image.fromarray(sky(10, 16, 3))  # landscape pixels, EXIF says rotate 90 degrees
    exif = Image.Exif()
    exif[0x0112] = 6
    im.save(tmp_path / "in.jpg", exif=exif, quality=95)
    code, _, _ = run(["upscale", str(tmp_path / "in.jpg"), "-o", str(tmp_path / "out.jpg"),
                      "--weights", weights_file], capsys)
    assert code == EXIT_OK
    with Image.open(tmp_path / "out.jpg") as out:
        assert out.format == "JPEG" and out.size == (20, 32)  # upright: 10 wide, 16 tall, x2


def test_tiff_gray_and_rgb_8bit(tmp_path, weights_file, capsys):
    Image.fromarray(sky(7, 9)).save(tmp_path / "g.tif")
    Image.fromarray(sky(7, 9, 3)).save(tmp_path / "c.tiff")
    code, _, _ = run(["upscale", str(tmp_path / "g.tif"), str(tmp_path / "c.tiff"), "-o",
                      str(tmp_path / "out"), "--weights", weights_file], capsys)
    assert code == EXIT_OK
    assert np.asarray(Image.open(tmp_path / "out" / "g_x2.tif")).shape == (14, 18)
    assert np.asarray(Image.open(tmp_path / "out" / "c_x2.tiff")).shape == (14, 18, 3)


def test_directory_batch_with_one_corrupt_file(tmp_path, weights_file, capsys):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        Image.fromarray(sky(8, 8, 3, seed=i)).save(src / f"img{i}.png")
    (src / "broken.png").write_bytes((src / "img0.png").read_bytes()[:60])
    (src / "notes.txt").write_text("not an image, not an image extension: ignored")
    code, out, err = run(["upscale", str(src), "-o", str(tmp_path / "out"), "--ext", "jpg",
                          "--suffix", "_big", "--weights", weights_file], capsys)
    assert code == EXIT_FAILED
    assert sorted(os.listdir(tmp_path / "out")) == ["img0_big.jpg", "img1_big.jpg", "img2_big.jpg"]
    assert "1 input(s) failed, 3 done" in err and "broken.png" in err


@pytest.mark.parametrize("content, message", [
    (b"", "not a readable image"),
    (b"hello, I am text", "not a readable image"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "cannot decode image"),
])
def test_bad_single_inputs(tmp_path, weights_file, capsys, content, message):
    (tmp_path / "bad.png").write_bytes(content)
    code, _, err = run(["upscale", str(tmp_path / "bad.png"), "-o", str(tmp_path / "o.png"),
                        "--weights", weights_file], capsys)
    assert code == EXIT_FAILED and message in err and "bad.png" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.png").exists()


def test_truncated_png_and_jpeg(tmp_path, weights_file, capsys):
    Image.fromarray(sky(64, 64, 3)).save(tmp_path / "full.png")
    Image.fromarray(sky(64, 64, 3)).save(tmp_path / "full.jpg")
    for name in ("full.png", "full.jpg"):
        data = (tmp_path / name).read_bytes()
        (tmp_path / f"cut_{name}").write_bytes(data[: len(data) // 2])
        code, _, err = run(["upscale", str(tmp_path / f"cut_{name}"), "-o", str(tmp_path / f"o_{name}"),
                            "--weights", weights_file], capsys)
        assert code == EXIT_FAILED and f"cut_{name}" in err, err
        assert not (tmp_path / f"o_{name}").exists()


def test_pixel_limit(tmp_path, weights_file, capsys):
    Image.fromarray(sky(20, 20)).save(tmp_path / "big.png")
    code, _, err = run(["upscale", str(tmp_path / "big.png"), "-o", str(tmp_path / "o.png"),
                        "--weights", weights_file, "--max-pixels", "399"], capsys)
    assert code == EXIT_FAILED and "20x20 = 400 pixels exceeds the limit of 399" in err
    code, _, _ = run(["upscale", str(tmp_path / "big.png"), "-o", str(tmp_path / "o.png"),
                      "--weights", weights_file, "--max-pixels", "400"], capsys)
    assert code == EXIT_OK


def test_invalid_weights_file(tmp_path, capsys):
    Image.fromarray(sky(5, 5)).save(tmp_path / "in.png")
    (tmp_path / "w.npz").write_bytes(b"PK\x03\x04 garbage")
    code, _, err = run(["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "o.png"),
                        "--weights", str(tmp_path / "w.npz")], capsys)
    assert code == EXIT_USAGE and "w.npz" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.png").exists()


def test_existing_output_untouched_without_overwrite(tmp_path, weights_file, capsys):
    Image.fromarray(sky(6, 6, 3)).save(tmp_path / "in.png")
    (tmp_path / "o.png").write_bytes(b"precious")
    before = snapshot(tmp_path)
    code, _, err = run(["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "o.png"),
                        "--weights", weights_file], capsys)
    assert code == EXIT_FAILED and "exists (use --overwrite" in err
    assert snapshot(tmp_path) == before
    code, _, _ = run(["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "o.png"),
                      "--weights", weights_file, "--overwrite"], capsys)
    assert code == EXIT_OK and Image.open(tmp_path / "o.png").size == (12, 12)


def test_skip_existing_resumes_batch(tmp_path, weights_file, capsys):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(2):
        Image.fromarray(sky(6, 6, seed=i)).save(src / f"{i}.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "0_x2.png").write_bytes(b"done earlier")
    code, _, _ = run(["upscale", str(src), "-o", str(tmp_path / "out"), "--skip-existing",
                      "--weights", weights_file], capsys)
    assert code == EXIT_OK
    assert (tmp_path / "out" / "0_x2.png").read_bytes() == b"done earlier"
    assert Image.open(tmp_path / "out" / "1_x2.png").size == (12, 12)


def test_overwrite_with_skip_existing_is_a_usage_error(tmp_path, weights_file, capsys):
    Image.fromarray(sky(6, 6, 3)).save(tmp_path / "in.png")
    (tmp_path / "o.png").write_bytes(b"precious")
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "o.png"), "--weights", weights_file,
              "--overwrite", "--skip-existing"])
    err = capsys.readouterr().err
    assert e.value.code == EXIT_USAGE, err
    assert len(err.strip().splitlines()) == 1 and "--skip-existing" in err and "--overwrite" in err, err
    assert snapshot(tmp_path) == before


def test_usage_errors_are_one_line(tmp_path, capsys):
    for argv in (["upscale", "x.png"], ["upscale", "x.png", "-o", "y.png", "--scale", "5"], ["bogus"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == EXIT_USAGE
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "error" in err
    Image.fromarray(sky(5, 5)).save(tmp_path / "in.png")
    code, _, err = run(["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.bmp")], capsys)
    assert code == EXIT_USAGE and "cannot tell the output format" in err
    code, _, err = run(["upscale", str(tmp_path / "missing.png"), "-o", str(tmp_path / "o.png")], capsys)
    assert code == EXIT_FAILED and "missing.png: no such file" in err


def test_module_entry_point_with_shipped_weights(tmp_path):
    """`python -m srcnn_np` in a fresh process, shipped weights, and --help."""
    Image.fromarray(sky(16, 16, 3)).save(tmp_path / "in.png")
    done = subprocess.run([sys.executable, "-m", "srcnn_np", "upscale", str(tmp_path / "in.png"), "-o",
                           str(tmp_path / "out.png"), "--quiet"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert Image.open(tmp_path / "out.png").size == (32, 32)
    helped = subprocess.run([sys.executable, "-m", "srcnn_np", "upscale", "--help"], capture_output=True,
                            text=True, timeout=120)
    assert helped.returncode == 0 and "--overwrite" in helped.stdout and "exit status" in helped.stdout


def test_device_cuda_without_gpu_is_a_usage_error(tmp_path, weights_file, capsys):
    from srcnn_np.gpu.runner import cuda_status

    if cuda_status()[0]:
        pytest.skip("a CUDA device (or the simulator) is usable here")
    Image.fromarray(sky(6, 6, 3)).save(tmp_path / "in.png")
    code, _, err = run(["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "o.png"),
                        "--weights", weights_file, "--device", "cuda"], capsys)
    assert code == EXIT_USAGE and "CUDA device not usable" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.png").exists()
    code, _, _ = run(["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "o.png"),
                      "--weights", weights_file, "--device", "auto"], capsys)
    assert code == EXIT_OK  # auto falls back to the CPU


def test_float_tiff_outside_unit_range_is_upscaled_physically_or_refused_for_png(tmp_path, weights_file, capsys):
    """Float TIFF data in any range goes through upscale's mapping (tests/test_float_tiff.py has the
    details); a PNG output would clip it: refused, one line, nothing written."""
    from srcnn_np.model import resolve_weights, upscale

    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "wide.tif", np.linspace(0, 5, 72, dtype=np.float32).reshape(8, 9))
    code, _, err = run(["upscale", str(tmp_path / "wide.tif"), "-o", str(tmp_path / "o.tif"),
                        "--weights", weights_file], capsys)
    out = tifffile.imread(tmp_path / "o.tif")
    assert code == EXIT_OK and out.dtype == np.float32 and out.shape == (16, 18), err
    wide = tifffile.imread(tmp_path / "wide.tif")
    assert np.array_equal(out, upscale(wide, resolve_weights(random_weights(9))))  # mapped, in [0, 5]
    code, _, err = run(["upscale", str(tmp_path / "wide.tif"), "-o", str(tmp_path / "o.png"),
                        "--weights", weights_file], capsys)
    assert code == EXIT_FAILED and "outside [0, 1]" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.png").exists()


def test_edges_option_flat_sky_stays_flat_only_with_replicate(tmp_path, capsys):
    """--edges replicate (default) keeps a flat 16-bit sky flat to the border with the shipped
    model; --edges zero (the network as torch runs it) leaves a frame of artifacts."""
    save_png(str(tmp_path / "sky.png"), np.full((24, 20), 13107, np.uint16))
    spans = {}
    for edges in ("replicate", "zero"):
        out = tmp_path / f"{edges}.png"
        code, _, _ = run(["upscale", str(tmp_path / "sky.png"), "-o", str(out), "-q", "--edges", edges], capsys)
        assert code == EXIT_OK
        pixels = png.read_png16(str(out))
        assert pixels.shape == (48, 40)
        spans[edges] = int(pixels.max()) - int(pixels.min())
    assert spans["replicate"] <= 1 and spans["zero"] > 600, spans  # 16-bit levels
