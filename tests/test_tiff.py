"""srcnn_np.io.tiff_io: 16-bit and float TIFF through tifffile."""
import io
import sys

import numpy as np
import pytest

tifffile = pytest.importorskip("tifffile")
from srcnn_np.io.tiff_io import TIFFFILE_HINT, TiffError, read_tiff, write_tiff


def samples(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return (rng.normal(0, 1e3, shape)).astype(dtype)  # float samples keep any range
    return rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("shape", [(7, 9), (7, 9, 2), (7, 9, 3), (7, 9, 4)])
def test_round_trip_through_a_file(tmp_path, dtype, shape):
    a = samples(shape, dtype)
    path = tmp_path / "x.tif"
    write_tiff(path, a)
    back = read_tiff(path)
    assert back.dtype == np.dtype(dtype) and back.shape == a.shape, (back.dtype, back.shape)
    assert np.array_equal(back, a), np.argwhere(back != a)[:5]


def test_round_trip_through_a_file_object_and_alpha_is_tagged():
    a = samples((5, 6, 4), np.uint16)
    buf = io.BytesIO()
    write_tiff(buf, a)
    buf.seek(0)
    with tifffile.TiffFile(buf) as t:
        page = t.pages.first
        assert page.photometric == tifffile.PHOTOMETRIC.RGB
        assert tuple(page.extrasamples) == (tifffile.EXTRASAMPLE.UNASSALPHA,), page.extrasamples
    buf.seek(0)
    assert np.array_equal(read_tiff(buf), a)


def test_single_channel_and_float64_are_normalised_on_write(tmp_path):
    a = samples((4, 5, 1), np.float64)
    write_tiff(tmp_path / "x.tif", a)
    back = read_tiff(tmp_path / "x.tif")
    assert back.shape == (4, 5) and back.dtype == np.float32
    assert np.array_equal(back, a[:, :, 0].astype(np.float32))


def test_pillow_reads_what_we_write_for_16_bit_gray(tmp_path):
    from PIL import Image

    a = samples((6, 8), np.uint16)
    write_tiff(tmp_path / "g.tif", a)
    with Image.open(tmp_path / "g.tif") as im:
        got = np.asarray(im).astype(np.uint16)
    assert np.array_equal(got, a)


def test_planar_storage_is_returned_channels_last(tmp_path):
    a = samples((5, 6, 3), np.uint16)
    tifffile.imwrite(tmp_path / "p.tif", np.moveaxis(a, 2, 0), photometric="rgb", planarconfig="separate")
    back = read_tiff(tmp_path / "p.tif")
    assert back.shape == (5, 6, 3) and np.array_equal(back, a)


def test_big_endian_files_read_in_native_order_and_multi_page_ones_are_refused(tmp_path):
    a = samples((2, 5, 6), np.uint16)
    tifffile.imwrite(tmp_path / "b.tif", a[0].astype(">u2"), byteorder=">")
    back = read_tiff(tmp_path / "b.tif")
    assert back.dtype == np.dtype("=u2") and np.array_equal(back, a[0])
    tifffile.imwrite(tmp_path / "m.tif", a.astype(">u2"), byteorder=">")
    with pytest.raises(TiffError, match=r"multi-page TIFF \(2 images\)"):
        read_tiff(tmp_path / "m.tif")  # never its first page alone (tests/test_tiff_pages.py)


def test_unsupported_samples_and_shapes_raise():
    with pytest.raises(TiffError, match="int32"):
        write_tiff(io.BytesIO(), np.zeros((4, 4), np.int32))
    with pytest.raises(TiffError, match="shape"):
        write_tiff(io.BytesIO(), np.zeros((4, 4, 5), np.uint16))
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.zeros((4, 4), np.int16))
    buf.seek(0)
    with pytest.raises(TiffError, match="int16"):
        read_tiff(buf)


def test_missing_tifffile_gives_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "tifffile", None)
    with pytest.raises(ImportError) as e:
        write_tiff(io.BytesIO(), np.zeros((2, 2), np.uint16))
    assert str(e.value) == TIFFFILE_HINT
