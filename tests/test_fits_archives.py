"""FITS as archives deliver it (issue 14): .fits.gz, fpack'ed .fits.fz / .fz, tile-compressed HDUs
in a plain .fits, in and out, single files and directories; nothing skipped silently."""
import gzip
import os

import numpy as np
import pytest

fits = pytest.importorskip("astropy.io.fits")

from srcnn_np.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from srcnn_np.io import fits_io
from srcnn_np.io.fits_io import FitsError, read_fits, write_fits
from srcnn_np.io.formats import format_of, split_extension

from .conftest import bicubic_upscaler, upscale_fits
from .test_fits import celestial_header, pixel_mismatch, star_field


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def write_archive(path, data, header=None, kind=None):
    """data as a plain, gzip ('gz') or tile-compressed ('rice', 'gzip2') FITS file; astropy writes it."""
    if kind in ("rice", "gzip2"):
        options = {"compression_type": "RICE_1"} if kind == "rice" else {"compression_type": "GZIP_2",
                                                                         "quantize_level": 0.0}
        fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header, **options)]).writeto(path)
    elif kind == "gz":
        with gzip.open(path, "wb") as f:
            fits.PrimaryHDU(data, header).writeto(f)
    else:
        fits.PrimaryHDU(data, header).writeto(path)


def compression_cards(path):
    """(ZCMPTYPE, ZQUANTIZ or None) of the tile-compressed extension, from the raw binary table header."""
    with fits.open(path, disable_image_compression=True) as f:
        return f[1].header["ZCMPTYPE"], f[1].header.get("ZQUANTIZ")


def test_names_keep_their_double_extension():
    assert split_extension("dir/c.fits.fz") == ("c", ".fits.fz")
    assert split_extension("B.FITS.GZ") == ("B", ".FITS.GZ")
    assert split_extension("x.fz") == ("x", ".fz")
    assert split_extension("notes.tar.gz") == ("notes.tar", ".gz")
    assert [format_of(n) for n in ("a.fits.gz", "a.fit.gz", "a.fits.fz", "a.fz", "a.xisf", "a.gz", "a.fits.bz")] \
        == ["fits", "fits", "fits", "fits", "xisf", None, None]


@pytest.mark.parametrize("name, kind", [("plain.fits.gz", "gz"), ("rice.fits.fz", "rice"), ("rice.fz", "rice"),
                                        ("tile_in_plain_name.fits", "gzip2")])
def test_compressed_inputs_read_exactly(tmp_path, name, kind):
    """Integer data through RICE_1 and float data through GZIP_2 are lossless: read back exactly."""
    rng = np.random.default_rng(3)
    data = (rng.integers(-2000, 30000, (21, 34)).astype(np.int16) if kind == "rice"
            else rng.normal(100, 5, (21, 34)).astype(np.float32))
    write_archive(tmp_path / name, data, celestial_header("tan-cd", data.shape), kind)
    image = read_fits(tmp_path / name)
    assert image.data.shape == data.shape and np.array_equal(image.data, data), \
        f"max difference {np.abs(image.data.astype(np.float64) - data).max()}"
    assert image.header["CRPIX1"] == 17.3


@pytest.mark.parametrize("out_name", ["out.fits.gz", "out.fits.fz", "out.fz"])
def test_compressed_outputs_hold_exactly_the_plain_output(tmp_path, out_name):
    """Default: lossless; the same float32 bits as the plain .fits output, NaN included, the WCS kept."""
    data = star_field()
    data[3:5, 7] = np.nan
    src = tmp_path / "in.fits"
    fits.PrimaryHDU(data, celestial_header("tan-pc")).writeto(src)
    upscale_fits(src, tmp_path / "plain.fits", bicubic_upscaler(2), method="bicubic")
    upscale_fits(src, tmp_path / out_name, bicubic_upscaler(2), method="bicubic")
    raw = (tmp_path / out_name).read_bytes()
    assert raw.startswith(b"\x1f\x8b") == out_name.endswith(".gz")
    with fits.open(tmp_path / "plain.fits") as plain, fits.open(tmp_path / out_name) as packed:
        hdu = packed[-1]
        if out_name.endswith("fz"):
            assert isinstance(hdu, fits.CompImageHDU) and compression_cards(tmp_path / out_name)[0] == "GZIP_2"
        a, b = plain[0].data, hdu.data
        same = np.array_equal(a, b, equal_nan=True)
        assert same, f"max difference {np.nanmax(np.abs(a - b))}, NaN {np.isnan(a).sum()} vs {np.isnan(b).sum()}"
        for key in ("CRPIX1", "CRPIX2", "CDELT1", "PC1_2", "CTYPE1", "NAXIS1", "NAXIS2"):
            assert hdu.header[key] == plain[0].header[key], (key, hdu.header[key], plain[0].header[key])
        assert pixel_mismatch(fits.getheader(src), hdu.header, 2, b.shape) < 1e-3


