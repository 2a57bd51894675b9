"""XISF in and out (issue 14): exact round trips, files from other writers, FITS keywords and
properties carried, the WCS rescaled as for FITS, directory mode, and hostile files refused in one line
before any large allocation."""
import base64
import os
import sys
import tracemalloc
import xml.etree.ElementTree as ET
import zlib

import numpy as np
import pytest
from PIL import Image

xisf = pytest.importorskip("xisf")
fits = pytest.importorskip("astropy.io.fits")

from srcnn_np.cli import EXIT_FAILED, EXIT_OK, main
from srcnn_np.io import xisf as xisf_io
from srcnn_np.io.formats import read_any, write_any
from srcnn_np.io.xisf import XisfError, XisfMetadata, read_xisf

from .conftest import TEST_PROVENANCE, sky
from .test_fits import add_sip, celestial_header, pixel_mismatch

NS = "{http://www.pixinsight.com/xisf}"
DATA_AT = 4096  # where xisf_bytes puts the image's data block


def xisf_bytes(data: bytes, image_attrs: str, children: str = "", *, location=None, header_length=None,
               metadata="<Metadata/>") -> bytes:
    """A monolithic XISF file written here, independently of the code under test: the preamble, the XML
    header, then `data` attached at DATA_AT. image_attrs: the Image element's attributes (geometry,
    sampleFormat...); location defaults to attachment:DATA_AT:len(data)."""
    location = location or f"attachment:{DATA_AT}:{len(data)}"
    header = (f'<?xml version="1.0" encoding="UTF-8"?><xisf version="1.0" xmlns="http://www.pixinsight.com/xisf">'
              f'<Image {image_attrs} location="{location}">{children}</Image>{metadata}</xisf>').encode()
    assert len(header) < DATA_AT - 16
    length = len(header) if header_length is None else header_length
    return (b"XISF0100" + length.to_bytes(4, "little") + b"\0" * 4 + header).ljust(DATA_AT, b"\0") + data


def planar(a: np.ndarray) -> bytes:
    """(H, W[, C]) -> the planar (channel after channel) little-endian bytes XISF stores."""
    a = a if a.ndim == 3 else a[:, :, None]
    return np.ascontiguousarray(np.moveaxis(a, -1, 0)).astype(a.dtype.newbyteorder("<")).tobytes()


def gray16(h=6, w=5):
    return sky(h, w, dtype=np.uint16, seed=4)


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("channels", [None, 3])
@pytest.mark.parametrize("bit_depth", [8, 16, 32])
def test_round_trips_are_exact(tmp_path, channels, bit_depth):
    """Stored samples survive write -> read bit for bit (uint8, uint16, float32; gray and RGB), and the
    xisf package reads our file to the same samples."""
    if bit_depth == 32:
        stored = np.random.default_rng(5).random((7, 9) + ((channels,) if channels else ())).astype(np.float32)
        as_float = stored
    else:
        dtype = np.uint8 if bit_depth == 8 else np.uint16
        stored = sky(7, 9, channels, dtype=dtype, seed=bit_depth)
        as_float = stored.astype(np.float32) / np.float32(np.iinfo(dtype).max)
    path = tmp_path / "x.xisf"
    write_any(path, as_float, "xisf", bit_depth)
    image = read_any(path)
    assert (image.format, image.bit_depth) == ("xisf", bit_depth)
    assert image.pixels.dtype == stored.dtype and image.pixels.shape == stored.shape
    assert np.array_equal(image.pixels, stored), f"max difference {np.abs(image.pixels - stored.astype(float)).max()}"
    by_package = xisf.XISF.read(str(path))
    assert np.array_equal(by_package[:, :, 0] if channels is None else by_package, stored)


@pytest.mark.parametrize("codec, shuffle", [("zlib", False), ("zlib", True), ("lz4", True), ("lz4hc", False),
                                            ("zstd", True), (None, False)])
def test_reads_what_the_xisf_package_writes(tmp_path, codec, shuffle):
    rgb = sky(16, 12, 3, dtype=np.uint16, seed=1)
    xisf.XISF.write(str(tmp_path / "p.xisf"), rgb, codec=codec, shuffle=shuffle)
    assert np.array_equal(read_xisf(tmp_path / "p.xisf", max_pixels=1000).pixels, rgb)


