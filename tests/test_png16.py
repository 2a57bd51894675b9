"""The 16-bit PNG reader (srcnn_np.io.png): round trips through the package's writer, every filter type
and Adam7 through an independent test encoder, cross-checks against Pillow, byte order by hand, and
corrupt or truncated files."""
import io
import zlib

import numpy as np
import pytest
from PIL import Image

from srcnn_np.io.png import is_png16, read_png16, write_png

SHAPES = [(1, 1), (1, 7), (13, 5), (64, 65)]
CHANNELS = [1, 2, 3, 4]
COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def random_image(shape, channels, seed=0):
    """(H, W) uint16 for one channel, else (H, W, C) uint16, full range."""
    full = shape if channels == 1 else (*shape, channels)
    return np.random.default_rng(seed).integers(0, 65536, full, dtype=np.uint16)


def assert_same(got, want):
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, got.dtype, want.shape, want.dtype)
    bad = np.argwhere(got != want)
    assert bad.size == 0, f"{len(bad)} samples differ, first at {bad[0]}: got {got[tuple(bad[0])]}, want {want[tuple(bad[0])]}"


# --- a tiny independent encoder: numpy filters from the PNG spec, any filter per row, optional Adam7 ---

def chunk(kind, payload):
    return len(payload).to_bytes(4, "big") + kind + payload + zlib.crc32(kind + payload).to_bytes(4, "big")


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def filtered_scanlines(image, filter_types):
    """(H, W, C) uint16 -> bytes of H scanlines, row y filtered with filter_types[y % len(filter_types)]."""
    height, width, channels = image.shape
    bpp = 2 * channels
    rows = image.astype(">u2").view(np.uint8).reshape(height, width * bpp).astype(np.int32)
    left = np.pad(rows, ((0, 0), (bpp, 0)))[:, :-bpp]
    up = np.pad(rows, ((1, 0), (0, 0)))[:-1]
    up_left = np.pad(left, ((1, 0), (0, 0)))[:-1]
    predictions = [np.zeros_like(rows), left, up, (left + up) // 2, paeth(left, up, up_left)]
    out = bytearray()
    for y in range(height):
        kind = filter_types[y % len(filter_types)]
        out.append(kind)
        out += ((rows[y] - predictions[kind % 5][y]) & 0xFF).astype(np.uint8).tobytes()
    return bytes(out)


def build_png(image, filter_types=(0, 1, 2, 3, 4), interlaced=False, idat_pieces=3, extra_chunks=(),
              ihdr_size=None):
    """PNG bytes for (H, W) or (H, W, C) uint16, IDAT split in idat_pieces (one of them empty)."""
    image = image[:, :, None] if image.ndim == 2 else image
    height, width, channels = image.shape
    passes = ADAM7 if interlaced else ((0, 0, 1, 1),)
    raw = b"".join(filtered_scanlines(image[y0::dy, x0::dx], filter_types)
                   for x0, y0, dx, dy in passes if image[y0::dy, x0::dx].size)
    data = zlib.compress(raw)
    cuts = np.linspace(0, len(data), idat_pieces + 1).astype(int)
    idats = [chunk(b"IDAT", data[a:b]) for a, b in zip(cuts[:-1], cuts[1:])] + [chunk(b"IDAT", b"")]
    w, h = ihdr_size or (width, height)
    ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes((16, COLOR_TYPE[channels], 0, 0, int(interlaced)))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + b"".join(extra_chunks) + b"".join(idats)
            + chunk(b"tEXt", b"Comment\x00after the data") + chunk(b"IEND", b""))


def chunks(data):
    """(type, payload) of each chunk of PNG bytes, by hand."""
    pos, found = 8, []
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        found.append((data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]))
        pos += 12 + length
    return found


def written(image):
    buffer = io.BytesIO()
    write_png(buffer, image, compression=6)
    return buffer.getvalue()


# --- round trips and decoding ---