def gzip_original_name(raw: bytes) -> bytes | None:
    """The FNAME field of a gzip member's header (RFC 1952: what `gunzip -N` restores), or None."""
    flags, position = raw[3], 10
    if flags & 4:  # FEXTRA: a 2-byte length, then that many bytes
        position += 2 + int.from_bytes(raw[10:12], "little")
    return raw[position:raw.index(b"\0", position)] if flags & 8 else None


def test_gzip_output_names_the_final_file_not_the_temp_file(tmp_path):
    """`gunzip -N m31_x2.fits.gz` must restore m31_x2.fits, not the hidden temp file's name."""
    path = tmp_path / "m31_x2.fits.gz"
    write_fits(path, star_field())
    name = gzip_original_name(path.read_bytes())
    assert name in (None, b"m31_x2.fits"), f"gzip header names {name!r}"
    assert np.array_equal(fits.getdata(path), star_field())


def test_quantize_level_gives_rice_tiles_with_astropys_quantisation(tmp_path):
    data = star_field((40, 50))
    write_fits(tmp_path / "q16.fits.fz", data, quantize_level=16)
    write_fits(tmp_path / "lossless.fits.fz", data)
    assert compression_cards(tmp_path / "q16.fits.fz") == ("RICE_1", "SUBTRACTIVE_DITHER_1")
    lossy = fits.getdata(tmp_path / "q16.fits.fz")
    with fits.open(tmp_path / "q16.fits.fz", disable_image_compression=True) as f:
        assert (f[1].header["ZTILE1"], f[1].header["ZTILE2"]) == (50, 1)  # one tile per row
        steps = np.asarray(f[1].data["ZSCALE"], np.float64)  # each tile's quantisation step
    error = np.abs(lossy.astype(np.float64) - data).max(axis=1)
    noise = 2.0  # star_field's background sigma
    assert error.max() > 0 and (error <= steps / 2 * (1 + 1e-5)).all(), \
        f"errors per row {error[error > steps / 2]} above half their steps {steps[error > steps / 2] / 2}"
    assert np.median(steps) < noise / 16 * 1.5, f"median step {np.median(steps)} for noise sigma {noise}"
    write_fits(tmp_path / "again.fits.fz", data, quantize_level=16)
    assert np.array_equal(fits.getdata(tmp_path / "again.fits.fz"), lossy), "dithering not reproducible"
    assert np.array_equal(fits.getdata(tmp_path / "lossless.fits.fz"), data)
    with pytest.raises(FitsError, match="quantize level must be 0"):
        write_fits(tmp_path / "bad.fits.fz", data, quantize_level=-1)


def test_rice_fz_to_plain_fits_from_the_command_line(tmp_path, capsys):
    """The issue's first try: `upscale rice.fits.fz -o r.fits` was refused with a wrong message."""
    write_archive(tmp_path / "rice.fits.fz", (star_field() * 10).astype(np.int16), kind="rice")
    code, out, err = run(["upscale", str(tmp_path / "rice.fits.fz"), "-o", str(tmp_path / "r.fits")], capsys)
    assert code == EXIT_OK and err == "", err
    assert fits.getdata(tmp_path / "r.fits").shape == (60, 80)
    code, _, err = run(["upscale", str(tmp_path / "rice.fits.fz"), "-o", str(tmp_path / "r.fits.gz"),
                        "--quantize-level", "4"], capsys)
    assert code == EXIT_OK, err
    code, _, err = run(["upscale", str(tmp_path / "rice.fits.fz"), "-o", str(tmp_path / "r.png")], capsys)
    assert code == EXIT_FAILED and "FITS converts only to FITS" in err and not (tmp_path / "r.png").exists()