def test_reads_normal_storage_big_endian_bounds_and_inline_data(tmp_path):
    """Layouts the xisf package cannot read itself, from files written here."""
    rgb = sky(4, 5, 3, dtype=np.uint16, seed=2)
    normal = xisf_bytes(rgb.astype("<u2").tobytes(), 'geometry="5:4:3" sampleFormat="UInt16" colorSpace="RGB" '
                        'pixelStorage="Normal"')
    big = xisf_bytes(np.moveaxis(rgb, -1, 0).astype(">u2").tobytes(), 'geometry="5:4:3" sampleFormat="UInt16" '
                     'colorSpace="RGB" byteOrder="big"')
    counts = np.arange(20, dtype=np.float32).reshape(4, 5) * 100
    bounded = xisf_bytes(planar(counts), 'geometry="5:4:1" sampleFormat="Float32" bounds="0:1900"')
    gray = gray16(4, 5)
    inline = xisf_bytes(b"", 'geometry="5:4:1" sampleFormat="UInt16"', base64.b64encode(planar(gray)).decode(),
                        location="inline:base64")
    for name, data, want in [("normal", normal, rgb), ("big", big, rgb), ("bounds", bounded, counts / 1900),
                             ("inline", inline, gray)]:
        (tmp_path / f"{name}.xisf").write_bytes(data)
        got = read_xisf(tmp_path / f"{name}.xisf", max_pixels=100).pixels
        assert got.shape == want.shape and np.allclose(got, want, rtol=0, atol=1e-7), (name, got, want)


# ---------------------------------------------------------------- metadata and WCS


def keyword_xml(header) -> str:
    """An astropy Header as XISF FITSKeyword elements, value text as FITS writes it (PixInsight's way)."""
    out = []
    for card in header.cards:
        image = card.image
        value = image[10:].split(" /")[0].strip() if image[8:10] == "= " else ""
        comment = card.comment if card.keyword not in ("HISTORY", "COMMENT") else str(card.value)
        out.append(ET.tostring(ET.Element("FITSKeyword", name=card.keyword, value=value, comment=comment),
                               encoding="unicode"))
    return "".join(out)


def header_of(keywords) -> object:
    """(name, value text, comment) triples -> astropy Header, parsed by astropy from card text."""
    cards = []
    for name, value, comment in keywords:
        if name in ("HISTORY", "COMMENT"):
            cards.append(fits.Card(name, comment))
        else:
            cards.append(fits.Card.fromstring(f"{name:<8}= {value}" + (f" / {comment}" if comment else "")))
    return fits.Header(cards)


PROPERTIES = ('<Property id="Observation:Object:Name" type="String">M 51</Property>'
              '<Property id="Instrument:ExposureTime" type="Float64" value="300.5"/>'
              '<Property id="PCL:Calibrated" type="Boolean" value="true"/>'
              '<Property id="PCL:AstrometricSolution:ReferenceImageCoordinates" type="F64Vector" length="2" '
              f'location="inline:base64">{base64.b64encode(np.array([16.8, 12.3]).tobytes()).decode()}</Property>'
              '<Property id="PCL:AstrometricSolution:LinearTransformationMatrix" type="F64Matrix" rows="2" '
              f'columns="2" location="inline:base64">{base64.b64encode(np.array([2e-4, 3e-5, -2.5e-5, 2e-4]).tobytes()).decode()}</Property>'
              '<Property id="PCL:AstrometricSolution:SplineWorldTransformation:ControlPoints:Image" type="F64Vector" '
              f'length="2" location="inline:base64">{base64.b64encode(np.array([1.0, 2.0]).tobytes()).decode()}</Property>')


