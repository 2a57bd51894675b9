"""The PNG writer of srcnn_np.io.png (8 and 16 bits, bands deflated on threads): lossless at every level and thread
count, read back by Pillow and by our own 16-bit reader, one valid zlib stream, ICC profile kept."""
import io
import zlib

import numpy as np
import pytest
from PIL import Image

from srcnn_np.io import png
from srcnn_np.io.png import adler32_combine, filter_scanlines, read_png16, write_png

from .conftest import sky
from .test_png16 import assert_same, chunks

PILLOW_MODE = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def encoded(image, **options) -> bytes:
    buffer = io.BytesIO()
    write_png(buffer, image, **options)
    return buffer.getvalue()


@pytest.fixture
def small_bands(monkeypatch):
    """Bands of a few hundred bytes, so that even a small image is cut into many."""
    monkeypatch.setattr(png, "BAND_BYTES", 300)


@pytest.mark.parametrize("compression", ["rle", 0, 1, 6, 9])
@pytest.mark.parametrize("threads", [1, 4])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_8bit_round_trip_through_pillow(small_bands, compression, threads, channels):
    image = sky(37, 29, None if channels == 1 else channels, seed=channels)
    with Image.open(io.BytesIO(encoded(image, compression=compression, threads=threads))) as im:
        assert im.mode == PILLOW_MODE[channels], im.mode
        assert_same(np.asarray(im), image)


@pytest.mark.parametrize("compression", ["rle", 0, 1, 9])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_16bit_round_trip(small_bands, compression, channels):
    image = sky(23, 31, None if channels == 1 else channels, np.uint16, seed=channels)
    assert_same(read_png16(io.BytesIO(encoded(image, compression=compression, threads=3))), image)
    if channels == 1:  # Pillow reads 16-bit gray as it is: an independent decoder
        with Image.open(io.BytesIO(encoded(image, compression=compression))) as im:
            assert_same(np.asarray(im).astype(np.uint16), image)


def test_bands_join_into_the_whole_image_filtered_at_once(small_bands):
    """The zlib stream of many bands on threads inflates (Adler-32 checked) to exactly the
    scanlines of the whole image filtered in one call."""
    rng = np.random.default_rng(5)
    noise_row = rng.integers(0, 200, 150)
    ramp_row = np.arange(150) * 2
    offsets = rng.integers(0, 256, 64)[:, None]  # a random offset per row: Up costs its difference
    rows = np.where(np.arange(64)[:, None] < 32, noise_row + np.arange(64)[:, None], ramp_row + offsets)
    image = (rows % 256).astype(np.uint8).reshape(64, 50, 3)  # noise rows suit Up, ramp rows Sub
    data = encoded(image, compression="rle", threads=4)
    idat = b"".join(payload for kind, payload in chunks(data) if kind == b"IDAT")
    rows = image.reshape(64, -1)
    whole = filter_scanlines(rows, 3, 0, 64)
    assert zlib.decompress(idat) == whole.tobytes()
    assert len(set(whole[:, 0])) > 1, set(whole[:, 0])  # rows filtered differently, in different bands
    assert sum(kind == b"IDAT" for kind, _ in chunks(data)) == 1


def test_large_image_spans_several_idat_chunks():
    noise = np.random.default_rng(0).integers(0, 256, (700, 600, 3), dtype=np.uint8)  # incompressible
    data = encoded(noise, compression="rle")
    assert sum(kind == b"IDAT" for kind, _ in chunks(data)) > 1
    assert_same(np.asarray(Image.open(io.BytesIO(data))), noise)


@pytest.mark.parametrize("sizes", [(0, 5), (1, 1), (100, 3), (70000, 70000), (5, 0)])
def test_adler32_combine_matches_zlib(sizes):
    rng = np.random.default_rng(sum(sizes))
    first, second = (rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in sizes)
    got = adler32_combine(zlib.adler32(first), zlib.adler32(second), len(second))
    assert got == zlib.adler32(first + second), (hex(got), hex(zlib.adler32(first + second)))


def test_icc_profile_is_carried():
    profile = bytes(range(256)) * 3  # Pillow returns the iCCP payload as is
    with Image.open(io.BytesIO(encoded(sky(4, 4, 3), compression="rle", icc_profile=profile))) as im:
        assert im.info.get("icc_profile") == profile


def test_lower_level_is_bigger_and_level_0_stores():
    image = np.asarray(Image.effect_mandelbrot((256, 256), (-2, -1.5, 1, 1.5), 100))
    sizes = {c: len(encoded(image, compression=c)) for c in (0, 1, 9, "rle")}
    assert sizes[0] > image.size >= sizes[1] >= sizes[9], sizes
    assert sizes["rle"] < image.size / 2, sizes  # compresses: not stored


@pytest.mark.parametrize("array, compression, message", [
    (np.zeros((4, 4), np.float32), 1, "uint8 or uint16"),
    (np.zeros((4, 4, 5), np.uint8), 1, "shape (4, 4, 5)"),
    (np.zeros((0, 4), np.uint8), 1, "non-empty"),
    (np.zeros((2, 2, 5), np.uint16), 1, "shape (2, 2, 5)"),
    (np.zeros((0, 3), np.uint16), 1, "non-empty"),
    (np.zeros(4, np.uint16), 1, "shape (4,)"),
    (np.zeros((4, 4), np.uint8), 10, "got 10"),
    (np.zeros((4, 4), np.uint8), "fast", "got 'fast'"),
])
def test_bad_arguments(array, compression, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        encoded(array, compression=compression)
