"""The fuzz harness (tools/fuzz.py) in CI: a short bounded run, hypothesis over raw bytes, and the
regressions its runs found (issue 7)."""
import io
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from srcnn_np.cli import EXIT_FAILED, main
from tools import fuzz

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CI_FUZZ_SECONDS = 12


def test_bounded_fuzz_run_finds_no_crash():
    """About 12 s of mutated PNG/JPEG/TIFF/16-bit PNG through read_image: only ImageIOError escapes."""
    stats = fuzz.run(CI_FUZZ_SECONDS, seed=2026, which="image", hang_seconds=5)["image"]
    rate = stats.executions / stats.seconds
    print(f"fuzz image: {stats.executions} executions in {stats.seconds:.1f} s = {rate:.0f} exec/s")
    assert stats.executions > 100, f"only {stats.executions} executions in {stats.seconds:.1f} s"
    assert not stats.crashes, "\n".join(what for _, what in stats.crashes[:20])


@pytest.mark.parametrize("target", ["xisf", "fits"])
def test_bounded_fuzz_run_of_xisf_and_fits_archives_finds_no_crash(target):
    """About 5 s each of mutated XISF (headers included) and FITS (plain, .fits.gz, tile-compressed .fits.fz)."""
    pytest.importorskip("astropy")
    if target == "xisf":
        pytest.importorskip("xisf")
    stats = fuzz.run(5, seed=2026, which=target, hang_seconds=5)[target]
    print(f"fuzz {target}: {stats.executions} executions in {stats.seconds:.1f} s")
    assert stats.executions > 50, f"only {stats.executions} executions in {stats.seconds:.1f} s"
    assert not stats.crashes, "\n".join(what for _, what in stats.crashes[:20])


def test_harness_reports_what_escapes(monkeypatch, tmp_path):
    """The harness can fail: a decoder that leaks KeyError or hangs is reported, with its input saved."""
    calls = []

    def leaky_read_image(path, max_pixels):
        calls.append(path)
        if len(calls) == 2:
            raise KeyError("planted")
        if len(calls) == 3:
            while True:  # a hang in Python code
                pass
        raise fuzz.ImageIOError(f"{path}: fine")

    monkeypatch.setattr(fuzz, "read_image", leaky_read_image)
    stats = fuzz.run(3, seed=1, which="image", crashes_dir=str(tmp_path), hang_seconds=0.5)["image"]
    kinds = [what.split(":")[0] for _, what in stats.crashes]
    assert kinds[:2] == ["KeyError", "Hang"], stats.crashes
    assert all(os.path.exists(path) for path, _ in stats.crashes)


def image_seed_bytes():
    return [data for _, data in fuzz.image_seeds()]