@pytest.mark.parametrize("kind", ["tan-cd", "tan-pc", "tan-sip"])
def test_upscale_rescales_the_wcs_like_fits_and_carries_the_rest(tmp_path, weights_file, capsys, kind):
    """Every output pixel centre maps to the sky position of the same input point (astropy.wcs,
    < 1e-3 output pixels); other keywords and the properties are carried; float stays float."""
    h = celestial_header("tan-cd" if kind == "tan-sip" else kind, shape=(30, 40))
    if kind == "tan-sip":
        add_sip(h)
    h["OBJECT"], h["EXPTIME"], h["FLIPPED"] = "M 51 'Whirlpool'", 300.5, True
    h.add_history("calibrated in PixInsight")
    data = np.random.default_rng(0).random((30, 40)).astype(np.float32)
    src, dst = tmp_path / "in.xisf", tmp_path / "out.xisf"
    src.write_bytes(xisf_bytes(planar(data), 'geometry="40:30:1" sampleFormat="Float32" colorSpace="Gray"',
                               keyword_xml(h) + PROPERTIES))
    code, _, err = run(["upscale", str(src), "-o", str(dst), "--weights", weights_file], capsys)
    assert code == EXIT_OK, err
    out = read_xisf(dst, max_pixels=10_000)
    assert out.bit_depth == 32 and out.pixels.shape == (60, 80) and out.pixels.dtype == np.float32
    h_out = header_of(out.metadata.fits_keywords)
    err = pixel_mismatch(h, h_out, 2, (60, 80))
    assert err < 1e-3, f"{kind}: output pixel centres land {err:.3g} output pixels off"
    assert (h_out["NAXIS1"], h_out["NAXIS2"]) == (80, 60)
    assert (h_out["OBJECT"], h_out["EXPTIME"], h_out["FLIPPED"]) == ("M 51 'Whirlpool'", 300.5, True)
    history = list(h_out["HISTORY"])
    assert history[0] == "calibrated in PixInsight" and "".join(history[1:]).startswith("srcnn_np: SRCNNVER="), history
    assert (h_out["SRCNNSCL"], h_out["SRCNNWTS"], h_out["SRCNNSRC"]) == (2, os.path.basename(weights_file), "in.xisf")
    props = out.metadata.properties
    assert props["Observation:Object:Name"]["value"] == "M 51"
    assert props["Instrument:ExposureTime"]["value"] == 300.5 and props["PCL:Calibrated"]["value"] is True
    ref = props["PCL:AstrometricSolution:ReferenceImageCoordinates"]["value"]
    matrix = props["PCL:AstrometricSolution:LinearTransformationMatrix"]["value"]
    assert np.allclose(ref, [33.6, 24.6], rtol=1e-15) and np.allclose(matrix, [[1e-4, 1.5e-5], [-1.25e-5, 1e-4]],
                                                                       rtol=1e-15), (ref, matrix)
    assert not any("SplineWorldTransformation" in p for p in props), sorted(props)


def test_unrepresentable_keywords_are_carried_unchanged():
    meta = XisfMetadata([("CRPIX1", "10.5", ""), ("LONGNAMEKEYWORD", "'ok'", ""), ("NOTE", "'caf\u00e9'", "x"),
                         ("EMPTY", "''", "e"), ("UNDEF", "", "u"), ("ODD", "not a FITS value", "o")], {})
    out = xisf_io.upscaled_metadata(meta, 3, TEST_PROVENANCE)
    for kept in [("CRPIX1", "30.5", ""), ("NOTE", "'caf\u00e9'", "x"), ("EMPTY", "''", "e"), ("UNDEF", "", "u"),
                 ("ODD", "not a FITS value", "o")]:
        assert kept in out.fits_keywords, (kept, out.fits_keywords)
    assert any(name == "LONGNAMEKEYWORD" and value == "'ok'" for name, value, _ in out.fits_keywords)


