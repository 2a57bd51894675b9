"""Hardening (issue 7): a corpus of bad inputs through the CLI, hostile filesystems, Ctrl-C, weights.

Every bad input must give one error line naming the file, a documented non-zero exit status
(1: input failed, 2: bad command), no traceback, no output left behind and no existing file
changed. The corpus is generated here; `BAD_INPUTS` + `ACCEPTED_INPUTS` + the special cases below
are what the issue's "count of bad inputs tried" counts.
"""
import errno
import io
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image

from srcnn_np.io import imageio, png
from srcnn_np.cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, EXIT_USAGE, main
from srcnn_np.weights import FORMAT_VERSION, WEIGHTS_MAGIC
from tools.soak import png_header_only

from .conftest import random_weights, save_png, sky

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUBPROCESS_TIMEOUT = 240  # s; generous for a cold Numba cache on a busy 2-core machine


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def png_with_chunk_before_idat(kind: bytes, payload: bytes) -> bytes:
    data = encode(Image.fromarray(sky(4, 4)), "PNG")
    return data[:33] + png.chunk(kind, payload) + data[33:]  # 33 = signature + IHDR


def tiff_header_only(width, height) -> bytes:
    """A little-endian baseline TIFF whose IFD claims width x height gray 8-bit, with 1 byte of data."""
    tags = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
            (273, 4, 8), (278, 4, max(height, 1)), (279, 4, 1)]
    ifd = len(tags).to_bytes(2, "little") + b"".join(
        t.to_bytes(2, "little") + kind.to_bytes(2, "little") + (1).to_bytes(4, "little")
        + (value.to_bytes(2, "little") + b"\0\0" if kind == 3 else value.to_bytes(4, "little"))
        for t, kind, value in tags) + b"\0\0\0\0"
    return b"II*\0" + (10).to_bytes(4, "little") + b"\x80\0" + ifd  # header, IFD offset, pixel byte, pad