@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("channels", CHANNELS)
def test_round_trip(shape, channels):
    image = random_image(shape, channels)
    data = written(image)
    assert is_png16(data)
    assert_same(read_png16(io.BytesIO(data)), image)


def test_round_trip_single_channel_axis_reads_back_as_gray():
    image = random_image((13, 5), 1)
    assert_same(read_png16(io.BytesIO(written(image[:, :, None]))), image)


def test_round_trip_large_image_in_several_idat_chunks_with_several_filters():
    """A gradient with every other row noise, large enough to need more than one 1 MiB IDAT chunk."""
    y, x = np.mgrid[0:600, 0:700]
    image = np.stack([x * 90, y * 100, (x + y) * 50], axis=-1).astype(np.uint16)
    image[::2] ^= random_image((300, 700), 3, seed=1)
    data = written(image)
    idat = b"".join(payload for kind, payload in chunks(data) if kind == b"IDAT")
    assert sum(kind == b"IDAT" for kind, _ in chunks(data)) > 1
    filter_bytes = set(zlib.decompress(idat)[::1 + 700 * 6])
    assert len(filter_bytes) > 1 and filter_bytes <= {0, 1, 2, 3, 4}, filter_bytes
    assert_same(read_png16(io.BytesIO(data)), image)


def test_path_api(tmp_path):
    image = random_image((13, 5), 3)
    path = tmp_path / "rgb16.png"
    path.write_bytes(written(image))
    assert is_png16(path) and is_png16(str(path))
    assert_same(read_png16(str(path)), image)


@pytest.mark.parametrize("filter_types", [(0,), (1,), (2,), (3,), (4,), (4, 3, 2, 1, 0)])
@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("interlaced", [False, True])
def test_reads_every_filter_type(filter_types, channels, interlaced):
    for shape in SHAPES:
        image = random_image(shape, channels, seed=sum(shape))
        data = build_png(image, filter_types, interlaced,
                         extra_chunks=[chunk(b"gAMA", (45455).to_bytes(4, "big")), chunk(b"tRNS", bytes(2 * channels))])
        assert_same(read_png16(io.BytesIO(data)), image)


@pytest.mark.parametrize("interlaced", [False, True])
def test_test_encoder_agrees_with_pillow(interlaced):
    """Pillow reads 16-bit gray exactly, so it vouches for the test encoder used above."""
    image = random_image((64, 65), 1)
    with Image.open(io.BytesIO(build_png(image, interlaced=interlaced))) as im:
        assert_same(np.array(im).astype(np.uint16), image)


def test_pillow_written_gray16_reads_exactly():
    image = random_image((64, 65), 1)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG")
    assert is_png16(buffer.getvalue())
    assert_same(read_png16(io.BytesIO(buffer.getvalue())), image)


def test_pillow_reads_our_gray16_exactly_and_our_colour_as_its_high_bytes():
    gray = random_image((64, 65), 1)
    with Image.open(io.BytesIO(written(gray))) as im:
        assert im.mode in ("I;16", "I")  # Pillow 10.0 opens 16-bit gray PNG as 32-bit "I"
        np.testing.assert_array_equal(np.array(im), gray)  # values, whichever integer type holds them
    for channels, pillow_channels in ((2, [0, 3]), (3, [0, 1, 2]), (4, [0, 1, 2, 3])):
        image = random_image((13, 5), channels)
        with Image.open(io.BytesIO(written(image))) as im:  # Pillow keeps only the high byte
            assert_same(np.array(im)[..., pillow_channels], (image >> 8).astype(np.uint8))


def test_imageio_agrees_on_gray16():
    iio = pytest.importorskip("imageio.v3")
    image = random_image((13, 5), 1)
    assert_same(iio.imread(io.BytesIO(written(image)), extension=".png"), image)