def test_directory_of_archives_upscales_every_file_and_names_what_it_skips(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    data = star_field()
    write_archive(src / "a.fits", data)
    write_archive(src / "b.fits.gz", data, kind="gz")
    write_archive(src / "c.fits.fz", data, kind="gzip2")
    (src / "notes.txt").write_text("observing log")
    (src / "calib").mkdir()
    code, out, err = run(["upscale", str(src), "-o", str(tmp_path / "out")], capsys)
    assert code == EXIT_OK, err
    assert sorted(os.listdir(tmp_path / "out")) == ["a_x2.fits", "b_x2.fits.gz", "c_x2.fits.fz"]
    assert err.splitlines() == [f"srcnn-np: skipping {src / 'calib'}: a directory (directories are not searched "
                                "recursively)",
                                f"srcnn-np: skipping {src / 'notes.txt'}: not a supported file type (.txt)"]
    assert (tmp_path / "out" / "b_x2.fits.gz").read_bytes()[:2] == b"\x1f\x8b"
    outputs = [fits.getdata(tmp_path / "out" / n) for n in ("a_x2.fits", "b_x2.fits.gz", "c_x2.fits.fz")]
    assert all(np.array_equal(o, outputs[0]) for o in outputs[1:])
    code, _, err = run(["upscale", str(src), "-o", str(tmp_path / "out2"), "--ext", "fits.fz"], capsys)
    assert code == EXIT_OK and sorted(os.listdir(tmp_path / "out2")) == ["a_x2.fits.fz", "b_x2.fits.fz",
                                                                          "c_x2.fits.fz"]


def test_quantize_level_must_be_a_non_negative_number(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["upscale", "in.fits", "-o", str(tmp_path / "o.fits.fz"), "--quantize-level", "-2"])
    err = capsys.readouterr().err
    assert e.value.code == EXIT_USAGE and "--quantize-level: '-2' is not 0 (lossless) or a positive number" in err
    assert os.listdir(tmp_path) == []


def damaged_archives(tmp_path):
    """name -> (bytes, the error the user gets) for broken .fits.gz / .fits.fz files."""
    data = star_field()
    write_archive(tmp_path / "ok.fits.gz", data, kind="gz")
    write_archive(tmp_path / "ok.fits.fz", data, kind="gzip2")
    gz, fz = (tmp_path / "ok.fits.gz").read_bytes(), (tmp_path / "ok.fits.fz").read_bytes()
    os.remove(tmp_path / "ok.fits.gz")
    os.remove(tmp_path / "ok.fits.fz")
    bomb = bytearray(fz)
    at = bomb.find(b"ZNAXIS1 =")
    bomb[at:at + 80] = f"{'ZNAXIS1':<8}= {2 ** 40:>20}".ljust(80).encode()
    return {
        "truncated.fits.gz": (gz[:len(gz) // 2], "cannot read the file"),
        "not_gzip.fits.gz": (b"\x1f\x8b\x08" + b"\0" * 40, "cannot read the file"),
        "cut_header.fits.fz": (fz[:2880 + 1000], "HDU 1: truncated header"),
        "cut_data.fits.fz": (fz[:-3000], "HDU 1: the header claims"),
        "bomb.fits.fz": (bytes(bomb), "the compressed image would decompress to more than 4 GiB"),
    }


def test_damaged_archives_fail_with_one_line_and_change_nothing(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    cases = damaged_archives(src)
    for name, (data, _) in cases.items():
        (src / name).write_bytes(data)
    for name, (_, reason) in cases.items():
        code, out, err = run(["upscale", str(src / name), "-o", str(tmp_path / "o.fits")], capsys)
        assert code == EXIT_FAILED, (name, err)
        assert len(err.strip().splitlines()) == 1 and err.startswith(f"srcnn-np: error: {src / name}") \
            and reason in err and "Traceback" not in err, (name, err)
    assert sorted(os.listdir(tmp_path)) == ["in"]
    assert sorted(os.listdir(src)) == sorted(cases)


def test_a_gzip_bomb_stops_at_the_limit_without_expanding(tmp_path, monkeypatch):
    """A .fits.gz whose stream expands past MAX_DECOMPRESSED_BYTES is refused while it is walked
    (limit lowered here to 1 MiB so that the test stays small)."""
    monkeypatch.setattr(fits_io, "MAX_DECOMPRESSED_BYTES", 1 << 20)
    path = tmp_path / "bomb.fits.gz"
    with gzip.open(path, "wb") as f:
        fits.PrimaryHDU(np.zeros((1024, 1024), np.float32)).writeto(f)
    assert path.stat().st_size < 20_000
    with pytest.raises(FitsError) as e:
        read_fits(path)
    assert str(e.value).startswith(f"{path}: HDU 0: the data would decompress to more than"), str(e.value)