def jpeg_with_size(width, height) -> bytes:
    """A valid 8x8 JPEG with the frame header (SOF0) patched to claim width x height."""
    data = bytearray(encode(Image.fromarray(sky(8, 8, 3)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 7] = height.to_bytes(2, "big")
    data[sof + 7:sof + 9] = width.to_bytes(2, "big")
    return bytes(data)


def tiff_bytes(array, **options) -> bytes:
    tifffile = pytest.importorskip("tifffile")  # the [tiff] extra: absent in the floor environment

    buf = io.BytesIO()
    tifffile.imwrite(buf, array, **options)
    return buf.getvalue()


def cut(data: bytes, keep) -> bytes:
    return data[:keep if isinstance(keep, int) else int(len(data) * keep)]


PNG8 = lambda: encode(Image.fromarray(sky(64, 64, 3)), "PNG")  # noqa: E731
PNG16 = lambda: _png16_bytes(sky(32, 32, 3, np.uint16))  # noqa: E731
JPEG = lambda: encode(Image.fromarray(sky(64, 64, 3)), "JPEG", quality=90)  # noqa: E731
TIFF8 = lambda: encode(Image.fromarray(sky(64, 64, 3)), "TIFF")  # noqa: E731
TIFF16_RGB = lambda: tiff_bytes(sky(32, 32, 3, np.uint16), photometric="rgb")  # noqa: E731


def _png16_bytes(array) -> bytes:
    buf = io.BytesIO()
    png.write_png(buf, array, compression=6)
    return buf.getvalue()


UNREADABLE = "not a readable image"
UNDECODABLE = "cannot decode image"
# file name -> (bytes builder, the message fragment the error line must hold)
BAD_INPUTS = {
    "empty.png": (lambda: b"", UNREADABLE),
    "empty.jpg": (lambda: b"", UNREADABLE),
    "empty.tif": (lambda: b"", UNREADABLE),
    "text.png": (lambda: b"This is not an image.\n" * 20, UNREADABLE),
    "fits_like_text.png": (lambda: b"SIMPLE  =                    T / text that looks like FITS\n" * 20, UNDECODABLE),
    "random.jpg": (lambda: np.random.default_rng(1).bytes(4096), UNREADABLE),
    "random.tif": (lambda: b"II*\0" + np.random.default_rng(2).bytes(4096), UNREADABLE),
    "png_signature_only.png": (lambda: png.PNG_SIGNATURE, UNREADABLE),
    "png_signature_then_random.png": (lambda: png.PNG_SIGNATURE + np.random.default_rng(3).bytes(500), UNREADABLE),
    "png_cut_in_ihdr.png": (lambda: cut(PNG8(), 20), UNDECODABLE),
    "png_cut_after_ihdr.png": (lambda: cut(PNG8(), 33), UNREADABLE),
    "png_cut_half.png": (lambda: cut(PNG8(), 0.5), UNDECODABLE),
    "png16_cut_in_ihdr.png": (lambda: cut(PNG16(), 26), "truncated PNG"),
    "png16_cut_half.png": (lambda: cut(PNG16(), 0.5), "truncated PNG"),
    "png16_no_iend.png": (lambda: PNG16()[:-12], "truncated PNG: no IEND"),
    "png16_bad_filter.png": (lambda: _png16_with_bad_filter(), "unknown filter type"),
    "jpeg_cut_in_header.jpg": (lambda: cut(JPEG(), 20), UNREADABLE),
    "jpeg_cut_half.jpg": (lambda: cut(JPEG(), 0.5), "truncated"),
    "tiff_cut_in_header.tif": (lambda: cut(TIFF8(), 6), UNREADABLE),
    "tiff_cut_half.tif": (lambda: cut(TIFF8(), 0.5), "truncated"),
    "tiff16_rgb_cut_half.tif": (lambda: cut(TIFF16_RGB(), 0.5), "truncated or corrupt TIFF"),
    "gif_named_png.png": (lambda: encode(Image.fromarray(sky(8, 8)), "GIF"), "unsupported image format GIF"),
    "bmp_named_tif.tif": (lambda: encode(Image.fromarray(sky(8, 8, 3)), "BMP"), "unsupported image format BMP"),
    "png_0x5.png": (lambda: png_header_only(0, 5), UNREADABLE),
    "png_5x0.png": (lambda: png_header_only(5, 0), UNREADABLE),
    "png16_0x5.png": (lambda: png_header_only(0, 5, depth=16), "empty image (0x5)"),
    "png16_5x0.png": (lambda: png_header_only(5, 0, depth=16), "empty image (5x0)"),
    "tiff_0x5.tif": (lambda: tiff_header_only(0, 5), UNREADABLE),
    "tiff_5x0.tif": (lambda: tiff_header_only(5, 0), UNREADABLE),
    "jpeg_0x8.jpg": (lambda: jpeg_with_size(0, 8), UNREADABLE),
    "jpeg_8x0.jpg": (lambda: jpeg_with_size(8, 0), UNREADABLE),
    "png_bomb_header.png": (lambda: png_header_only(30000, 30000), "exceeds the limit of"),
    "png16_bomb_header.png": (lambda: png_header_only(30000, 30000, depth=16), "exceeds the limit of"),
    "jpeg_bomb_header.jpg": (lambda: jpeg_with_size(65000, 65000), "exceeds the limit of"),
    "tiff_bomb_header.tif": (lambda: tiff_header_only(100000, 100000), "exceeds the limit of"),
    "png_ztxt_bomb.png": (lambda: png_with_chunk_before_idat(
        b"zTXt", b"Comment\0\0" + zlib.compress(b"\0" * 50_000_000)), "too large"),
    "png_iccp_bomb.png": (lambda: png_with_chunk_before_idat(
        b"iCCP", b"icc\0\0" + zlib.compress(b"\0" * 50_000_000)), "too large"),
    "float_nan_only.tif": (lambda: tiff_bytes(np.full((8, 8), np.nan, np.float32)), "NaN"),
    "int32_negative.tif": (lambda: encode(Image.fromarray(np.full((8, 8), -5, np.int32), "I"), "TIFF"),
                           "outside 0..65535"),
    "int8_signed.tif": (lambda: tiff_bytes(np.array([[-1, -128], [0, 127]], np.int8)), "signed 8-bit samples"),
    "int16_negative.tif": (lambda: tiff_bytes(np.array([[-1, 300], [0, 127]], np.int16)), "outside 0..65535"),
    "uint32_large.tif": (lambda: tiff_bytes(np.full((4, 4), 70000, np.uint32)), "outside 0..65535"),
    "tiff16_five_samples.tif": (lambda: tiff_bytes(sky(8, 8, 5, np.uint16), photometric="minisblack",
                                                   planarconfig="contig"), UNREADABLE),
    "two_pages.tif": (lambda: encode(Image.fromarray(sky(9, 7, 3)), "TIFF", save_all=True,
                                     append_images=[Image.fromarray(sky(5, 5, 3))]), "multi-page TIFF (2 images)"),
}


def _png16_with_bad_filter() -> bytes:
    rows = np.full((4, 1 + 4 * 2), 7, np.uint8)  # filter type 7 does not exist
    ihdr = (4).to_bytes(4, "big") * 2 + bytes((16, 0, 0, 0, 0))
    return b"".join((png.PNG_SIGNATURE, png.chunk(b"IHDR", ihdr),
                     png.chunk(b"IDAT", zlib.compress(rows.tobytes())), png.chunk(b"IEND", b"")))


def snapshot(directory):
    """{path: (mode, mtime, bytes)} of every entry under directory (for links and directories: mode,
    link target): 'no file created, no existing file changed'."""
    def state(p):
        info = p.lstat()
        if p.is_symlink():
            return info.st_mode, None, os.readlink(p)
        if not p.is_file():  # a directory or a FIFO (never opened: it would block)
            return info.st_mode, None, None
        return info.st_mode, info.st_mtime_ns, p.read_bytes()
    return {p: state(p) for p in sorted(directory.rglob("*"))}


def tiny_pngs(directory, count, channels=None):
    """Write 0.png .. count-1.png, 8x8 synthetic skies (gray, or `channels` channels), into a new `directory`."""
    directory.mkdir()
    for i in range(count):
        Image.fromarray(sky(8, 8, channels, seed=i)).save(directory / f"{i}.png")


def run_cli(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    return code, out, err


def assert_one_line_naming(err: str, name: str, fragment: str = ""):
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one error line, got {len(lines)}:\n{err}"
    assert name in lines[0] and fragment.lower() in lines[0].lower(), f"want {name!r} and {fragment!r} in: {lines[0]}"


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_fails_cleanly(tmp_path, weights_file, capsys, name):
    build, fragment = BAD_INPUTS[name]
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    source = tmp_path / "in" / name
    source.write_bytes(build())
    (tmp_path / "out" / "keep.png").write_bytes(b"an earlier result")
    before = snapshot(tmp_path)
    code, out, err = run_cli(["upscale", str(source), "-o", str(tmp_path / "out" / ("o_" + name)),
                              "--weights", weights_file], capsys)
    assert code == EXIT_FAILED, f"exit {code}; stdout {out!r}; stderr {err!r}"
    assert_one_line_naming(err, str(source), fragment)
    assert snapshot(tmp_path) == before  # no output, no temp file, nothing changed


def _jpeg_with_orientation(value):
    exif = Image.Exif()
    exif[0x0112] = value
    return encode(Image.fromarray(sky(9, 7, 3)), "JPEG", exif=exif)


def _palette_with_transparency():
    im = Image.fromarray(sky(9, 7, 3)).quantize(16)
    return encode(im, "PNG", transparency=0)


# Unusual but valid inputs: upscaled, exit 0. name -> (bytes builder, output shape, output dtype)
ACCEPTED_INPUTS = {
    "one_pixel.png": (lambda: encode(Image.fromarray(sky(1, 1, 3)), "PNG"), (2, 2, 3), np.uint8),
    "palette.png": (lambda: encode(Image.fromarray(sky(9, 7, 3)).quantize(16), "PNG"), (18, 14, 3), np.uint8),
    "palette_transparent.png": (_palette_with_transparency, (18, 14, 4), np.uint8),
    "palette_2bit.png": (lambda: encode(Image.fromarray(sky(9, 7, 3)).quantize(4), "PNG", bits=2),
                         (18, 14, 3), np.uint8),
    "bilevel.png": (lambda: encode(Image.fromarray(sky(9, 7)).convert("1"), "PNG"), (18, 14), np.uint8),
    "gray_alpha.png": (lambda: encode(Image.fromarray(sky(9, 7, 2), "LA"), "PNG"), (18, 14, 2), np.uint8),
    "cmyk.jpg": (lambda: encode(Image.fromarray(sky(9, 7, 4), "CMYK"), "JPEG"), (18, 14, 3), np.uint8),
    "cmyk.tif": (lambda: encode(Image.fromarray(sky(9, 7, 4), "CMYK"), "TIFF"), (18, 14, 3), np.uint8),
    "png_named_jpg.jpg": (lambda: encode(Image.fromarray(sky(9, 7, 3)), "PNG"), (18, 14, 3), np.uint8),
    "gray16_big_endian.tif": (lambda: tiff_bytes(sky(9, 7, dtype=np.uint16), byteorder=">"), (18, 14), np.uint16),
    "gray16_little_endian.tif": (lambda: tiff_bytes(sky(9, 7, dtype=np.uint16), byteorder="<"),
                                 (18, 14), np.uint16),
    "rgb16_big_endian.tif": (lambda: tiff_bytes(sky(9, 7, 3, np.uint16), byteorder=">", photometric="rgb"),
                             (18, 14, 3), np.uint16),
    "rgb16_planar.tif": (lambda: tiff_bytes(np.moveaxis(sky(9, 7, 3, np.uint16), -1, 0), photometric="rgb",
                                            planarconfig="separate"), (18, 14, 3), np.uint16),
    "rgba16.png": (lambda: _png16_bytes(sky(9, 7, 4, np.uint16)), (18, 14, 4), np.uint16),
    "exif_garbage.jpg": (lambda: encode(Image.fromarray(sky(9, 7, 3)), "JPEG", exif=b"Exif\0\0" + bytes(range(60))),
                         (18, 14, 3), np.uint8),
    "exif_orientation_99.jpg": (lambda: _jpeg_with_orientation(99), (18, 14, 3), np.uint8),
    "icc_not_a_profile.png": (lambda: encode(Image.fromarray(sky(9, 7, 3)), "PNG", icc_profile=b"not a profile"),
                              (18, 14, 3), np.uint8),
    "animated.png": (lambda: encode(Image.fromarray(sky(9, 7, 3)), "PNG", save_all=True,
                                    append_images=[Image.fromarray(sky(9, 7, 3, seed=1))]), (18, 14, 3), np.uint8),
    "tiled.tif": (lambda: tiff_bytes(sky(40, 33), tile=(16, 16)), (80, 66), np.uint8),
}


def read_back(path) -> np.ndarray:
    if png.is_png16(str(path)):
        return png.read_png16(str(path))
    if str(path).endswith(".tif"):
        tifffile = pytest.importorskip("tifffile")

        return tifffile.imread(str(path))
    with Image.open(path) as im:
        return np.asarray(im)


@pytest.mark.parametrize("name", sorted(ACCEPTED_INPUTS))
def test_unusual_valid_input_is_upscaled(tmp_path, weights_file, capsys, name):
    build, shape, dtype = ACCEPTED_INPUTS[name]
    source = tmp_path / name
    source.write_bytes(build())
    target = tmp_path / ("out" + os.path.splitext(name)[1].replace(".jpg", ".png"))
    code, out, err = run_cli(["upscale", str(source), "-o", str(target), "--weights", weights_file], capsys)
    assert code == EXIT_OK, err
    got = read_back(target)
    assert (got.shape, got.dtype) == (shape, dtype), f"{name}: got {got.shape} {got.dtype}"


@pytest.mark.parametrize("name", ["rgb16_big_endian.tif", "gray16_big_endian.tif"])
def test_big_endian_16bit_values_survive(tmp_path, weights_file, capsys, name):
    """Byte order must not scramble samples: the output equals upscale() of the native array."""
    from srcnn_np import upscale

    source = tmp_path / name
    source.write_bytes(ACCEPTED_INPUTS[name][0]())
    pixels = imageio.read_image(source).pixels
    assert pixels.dtype == np.uint16 and pixels.dtype.byteorder in "=|"
    want_pixels = sky(9, 7, 3, np.uint16) if "rgb" in name else sky(9, 7, dtype=np.uint16)
    np.testing.assert_array_equal(pixels, want_pixels)
    code, _, err = run_cli(["upscale", str(source), "-o", str(tmp_path / "o.tif"), "--weights", weights_file],
                           capsys)
    assert code == EXIT_OK, err
    want = imageio.quantize(upscale(want_pixels, random_weights(9)), 16)
    np.testing.assert_array_equal(read_back(tmp_path / "o.tif"), want)


def test_outputs_are_complete_and_readable_by_others(tmp_path, weights_file, capsys):
    """Atomic writes go through a private temp file; the output itself gets the usual 0666 & ~umask."""
    Image.fromarray(sky(6, 6, 3)).save(tmp_path / "in.png")
    old_umask = os.umask(0o027)
    try:
        code, _, err = run_cli(["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "o.png"),
                                "--weights", weights_file], capsys)
    finally:
        os.umask(old_umask)
    assert code == EXIT_OK, err
    assert oct((tmp_path / "o.png").stat().st_mode & 0o777) == oct(0o640)
    assert sorted(os.listdir(tmp_path)) == ["in.png", "o.png"]


# ---------------------------------------------------------------- the whole corpus in one real process


def test_corpus_as_one_batch_in_a_subprocess(tmp_path, weights_file):
    """All bad inputs in one directory (plus a FIFO, a broken link and a link loop) next to one good
    image, in a real process: no traceback, no hang, every bad file named, the good one done."""
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    for name, (build, _) in BAD_INPUTS.items():
        (src / name).write_bytes(build())
    os.mkfifo(src / "fifo.png")
    os.symlink(src / "missing.png", src / "dangling.png")
    os.symlink(src / "loop_a.png", src / "loop_b.png")
    os.symlink(src / "loop_b.png", src / "loop_a.png")
    Image.fromarray(sky(6, 6, 3)).save(src / "good.png")
    bad_names = sorted(BAD_INPUTS) + ["dangling.png", "fifo.png", "loop_a.png", "loop_b.png"]
    before = snapshot(src)
    done = subprocess.run([sys.executable, "-m", "srcnn_np", "upscale", str(src), "-o", str(out), "-q",
                           "--weights", weights_file], capture_output=True, text=True, cwd=REPO,
                          timeout=SUBPROCESS_TIMEOUT)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == EXIT_FAILED, done.stderr
    assert f"{len(bad_names)} input(s) failed, 1 done" in done.stderr, done.stderr
    failed_lines = done.stderr.strip().splitlines()[1:]
    assert len(failed_lines) == len(bad_names), done.stderr
    for name in bad_names:
        assert any(str(src / name) in line for line in failed_lines), f"{name} not reported:\n{done.stderr}"
    assert sorted(os.listdir(out)) == ["good_x2.png"]
    assert snapshot(src) == before


# ---------------------------------------------------------------- filesystem trouble


def test_input_and_output_paths_that_are_not_files(tmp_path, weights_file, capsys):
    Image.fromarray(sky(6, 6, 3)).save(tmp_path / "in.png")
    (tmp_path / "adir.png").mkdir()
    os.symlink(tmp_path / "loop2.png", tmp_path / "loop1.png")
    os.symlink(tmp_path / "loop1.png", tmp_path / "loop2.png")
    os.mkfifo(tmp_path / "fifo.png")
    before = snapshot(tmp_path)
    cases = [
        ([str(tmp_path / "adir.png"), "-o", str(tmp_path / "o.png")], EXIT_USAGE, "no input images found"),
        ([str(tmp_path / "loop1.png"), "-o", str(tmp_path / "o.png")], EXIT_FAILED,
         "loop1.png: too many levels of symbolic links"),
        ([str(tmp_path / "fifo.png"), "-o", str(tmp_path / "o.png")], EXIT_FAILED,
         "fifo.png: not a regular file"),
        ([str(tmp_path / "in.png"), "-o", str(tmp_path / "nodir" / "o.png")], EXIT_FAILED,
         "o.png: cannot write (no such file or directory)"),
        ([str(tmp_path / "in.png"), str(tmp_path / "in.png"), "-o", str(tmp_path / "in.png")], EXIT_USAGE,
         "in.png: cannot create output directory (File exists)"),
    ]
    for args, status, fragment in cases:
        code, _, err = run_cli(["upscale", *args, "--weights", weights_file], capsys)
        assert code == status, f"{args}: exit {code}, {err}"
        assert_one_line_naming(err, "", fragment)
    assert snapshot(tmp_path) == before


def test_output_that_is_a_directory_or_symlink_is_not_clobbered(tmp_path, weights_file, capsys):
    Image.fromarray(sky(6, 6, 3)).save(tmp_path / "in.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "in_x2.png").mkdir()  # where directory mode would write in.png's output
    (tmp_path / "out" / "in_x2.png" / "inside.txt").write_bytes(b"kept")
    (tmp_path / "precious.png").write_bytes(b"precious")
    os.symlink(tmp_path / "precious.png", tmp_path / "link_out.png")
    before = snapshot(tmp_path)
    for args, fragment in [([str(tmp_path / "link_out.png")], "link_out.png: exists"),
                           ([str(tmp_path / "out")], "in_x2.png: exists"),
                           ([str(tmp_path / "out"), "--overwrite"], "in_x2.png: cannot write (is a directory)")]:
        code, _, err = run_cli(["upscale", str(tmp_path / "in.png"), "-o", *args, "--weights", weights_file], capsys)
        assert code == EXIT_FAILED
        assert_one_line_naming(err, "", fragment)
        assert snapshot(tmp_path) == before
    # --overwrite replaces the link itself, never the file it points to
    code, _, err = run_cli(["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "link_out.png"),
                            "--weights", weights_file, "--overwrite"], capsys)
    assert code == EXIT_OK, err
    assert (tmp_path / "precious.png").read_bytes() == b"precious"
    assert not (tmp_path / "link_out.png").is_symlink()


def without_file_permissions():
    """Command prefix that runs a child without root's permission override, or None if impossible."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        return None
    drop = "-dac_override,-dac_read_search"
    probe = subprocess.run(["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}", "--", "true"],
                           capture_output=True)
    return ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}", "--"] if probe.returncode == 0 else None


def test_unreadable_input_and_unwritable_output_directory(tmp_path, weights_file):
    prefix = without_file_permissions()
    if prefix is None:
        pytest.skip("running as root without setpriv: cannot take away root's file permission override")
    Image.fromarray(sky(6, 6, 3)).save(tmp_path / "secret.png")
    Image.fromarray(sky(6, 6, 3)).save(tmp_path / "open.png")
    (tmp_path / "readonly").mkdir()
    (tmp_path / "locked").mkdir()
    Image.fromarray(sky(6, 6, 3)).save(tmp_path / "locked" / "x.png")
    before = snapshot(tmp_path)
    os.chmod(tmp_path / "secret.png", 0)
    os.chmod(tmp_path / "readonly", 0o555)
    os.chmod(tmp_path / "locked", 0)

    def cli(*args):
        done = subprocess.run([*prefix, sys.executable, "-m", "srcnn_np", "upscale", *args, "-q",
                               "--weights", weights_file], capture_output=True, text=True, cwd=REPO,
                              timeout=SUBPROCESS_TIMEOUT)
        assert "Traceback" not in done.stderr, done.stderr
        return done.returncode, done.stderr

    try:
        code, err = cli(str(tmp_path / "secret.png"), "-o", str(tmp_path / "o.png"))
        assert code == EXIT_FAILED
        assert_one_line_naming(err, "secret.png", "permission denied")
        code, err = cli(str(tmp_path / "open.png"), "-o", str(tmp_path / "readonly" / "o.png"))
        assert code == EXIT_FAILED
        assert_one_line_naming(err, "o.png", "cannot write (permission denied)")
        code, err = cli(str(tmp_path / "locked"), str(tmp_path / "open.png"), "-o", str(tmp_path / "readonly" / "b"))
        assert code == EXIT_USAGE
        assert_one_line_naming(err, "readonly/b", "cannot create output directory (permission denied)")
        code, err = cli(str(tmp_path / "locked"), str(tmp_path / "open.png"), "-o", str(tmp_path / "batch"))
        assert code == EXIT_FAILED and "1 input(s) failed, 1 done" in err
        assert "locked: cannot list directory (permission denied)" in err.lower()
    finally:
        os.chmod(tmp_path / "secret.png", before[tmp_path / "secret.png"][0])
        os.chmod(tmp_path / "readonly", before[tmp_path / "readonly"][0])
        os.chmod(tmp_path / "locked", before[tmp_path / "locked"][0])
    assert sorted(os.listdir(tmp_path / "batch")) == ["open_x2.png"]
    shutil.rmtree(tmp_path / "batch")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("fmt", ["png", "jpg", "tif", "png16"])
def test_disk_full_leaves_nothing_behind(tmp_path, weights_file, capsys, monkeypatch, fmt):
    """ENOSPC in the middle of encoding: one line, no partial file, the old output untouched."""
    real_open = open
    written = []

    class FullDisk:
        """A file that accepts 100 bytes, then fails like a full disk."""

        def __init__(self, f):
            self.f, self.name = f, f.name

        def write(self, data):
            room = 100 - sum(written)
            if len(data) > room:
                written.append(self.f.write(bytes(data[:room])))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written.append(len(data))
            return self.f.write(data)

        def writelines(self, parts):
            for p in parts:
                self.write(p)

        def fileno(self):  # no descriptor: encoders must write through write()
            raise io.UnsupportedOperation("fileno")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def full_disk_open(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        return FullDisk(f) if "w" in mode and str(path).endswith(".tmp") else f

    if fmt == "png16":
        save_png(tmp_path / "in.png", sky(16, 16, 3, np.uint16))
        target = tmp_path / "out.png"
    else:
        Image.fromarray(sky(16, 16, 3)).save(tmp_path / "in.png")
        target = tmp_path / f"out.{fmt}"
    for overwrite in (False, True):
        if overwrite:
            target.write_bytes(b"the previous result")
        before = snapshot(tmp_path)
        written.clear()
        monkeypatch.setattr(imageio, "open", full_disk_open, raising=False)
        code, _, err = run_cli(["upscale", str(tmp_path / "in.png"), "-o", str(target), "--weights", weights_file]
                               + (["--overwrite"] if overwrite else []), capsys)
        monkeypatch.undo()
        assert code == EXIT_FAILED
        assert_one_line_naming(err, target.name, "cannot write (no space left on device)")
        assert written, "the injected full disk was never written to"
        assert snapshot(tmp_path) == before


# ---------------------------------------------------------------- weights


def npz_bytes(members: dict, compression=zipfile.ZIP_STORED) -> bytes:
    """A zip of name -> bytes members (names get .npy appended)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name + ".npy", data)
    return buf.getvalue()


def npy(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def valid_members(**overrides) -> dict:
    arrays = {"magic": np.int32(WEIGHTS_MAGIC), "format_version": np.int32(FORMAT_VERSION), "scale": np.int32(2),
              "meta": np.frombuffer(b"{}", np.uint8), **random_weights(1).arrays()}
    members = {name: npy(a) for name, a in arrays.items()}
    members.update(overrides)
    return members


def npy_header_claiming(shape, dtype="<f4") -> bytes:
    """A .npy header that claims `shape`, followed by only 16 bytes of data."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode("latin1")
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"\0" * 16


BAD_WEIGHTS = {
    "huge_conv_claim.npz": (lambda: npz_bytes(valid_members(**{"conv2.weight": npy_header_claiming((40000, 40000))})),
                            "conv2.weight has shape (40000, 40000)"),
    "huge_meta_claim.npz": (lambda: npz_bytes(valid_members(meta=npy_header_claiming((1 << 40,), "|u1"))),
                            "meta must be a 1-D byte array"),
    "version_2.npz": (lambda: npz_bytes(valid_members(format_version=npy(np.int32(2)))), "format_version 2"),
    "scale_claims_huge_array.npz": (lambda: npz_bytes(valid_members(scale=npy_header_claiming((1 << 20, 1 << 20), "<i4"))),
                         "scale has shape"),
    "member_zip_bomb.npz": (lambda: npz_bytes(valid_members(**{"conv1.bias": b"\0" * 30_000_000}),
                                              zipfile.ZIP_DEFLATED), "conv1.bias claims 30000000 bytes"),
    "not_npy_member.npz": (lambda: npz_bytes(valid_members(**{"conv1.bias": b"plain text"})),
                           "conv1.bias is not a valid .npy array"),
}


@pytest.mark.parametrize("name", sorted(BAD_WEIGHTS))
def test_tampered_weights_refused_before_allocating(tmp_path, capsys, name):
    """Exit 2, one line naming the weights file, and far less memory than the file claims."""
    import tracemalloc

    build, fragment = BAD_WEIGHTS[name]
    path = tmp_path / name
    path.write_bytes(build())
    Image.fromarray(sky(5, 5)).save(tmp_path / "in.png")
    before = snapshot(tmp_path)
    tracemalloc.start()
    try:
        code, _, err = run_cli(["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "o.png"),
                                "--weights", str(path)], capsys)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == EXIT_USAGE
    assert_one_line_naming(err, str(path), fragment)
    assert peak < 4 * path.stat().st_size + 8_000_000, f"peak {peak} bytes for a {path.stat().st_size}-byte file"
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------- Ctrl-C


def signal_batch_after_first_output(cmd, out, signum):
    """Run the batch `cmd` writing PNGs into `out`, send `signum` once the first output appears;
    (exit status, stdout, stderr)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        deadline = time.monotonic() + SUBPROCESS_TIMEOUT
        while not (out.is_dir() and any(n.endswith("_x2.png") for n in os.listdir(out))):
            assert proc.poll() is None, f"finished before it could be interrupted: {proc.communicate()}"
            assert time.monotonic() < deadline, "no output appeared"
            time.sleep(0.02)
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=SUBPROCESS_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, stdout, stderr


def sky_batch(src, count):
    """`count` 384x384 RGB PNGs in src (~0.4 s each on 2 cores: time to interrupt); their names."""
    src.mkdir()
    names = [f"img{i}.png" for i in range(count)]
    for i, name in enumerate(names):
        Image.fromarray(sky(384, 384, 3, seed=i)).save(src / name)
    return names


@pytest.mark.parametrize("signum, status, word", [(signal.SIGINT, EXIT_INTERRUPTED, "interrupted"),
                                                   (signal.SIGTERM, EXIT_TERMINATED, "terminated")])
def test_signal_mid_batch_then_resume(tmp_path, weights_file, signum, status, word):
    """SIGINT (Ctrl-C) or SIGTERM after the first output appears: exit 130 or 143, every output present
    is complete, no temp files; re-running with --skip-existing finishes the rest without touching
    the finished ones."""
    src, out = tmp_path / "src", tmp_path / "out"
    names = sky_batch(src, 6)
    cmd = [sys.executable, "-m", "srcnn_np", "upscale", str(src), "-o", str(out), "-q", "--weights", weights_file]
    code, _, err = signal_batch_after_first_output(cmd, out, signum)
    assert code == status, err
    assert "Traceback" not in err and word in err, err
    finished = sorted(os.listdir(out))
    assert all(n.endswith("_x2.png") for n in finished), f"temp files left: {finished}"
    assert 1 <= len(finished) < len(names), f"interrupt came too late to test anything: {finished}"
    for n in finished:
        with Image.open(out / n) as im:
            im.load()  # decodes completely: not truncated
            assert im.size == (768, 768)
    first = snapshot(out)
    done = subprocess.run(cmd + ["--skip-existing"], capture_output=True, text=True, cwd=REPO,
                          timeout=SUBPROCESS_TIMEOUT)
    assert done.returncode == EXIT_OK, done.stderr
    assert sorted(os.listdir(out)) == sorted(n.replace(".png", "_x2.png") for n in names)
    assert {p: v for p, v in snapshot(out).items() if p in first} == first  # finished ones untouched


def test_interrupted_batch_reports_every_output_it_finished(tmp_path, weights_file):
    """Ctrl-C after the first output appears: each output on disk has its 'IN -> OUT' line (the
    write in flight when the interrupt came is finished and reported, not finished silently)."""
    src, out = tmp_path / "src", tmp_path / "out"
    sky_batch(src, 6)
    cmd = [sys.executable, "-m", "srcnn_np", "upscale", str(src), "-o", str(out), "--weights", weights_file]
    code, stdout, err = signal_batch_after_first_output(cmd, out, signal.SIGINT)
    assert code == EXIT_INTERRUPTED, err
    reported = {line.split(" (")[0] for line in stdout.splitlines()}
    on_disk = {f"{src / n.replace('_x2.png', '.png')} -> {out / n}" for n in os.listdir(out)}
    assert on_disk and on_disk <= reported, f"on disk but not reported: {sorted(on_disk - reported)}; stdout: {stdout!r}"


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs (root only), unmounted afterwards; skips where mounting is not allowed."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)],
                             capture_output=True) if shutil.which("mount") and os.geteuid() == 0 else None
    if mounted is None or mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the injected ENOSPC test covers this")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_real_full_disk(tmp_path, tiny_disk, weights_file, capsys):
    """A real ENOSPC from a 64 KiB tmpfs: the small output fits, the big one fails cleanly, the
    previous big output survives --overwrite, and no temp file is left on the full disk."""
    Image.fromarray(sky(8, 8, 3)).save(tmp_path / "small.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (96, 96, 3), np.uint8)).save(tmp_path / "noise.png")
    (tiny_disk / "noise_x2.png").write_bytes(b"x" * 50_000)  # an earlier result, and less room left
    before = snapshot(tiny_disk)
    code, _, err = run_cli(["upscale", str(tmp_path / "small.png"), str(tmp_path / "noise.png"), "-o",
                            str(tiny_disk), "--overwrite", "-q", "--weights", weights_file], capsys)
    assert code == EXIT_FAILED
    assert "1 input(s) failed, 1 done" in err and "noise_x2.png: cannot write (no space left on device)" in err, err
    assert sorted(os.listdir(tiny_disk)) == ["noise_x2.png", "small_x2.png"]
    assert snapshot(tiny_disk)[tiny_disk / "noise_x2.png"] == before[tiny_disk / "noise_x2.png"]
    with Image.open(tiny_disk / "small_x2.png") as im:
        im.load()


def test_closed_stdout_does_not_stop_the_batch(tmp_path, weights_file):
    """`srcnn-np upscale dir -o out | head -1`: the reader leaves, every file is still done, no traceback."""
    tiny_pngs(tmp_path / "src", 3)
    proc = subprocess.Popen([sys.executable, "-m", "srcnn_np", "upscale", str(tmp_path / "src"), "-o",
                             str(tmp_path / "out"), "--weights", weights_file], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=REPO)
    proc.stdout.close()  # the reader is gone before the first line is written
    try:
        err = proc.stderr.read().decode()
        proc.wait(timeout=SUBPROCESS_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == EXIT_OK and "Traceback" not in err and "Broken" not in err, err
    assert sorted(os.listdir(tmp_path / "out")) == ["0_x2.png", "1_x2.png", "2_x2.png"]


@pytest.mark.parametrize("kind", ["dev_zero", "fifo", "sparse_3GB", "encrypted_member", "unknown_compression"])
def test_weights_from_hostile_files(tmp_path, kind):
    """load_weights in a child limited to 1 GiB of address space and 10 s: a WeightsError naming
    the file, never a hang, a MemoryError or another exception."""
    path = {"dev_zero": "/dev/zero"}.get(kind, str(tmp_path / f"{kind}.npz"))
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "sparse_3GB":
        with open(path, "wb") as f:
            f.truncate(3 << 30)
    elif kind in ("encrypted_member", "unknown_compression"):
        data = bytearray(npz_bytes(valid_members()))
        local, central = data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02")
        if kind == "encrypted_member":  # general purpose flag bit 0
            data[local + 6] |= 1
            data[central + 8] |= 1
        else:  # compression method 99
            data[local + 8] = data[central + 10] = 99
        with open(path, "wb") as f:
            f.write(data)
    child = ("import resource, sys\n"
             "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
             "from srcnn_np.weights import WeightsError, load_weights\n"
             "try:\n"
             "    load_weights(sys.argv[1])\n"
             "except WeightsError as e:\n"
             "    print(e)\n")
    try:
        done = subprocess.run([sys.executable, "-c", child, path], capture_output=True, text=True, cwd=REPO,
                              timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"load_weights({path}) hangs")
    assert done.returncode == 0 and done.stderr == "", done.stderr[-2000:]
    assert done.stdout.startswith(path) and len(done.stdout.strip().splitlines()) == 1, done.stdout


@pytest.mark.parametrize("where", ["reading", "upscaling", "encoding"])
def test_interrupt_at_each_stage_leaves_no_trace(tmp_path, weights_file, capsys, monkeypatch, where):
    """KeyboardInterrupt while the 2nd of 3 inputs is read, upscaled or half-written: exit 130, the 1st
    output complete, nothing else written (no temp file), the old 2nd output untouched (--overwrite)."""
    import srcnn_np.batch
    import srcnn_np.model

    tiny_pngs(tmp_path / "src", 3, channels=3)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "1_x2.png").write_bytes(b"the previous result")
    calls = []

    def interrupted_on_second_call(real):
        def wrapper(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                if where == "encoding":
                    args[0].write(b"\x89PNG partial")
                raise KeyboardInterrupt
            return real(*args, **kwargs)
        return wrapper

    module, name = {"reading": (srcnn_np.batch, "read_any"), "upscaling": (srcnn_np.model.Upscaler, "__call__"),
                    "encoding": (imageio, "_encode")}[where]
    monkeypatch.setattr(module, name, interrupted_on_second_call(getattr(module, name)))
    before = snapshot(tmp_path / "out")
    code, _, err = run_cli(["upscale", str(tmp_path / "src"), "-o", str(tmp_path / "out"), "--overwrite", "-q",
                            "--weights", weights_file], capsys)
    assert code == EXIT_INTERRUPTED and err.strip() == "srcnn-np: interrupted", err
    assert sorted(os.listdir(tmp_path / "out")) == ["0_x2.png", "1_x2.png"]
    assert snapshot(tmp_path / "out")[tmp_path / "out" / "1_x2.png"] == before[tmp_path / "out" / "1_x2.png"]
    with Image.open(tmp_path / "out" / "0_x2.png") as im:
        im.load()
        assert im.size == (16, 16)


def test_closed_stderr_does_not_stop_the_batch(tmp_path, weights_file):
    """Run with file descriptor 2 closed (`2>&-`, as some cron setups do): the batch is still done."""
    tiny_pngs(tmp_path / "src", 2)
    done = subprocess.run([sys.executable, "-m", "srcnn_np", "upscale", str(tmp_path / "src"), "-o",
                           str(tmp_path / "out"), "--weights", weights_file], stdout=subprocess.PIPE,
                          preexec_fn=lambda: os.close(2), cwd=REPO, timeout=SUBPROCESS_TIMEOUT)
    assert done.returncode == EXIT_OK, done.stdout
    assert sorted(os.listdir(tmp_path / "out")) == ["0_x2.png", "1_x2.png"]


# ---------------------------------------------------------------- FITS through the CLI


def fits_file_bytes(data=None, **cards) -> bytes:
    from astropy.io import fits

    hdu = fits.PrimaryHDU(data)
    for key, value in cards.items():
        hdu.header[key] = value
    buf = io.BytesIO()
    hdu.writeto(buf)
    return buf.getvalue()


BAD_FITS = {
    "empty.fits": (lambda: b"", ""),
    "text.fits": (lambda: b"This is not FITS.\n" * 200, ""),
    "truncated_header.fits": (lambda: fits_file_bytes(np.ones((8, 8), np.float32))[:1000], ""),
    "truncated_data.fits": (lambda: fits_file_bytes(np.ones((64, 64), np.float32))[:2880 + 5000], ""),
    "no_data.fits": (lambda: fits_file_bytes(None), "no image"),
    "one_axis.fits": (lambda: fits_file_bytes(np.ones(16, np.float32)), "no image"),
    "nan_only.fits": (lambda: fits_file_bytes(np.full((8, 8), np.nan, np.float32)), "NaN"),
    "inf_only.fits": (lambda: fits_file_bytes(np.full((8, 8), np.inf, np.float32)), ""),
    "blank_only_int.fits": (lambda: fits_file_bytes(np.full((8, 8), -1, np.int16), BLANK=-1), ""),
}


@pytest.fixture(scope="module")
def fits_cli():
    """Skip unless astropy is installed and the CLI upscales FITS (FITS is being wired in)."""
    pytest.importorskip("astropy")
    return fits_cli_works()


def fits_cli_works() -> bool:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "ok.fits"), "wb") as f:
            f.write(fits_file_bytes(np.arange(30, dtype=np.float32).reshape(6, 5)))
        try:
            code = main(["upscale", os.path.join(d, "ok.fits"), "-o", os.path.join(d, "out.fits"), "-q"])
        except SystemExit:
            code = None
        return code == EXIT_OK and os.path.exists(os.path.join(d, "out.fits"))


@pytest.mark.parametrize("name", sorted(BAD_FITS))
def test_bad_fits_fails_cleanly(tmp_path, capsys, fits_cli, name):
    if not fits_cli:
        pytest.skip("the CLI does not upscale FITS files yet")
    build, fragment = BAD_FITS[name]
    source = tmp_path / name
    source.write_bytes(build())
    (tmp_path / "keep.fits").write_bytes(b"an earlier result")
    before = snapshot(tmp_path)
    code, out, err = run_cli(["upscale", str(source), "-o", str(tmp_path / "o.fits")], capsys)
    assert code == EXIT_FAILED, f"exit {code}; stdout {out!r}; stderr {err!r}"
    assert_one_line_naming(err, str(source), fragment)
    assert snapshot(tmp_path) == before


def test_unexpected_error_fails_one_file_not_the_batch(tmp_path, weights_file, capsys, monkeypatch):
    """A bug hit by one input (here: RuntimeError from upscale) is that file's one-line failure."""
    import srcnn_np.model

    tiny_pngs(tmp_path / "src", 3)
    real_call = srcnn_np.model.Upscaler.__call__

    def buggy_call(self, image, *args, **kwargs):
        if image[0, 0] == sky(8, 8, seed=1)[0, 0]:
            raise RuntimeError("boom\nsecond line")
        return real_call(self, image, *args, **kwargs)

    assert sky(8, 8, seed=1)[0, 0] not in (sky(8, 8, seed=0)[0, 0], sky(8, 8, seed=2)[0, 0])
    monkeypatch.setattr(srcnn_np.model.Upscaler, "__call__", buggy_call)
    code, _, err = run_cli(["upscale", str(tmp_path / "src"), "-o", str(tmp_path / "out"), "-q",
                            "--weights", weights_file], capsys)
    assert code == EXIT_FAILED
    assert err.strip().splitlines() == ["srcnn-np: 1 input(s) failed, 2 done:",
                                        f"  {tmp_path / 'src' / '1.png'}: internal error (RuntimeError: boom); "
                                        "please report it"]
    assert sorted(os.listdir(tmp_path / "out")) == ["0_x2.png", "2_x2.png"]


def test_fits_corpus_as_one_batch_in_a_subprocess(tmp_path, fits_cli):
    """The bad FITS files (the damaged headers the fuzzer found, except the NAXIS hang, and a FIFO) next
    to a good one, in a real process: one line each on the real stderr (astropy's log lines and warnings
    would add more), no traceback, only the good output written."""
    from .test_fuzz import FITS_FOUND_BY_FUZZING

    if not fits_cli:
        pytest.skip("the CLI does not upscale FITS files yet")
    src = tmp_path / "src"
    src.mkdir()
    for name, (build, _) in BAD_FITS.items():
        (src / name).write_bytes(build())
    for name, (data, _) in FITS_FOUND_BY_FUZZING.items():
        (src / f"{name}.fits").write_bytes(data)
    os.mkfifo(src / "pipe.fits")
    (src / "good.fits").write_bytes(fits_file_bytes(np.arange(30, dtype=np.float32).reshape(6, 5)))
    bad_names = sorted(n for n in os.listdir(src) if n != "good.fits")
    before = snapshot(src)
    done = subprocess.run([sys.executable, "-m", "srcnn_np", "upscale", str(src), "-o", str(tmp_path / "out"), "-q"],
                          capture_output=True, text=True, cwd=REPO, timeout=SUBPROCESS_TIMEOUT)
    assert "Traceback" not in done.stderr and done.returncode == EXIT_FAILED, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0] == f"srcnn-np: {len(bad_names)} input(s) failed, 1 done:", done.stderr
    assert len(lines) == 1 + len(bad_names), done.stderr
    for name in bad_names:
        assert any(line.startswith(f"  {src / name}: ") for line in lines), f"{name} not reported:\n{done.stderr}"
    assert sorted(os.listdir(tmp_path / "out")) == ["good_x2.fits"]
    assert snapshot(src) == before


def test_quiet_decoders_restores_stderr_and_warnings_across_threads():
    """A --scheduler worker decodes in several threads: silencing must nest across them and end with
    stderr and the warning filters exactly as they were."""
    import threading
    import warnings

    filters = list(warnings.filters)
    stderr_file = os.fstat(2)

    loud = []  # fstat of fd 2 seen inside, when it was still the real stderr

    def decode_many():
        for _ in range(500):
            with imageio.quiet_decoders():
                inside = os.fstat(2)
                if (inside.st_dev, inside.st_ino) == (stderr_file.st_dev, stderr_file.st_ino):
                    loud.append(inside)
    threads = [threading.Thread(target=decode_many) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not loud, f"stderr was not silenced {len(loud)} times"
    assert warnings.filters == filters
    assert (os.fstat(2).st_dev, os.fstat(2).st_ino) == (stderr_file.st_dev, stderr_file.st_ino)


def test_xisf_and_fits_archive_corpus_as_one_batch_in_a_subprocess(tmp_path):
    """Hostile XISF files (tests/test_xisf.py) and damaged .fits.gz / .fits.fz files
    (tests/test_fits_archives.py) beside a good XISF and a file of another type, in a real process:
    the other file is named as skipped, each bad file gets one line on the real stderr holding its
    reason, no traceback, only the good output is written, no input is changed."""
    pytest.importorskip("astropy")
    pytest.importorskip("xisf")
    from .test_fits_archives import damaged_archives
    from .test_xisf import HOSTILE_XISF, good

    src = tmp_path / "src"
    src.mkdir()
    reasons = {name: fragment for name, (build, fragment) in HOSTILE_XISF.items()}
    for name, (build, _) in HOSTILE_XISF.items():
        (src / name).write_bytes(build())
    for name, (data, fragment) in damaged_archives(src).items():
        (src / name).write_bytes(data)
        reasons[name] = fragment
    (src / "good.xisf").write_bytes(good())
    (src / "log.txt").write_text("observing log")
    before = snapshot(src)
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "srcnn_np", "upscale", str(src), "-o", str(out), "-q"],
                          capture_output=True, text=True, cwd=REPO, timeout=SUBPROCESS_TIMEOUT)
    assert "Traceback" not in done.stderr and done.returncode == EXIT_FAILED, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[:2] == [f"srcnn-np: skipping {src / 'log.txt'}: not a supported file type (.txt)",
                         f"srcnn-np: {len(reasons)} input(s) failed, 1 done:"], done.stderr
    assert len(lines) == 2 + len(reasons), done.stderr
    for name, fragment in reasons.items():
        assert any(line.startswith(f"  {src / name}: ") and fragment in line for line in lines), \
            f"{name} ({fragment}) not reported:\n{done.stderr}"
    assert sorted(os.listdir(out)) == ["good_x2.xisf"]
    assert snapshot(src) == before