# ---------------------------------------------------------------- the command line


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_directory_mode_to_xisf_and_back(tmp_path, weights_file, capsys):
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(sky(8, 9, 3)).save(src / "rgb8.png")
    Image.fromarray(sky(8, 9, dtype=np.uint16)).save(src / "gray16.png")
    code, _, err = run(["upscale", str(src), "-o", str(tmp_path / "x"), "--ext", "xisf", "--weights", weights_file],
                       capsys)
    assert code == EXIT_OK, err
    assert sorted(os.listdir(tmp_path / "x")) == ["gray16_x2.xisf", "rgb8_x2.xisf"]
    rgb = read_xisf(tmp_path / "x" / "rgb8_x2.xisf", max_pixels=1000)
    gray = read_xisf(tmp_path / "x" / "gray16_x2.xisf", max_pixels=1000)
    assert (rgb.pixels.shape, rgb.pixels.dtype) == ((16, 18, 3), np.uint8)
    assert (gray.pixels.shape, gray.pixels.dtype) == ((16, 18), np.uint16)
    code, _, err = run(["upscale", str(tmp_path / "x"), "-o", str(tmp_path / "png"), "--ext", "png",
                        "--weights", weights_file], capsys)
    assert code == EXIT_OK, err
    assert np.asarray(Image.open(tmp_path / "png" / "rgb8_x2_x2.png")).shape == (32, 36, 3)
    code, _, err = run(["upscale", str(tmp_path / "x" / "rgb8_x2.xisf"), "-o", str(tmp_path / "no.fits"),
                        "--weights", weights_file], capsys)
    assert code == EXIT_FAILED and "FITS converts only to FITS" in err and not (tmp_path / "no.fits").exists()


def test_missing_xisf_package_gives_the_install_hint(tmp_path, monkeypatch, capsys):
    path = tmp_path / "in.xisf"
    path.write_bytes(xisf_bytes(planar(gray16()), 'geometry="5:6:1" sampleFormat="UInt16"'))
    monkeypatch.setitem(sys.modules, "xisf", None)
    xisf_io._bounded_reader_class.cache_clear()
    try:
        code, _, err = run(["upscale", str(path), "-o", str(tmp_path / "o.png")], capsys)
    finally:
        xisf_io._bounded_reader_class.cache_clear()
    assert code == EXIT_FAILED
    assert err.strip() == f'srcnn-np: error: {path}: XISF support needs the xisf package: pip install "srcnn_np[xisf]"'


# ---------------------------------------------------------------- hostile files


def zlib_bomb(declared: int) -> bytes:
    """An image whose zlib block declares `declared` bytes but inflates to 32 MiB."""
    return xisf_bytes(zlib.compress(b"\0" * (32 << 20), 9), 'geometry="64:64:1" sampleFormat="UInt16" '
                      f'compression="zlib:{declared}"')


def codec_bomb(codec: str) -> bytes:
    """An image whose lz4 or zstd block declares 8192 bytes but inflates to 32 MiB."""
    import lz4.block
    import zstandard

    zeros = b"\0" * (32 << 20)
    data = lz4.block.compress(zeros, store_size=False) if codec == "lz4" else zstandard.compress(zeros)
    return xisf_bytes(data, f'geometry="64:64:1" sampleFormat="UInt16" compression="{codec}+sh:8192:2"')


def good(**overrides) -> bytes:
    return xisf_bytes(planar(gray16()), 'geometry="5:6:1" sampleFormat="UInt16"', **overrides)