def test_eight_bit_png_is_left_to_pillow():
    rgb = np.random.default_rng(0).integers(0, 256, (13, 5, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    assert not is_png16(buffer.getvalue())
    with pytest.raises(ValueError, match="not a 16-bit PNG"):
        read_png16(io.BytesIO(buffer.getvalue()))
    with Image.open(io.BytesIO(buffer.getvalue())) as im:
        assert_same(np.array(im), rgb)


@pytest.mark.parametrize("header", [b"", b"\x89PNG\r\n\x1a\n", b"GIF89a" + bytes(30), bytes(26)])
def test_is_png16_false_for_other_data(header):
    assert not is_png16(header)


# --- byte order, by hand ---

def test_big_endian_samples_by_hand():
    ihdr = (1).to_bytes(4, "big") * 2 + bytes((16, 2, 0, 0, 0))
    scanline = bytes((0, 0x01, 0x02, 0x03, 0x04, 0xA5, 0x06))  # filter None, then R, G, B big-endian
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(scanline))
            + chunk(b"IEND", b""))
    assert_same(read_png16(io.BytesIO(data)), np.array([[[0x0102, 0x0304, 0xA506]]], dtype=np.uint16))


def test_writer_stores_big_endian_samples():
    data = written(np.array([[0x0102]], dtype=np.uint16))
    (_, ihdr), (_, idat), (_, iend) = chunks(data)
    assert ihdr == (1).to_bytes(4, "big") * 2 + bytes((16, 0, 0, 0, 0)) and iend == b"", (ihdr, iend)
    scanline = zlib.decompress(idat)
    assert scanline[1:] == b"\x01\x02", scanline  # with no neighbours every filter leaves the bytes as they are


# --- corrupt, truncated, too large ---

def test_every_truncation_is_a_value_error():
    data = written(random_image((13, 5), 3))
    for cut in range(len(data)):
        with pytest.raises(ValueError):
            read_png16(io.BytesIO(data[:cut]))


def test_every_flipped_byte_is_a_value_error():
    data = bytearray(written(random_image((13, 5), 3)))
    for position in range(len(data)):
        data[position] ^= 0xFF
        with pytest.raises(ValueError):
            read_png16(io.BytesIO(bytes(data)))
        data[position] ^= 0xFF


@pytest.mark.parametrize("data, reason", [
    (build_png(random_image((4, 4), 3), filter_types=(5,)), "unknown filter type 5"),
    (build_png(random_image((4, 4), 3), ihdr_size=(4, 5)), "truncated PNG: image data ends early"),
    (build_png(random_image((4, 4), 3), ihdr_size=(4, 3)), "more image data"),
    (build_png(random_image((4, 4), 3), extra_chunks=[chunk(b"ABCD", b"")]), "unknown critical chunk"),
    (build_png(random_image((4, 4), 3))[:-12], "no IEND"),
    (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", bytes(8) + bytes((16, 2, 0, 0, 0))) + chunk(b"IEND", b""), "invalid size"),
    (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", bytes(13)[:12]) + chunk(b"IEND", b""), "IHDR is not 13 bytes"),
    (b"\x89PNG\r\n\x1a\n" + chunk(b"IDAT", b"") + chunk(b"IEND", b""), "first chunk is not IHDR"),
])
def test_corrupt_files_say_why(data, reason):
    with pytest.raises(ValueError, match=reason):
        read_png16(io.BytesIO(data))


def test_garbage_compressed_data_is_a_value_error():
    ihdr = (2).to_bytes(4, "big") * 2 + bytes((16, 0, 0, 0, 0))
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"not zlib") + chunk(b"IEND", b"")
    with pytest.raises(ValueError, match="bad compressed image data"):
        read_png16(io.BytesIO(data))


def test_refuses_too_many_pixels_before_allocating():
    huge = build_png(random_image((1, 1), 4), ihdr_size=(200_000, 200_000))  # would be 320 GB as RGBA16
    with pytest.raises(ValueError, match="too large"):
        read_png16(io.BytesIO(huge))
    with pytest.raises(ValueError, match="max_pixels=64"):
        read_png16(io.BytesIO(written(random_image((13, 5), 1))), max_pixels=64)