@st.composite
def damaged_images(draw):
    """A valid small image with a random span replaced by random bytes, or plain random bytes."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=1024))
    seed = draw(st.sampled_from(image_seed_bytes()))
    start = draw(st.integers(0, len(seed)))
    stop = draw(st.integers(start, min(len(seed), start + 64)))
    return seed[:start] + draw(st.binary(max_size=64)) + seed[stop:]


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=damaged_images(), ext=st.sampled_from([".png", ".jpg", ".tif"]))
def test_hypothesis_raw_bytes(tmp_path, data, ext):
    path = tmp_path / ("input" + ext)
    path.write_bytes(data)
    fuzz.decode_image(str(path))  # raises on anything but a clean ImageIOError or a valid image


def tiff_with_float_strip_offsets() -> bytes:
    """Found by tools/fuzz.py (seed 0): StripOffsets typed DOUBLE made Pillow raise TypeError."""
    buf = io.BytesIO()
    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(buf, "TIFF")
    data = bytearray(buf.getvalue())
    ifd = int.from_bytes(data[4:8], "little")
    for i in range(int.from_bytes(data[ifd:ifd + 2], "little")):
        entry = ifd + 2 + 12 * i
        if int.from_bytes(data[entry:entry + 2], "little") == 273:  # StripOffsets
            data[entry + 2:entry + 4] = (12).to_bytes(2, "little")  # type DOUBLE
    return bytes(data)


def test_regression_tiff_strip_offsets_of_type_double(tmp_path, capsys):
    path = tmp_path / "float_offsets.tif"
    path.write_bytes(tiff_with_float_strip_offsets())
    code = main(["upscale", str(path), "-o", str(tmp_path / "o.tif")])
    err = capsys.readouterr().err
    assert code == EXIT_FAILED and "Traceback" not in err
    assert err.strip() == f"srcnn-np: error: {path}: cannot decode image (TypeError: 'float' object cannot be " \
                          "interpreted as an integer)"
    assert sorted(os.listdir(tmp_path)) == ["float_offsets.tif"]


# ---------------------------------------------------------------- FITS (srcnn_np.io.fits_io)


def fits_bytes(*cards, data=b"") -> bytes:
    """A one-HDU FITS file from 'KEY = value' pairs: 2880-byte header and data blocks."""
    header = b"".join(f"{k:<8}= {v:>20}".ljust(80).encode("ascii") for k, v in cards) + b"END".ljust(80)
    return header.ljust(-(-len(header) // 2880) * 2880) + data.ljust(-(-len(data) // 2880) * 2880, b"\0")


FITS_FOUND_BY_FUZZING = {
    "naxis3_missing": (fits_bytes(("SIMPLE", "T"), ("BITPIX", "8"), ("NAXIS", "3"), ("NAXIS1", "2"),
                                  ("NAXIS2", "2"), data=b"\0" * 8), "KeyError 'NAXIS3'"),
    "naxis2_missing": (fits_bytes(("SIMPLE", "T"), ("BITPIX", "8"), ("NAXIS", "2"), ("NAXIS1", "2"),
                                  data=b"\0" * 8), "KeyError 'NAXIS2'"),
    "bitpix_7": (fits_bytes(("SIMPLE", "T"), ("BITPIX", "7"), ("NAXIS", "2"), ("NAXIS1", "2"), ("NAXIS2", "2"),
                            data=b"\0" * 8), "KeyError 7"),
    "naxis_2147483647": (fits_bytes(("SIMPLE", "T"), ("BITPIX", "8"), ("NAXIS", "2147483647"), ("NAXIS1", "2"),
                                    ("NAXIS2", "2"), data=b"\0" * 8), "hangs in astropy's ImageHDU"),
    "naxis2_4294967295": (fits_bytes(("SIMPLE", "T"), ("BITPIX", "-32"), ("NAXIS", "2"), ("NAXIS1", "5"),
                                     ("NAXIS2", "4294967295"), data=b"\0" * 120),
                          "MemoryError: astropy allocates the claimed 80 GiB for a 5760-byte file"),
}


@pytest.mark.parametrize("name", sorted(FITS_FOUND_BY_FUZZING))
def test_regression_fits_headers_found_by_fuzzing(tmp_path, name):
    """read_fits in a child (4 GiB of address space, 10 s: a hang or a huge allocation must not take the
    suite down): FitsError naming the file."""
    pytest.importorskip("astropy")
    data, found = FITS_FOUND_BY_FUZZING[name]
    path = tmp_path / f"{name}.fits"
    path.write_bytes(data)
    child = ("import resource, sys\nresource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))\n"
             "from srcnn_np.io.fits_io import FitsError, read_fits\n"
             "try:\n    read_fits(sys.argv[1])\nexcept FitsError as e:\n    print(e)\n")
    try:
        done = subprocess.run([sys.executable, "-c", child, str(path)], capture_output=True, text=True, cwd=REPO,
                              check=False, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name}: read_fits still {found}")
    assert done.returncode == 0 and done.stdout.startswith(str(path)), f"{name} ({found}): {done.stderr[-1500:]}"
    assert len(done.stdout.strip().splitlines()) == 1, done.stdout


def tiff16_with_huge_strip_byte_counts() -> bytes:
    """Found by tools/fuzz.py (seed 3): a 16-bit planar RGB TIFF whose StripByteCounts claim 4 GiB
    each made tifffile allocate them (MemoryError for larger claims)."""
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, np.zeros((3, 6, 5), np.uint16), photometric="rgb", planarconfig="separate")
    data = bytearray(buf.getvalue())
    ifd = int.from_bytes(data[4:8], "little")
    for i in range(int.from_bytes(data[ifd:ifd + 2], "little")):
        entry = ifd + 2 + 12 * i
        if int.from_bytes(data[entry:entry + 2], "little") == 279:  # StripByteCounts: 3 LONGs, appended
            data[entry + 2:entry + 4] = (4).to_bytes(2, "little")
            data[entry + 8:entry + 12] = len(data).to_bytes(4, "little")
            data += b"\xff\xff\xff\xff" * 3
    return bytes(data)


def test_regression_tiff_strip_byte_counts_beyond_the_file(tmp_path):
    import tracemalloc

    from srcnn_np.io.imageio import ImageIOError, read_image

    path = tmp_path / "huge_counts.tif"
    path.write_bytes(tiff16_with_huge_strip_byte_counts())
    tracemalloc.start()
    try:
        with pytest.raises(ImageIOError) as e:
            read_image(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(e.value) == f"{path}: truncated or corrupt TIFF (strips or tiles larger than the file)"
    assert peak < 20_000_000, f"{peak} bytes allocated for a {path.stat().st_size}-byte file"