# file name -> (bytes builder, the message fragment the one error line must hold)
HOSTILE_XISF = {
    "empty.xisf": (lambda: b"", "not an XISF file"),
    "text.xisf": (lambda: b"hello, not XISF at all" * 10, "not an XISF file"),
    "distributed.xisf": (lambda: b"XISB0100" + b"\0" * 100, "distributed XISF"),
    "header_past_end.xisf": (lambda: good(header_length=1 << 30), "XML header length 1073741824 is outside the file"),
    "header_length_zero.xisf": (lambda: good(header_length=0), "XML header length 0"),
    "bad_xml.xisf": (lambda: good()[:200] + b"<<<" + good()[203:], "bad XML header"),
    "billion_laughs.xisf": (lambda: good().replace(b'<?xml version="1.0" encoding="UTF-8"?>',
                                                   b'<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]>'), "DTD or entities"),
    "unknown_xml_encoding.xisf": (lambda: good().replace(b'encoding="UTF-8"', b'encoding="utf77"'),
                                  "bad XML header (unknown encoding: utf77)"),  # found by tools/fuzz.py, seed 0
    "not_xisf_xml.xisf": (lambda: good().replace(b"<xisf ", b"<fits ").replace(b"</xisf>", b"</fits>"),
                          "root is not an XISF element"),
    "no_image.xisf": (lambda: xisf_bytes(b"", 'geometry="1:1:1"').replace(b"<Image ", b"<Imagx ")
                      .replace(b"</Image>", b"</Imagx>"), "no image in the file"),
    "attachment_past_end.xisf": (lambda: good(location="attachment:4096:999999999"), "lies past the end"),
    "attachment_offset_huge.xisf": (lambda: good(location=f"attachment:{1 << 62}:60"), "lies past the end"),
    "absurd_size.xisf": (lambda: xisf_bytes(b"\0" * 64, 'geometry="4000000000:4000000000:3" sampleFormat="UInt16"'),
                         "exceeds the limit"),
    "zero_width.xisf": (lambda: xisf_bytes(b"", 'geometry="0:5:1" sampleFormat="UInt16"'), "empty image"),
    "3d_geometry.xisf": (lambda: xisf_bytes(b"\0" * 8, 'geometry="2:2:2:1" sampleFormat="UInt8"'), "only 2-D"),
    "nine_channels.xisf": (lambda: xisf_bytes(b"\0" * 36, 'geometry="2:2:9" sampleFormat="UInt8"'), "9 channels"),
    "short_data.xisf": (lambda: xisf_bytes(b"\0" * 10, 'geometry="5:6:1" sampleFormat="UInt16"'),
                        "data block of 10 bytes, the geometry needs 60"),
    "complex.xisf": (lambda: xisf_bytes(b"\0" * 8, 'geometry="1:1:1" sampleFormat="Complex32"'),
                     "sample format 'Complex32' is not supported"),
    "cielab.xisf": (lambda: xisf_bytes(b"\0" * 3, 'geometry="1:1:3" sampleFormat="UInt8" colorSpace="CIELab"'),
                    "colour space"),
    "embedded.xisf": (lambda: good(location="embedded"), "location 'embedded' is not supported"),
    "unknown_codec.xisf": (lambda: xisf_bytes(b"\0" * 10, 'geometry="5:6:1" sampleFormat="UInt16" '
                                               'compression="lzma:60"'), "compression 'lzma:60' is not supported"),
    "declared_too_big.xisf": (lambda: zlib_bomb(1 << 40), "the geometry needs 8192"),
    "zlib_bomb.xisf": (lambda: zlib_bomb(8192), "compressed block holds 8193 bytes, declared 8192"),
    "lz4_bomb.xisf": (lambda: codec_bomb("lz4"), "cannot decode XISF"),
    "zstd_bomb.xisf": (lambda: codec_bomb("zstd"), "compressed block holds 8193 bytes, declared 8192"),
    "corrupt_zlib.xisf": (lambda: xisf_bytes(b"not zlib", 'geometry="5:6:1" sampleFormat="UInt16" '
                                                   'compression="zlib:60"'), "cannot decode XISF"),
    "property_bomb.xisf": (lambda: xisf_bytes(planar(gray16()), 'geometry="5:6:1" sampleFormat="UInt16"',
                                              '<Property id="X" type="UI8Vector" length="5" location="attachment:'
                                              '4096:60" compression="zlib:999999999"/>'), "more than the 64 MiB allowed"),
    "nan.xisf": (lambda: xisf_bytes(planar(np.full((2, 2), np.nan, np.float32)),
                                     'geometry="2:2:1" sampleFormat="Float32"'), "NaN or inf"),
    "outside_bounds.xisf": (lambda: xisf_bytes(planar(np.full((2, 2), 7.0, np.float32)),
                                               'geometry="2:2:1" sampleFormat="Float32"'), "outside the image's bounds"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_XISF))
def test_hostile_xisf_is_refused_in_one_line_before_allocating(tmp_path, name):
    build, fragment = HOSTILE_XISF[name]
    path = tmp_path / name
    path.write_bytes(build())
    tracemalloc.start()
    try:
        with pytest.raises(XisfError) as e:
            read_xisf(path, max_pixels=200_000_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(e.value)
    assert message.startswith(f"{path}: ") and "\n" not in message and fragment in message, message
    assert peak < 20_000_000 + 2 * path.stat().st_size, f"{peak} bytes allocated for a {path.stat().st_size}-byte file"
