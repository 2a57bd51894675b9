"""Bounded fuzzing of the decoders `upscale` uses: mutated PNG (8/16-bit), JPEG, TIFF, FITS
(plain, gzip, tile-compressed) and XISF bytes.

    python tools/fuzz.py --seconds 60                  # all targets, seed 0
    python tools/fuzz.py --seconds 600 --target fits --seed 7 --crashes fuzz-crashes/

Each input is written to a file and decoded the way `srcnn-np upscale` decodes it:
srcnn_np.io.imageio.read_image (images), srcnn_np.io.fits_io.read_fits (FITS, when astropy is
installed) or srcnn_np.io.xisf.read_xisf (XISF, when the xisf package is installed). The only
exceptions allowed out are the decoders' one-line errors (ImageIOError, FitsError, XisfError);
anything else, or a decoded result that breaks the LoadedImage contract, is a crash:
its input is saved under --crashes and the run exits 1. A decode that takes longer than
--hang-seconds is a crash too (Hang, raised by SIGALRM); one stuck in C code for three times that
kills the run with faulthandler's traceback.

Mutations start from small valid files made here (so they reach deep into the decoders) and are
structure-aware where checksums would stop them early: PNG chunk CRCs are recomputed, and the
inflated image data of PNG IDAT chunks is mutated and recompressed; numbers in the XML header of
XISF files (geometry, block positions and sizes, declared uncompressed sizes) get interesting
values with the header length kept consistent. Runs are reproducible for a
given --seed (the sequence of inputs, not the number of executions in the time given).
Prints the number of executions, executions per second and crashes per target.
"""
import argparse
import faulthandler
import gzip
import io
import os
import random
import re
import signal
import sys
import tempfile
import time
import traceback
import warnings
import zlib
from dataclasses import dataclass, field

import numpy as np

from srcnn_np.io import png
from srcnn_np.io.imageio import ImageIOError, read_image

MAX_PIXELS = 1 << 20  # keeps each execution fast; the limit itself is one of the things fuzzed
INTERESTING = (0, 1, 2, 7, 8, 15, 16, 255, 256, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


# ---------------------------------------------------------------- seeds


def _pil(array, fmt, mode=None, **options) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, format=fmt, **options)
    return buf.getvalue()


def image_seeds() -> list[tuple[str, bytes]]:
    """(extension, bytes) of small valid files in every flavour read_image handles."""
    import tifffile
    from PIL import Image

    rng = np.random.default_rng(0)
    g8 = (rng.random((6, 5)) * 255).astype(np.uint8)
    c8 = (rng.random((6, 5, 3)) * 255).astype(np.uint8)
    a8 = (rng.random((6, 5, 4)) * 255).astype(np.uint8)
    g16 = (rng.random((6, 5)) * 65535).astype(np.uint16)
    c16 = (rng.random((6, 5, 3)) * 65535).astype(np.uint16)
    a16 = (rng.random((5, 4, 4)) * 65535).astype(np.uint16)

    def png16_bytes(a):
        buf = io.BytesIO()
        png.write_png(buf, a, compression=6)
        return buf.getvalue()

    def tiff(a, **options):
        buf = io.BytesIO()
        tifffile.imwrite(buf, a, **options)
        return buf.getvalue()

    exif = Image.Exif()
    exif[0x0112] = 6
    palette = io.BytesIO()
    Image.fromarray(c8).quantize(8).save(palette, format="PNG", transparency=0)
    return [
        (".png", _pil(g8, "PNG")), (".png", _pil(c8, "PNG")), (".png", _pil(a8, "PNG")),
        (".png", palette.getvalue()), (".png", _pil(g8 > 100, "PNG")),
        (".png", png16_bytes(g16)), (".png", png16_bytes(c16)), (".png", png16_bytes(a16)),
        (".jpg", _pil(c8, "JPEG", quality=80)), (".jpg", _pil(g8, "JPEG", progressive=True)),
        (".jpg", _pil(a8, "JPEG", mode="CMYK")), (".jpg", _pil(c8, "JPEG", exif=exif)),
        (".tif", _pil(c8, "TIFF")), (".tif", _pil(g8, "TIFF", compression="tiff_lzw")),
        (".tif", _pil(a8, "TIFF", compression="tiff_adobe_deflate")), (".tif", _pil(g16, "TIFF")),
        (".tif", tiff(c16, photometric="rgb")), (".tif", tiff(c16.byteswap().view(">u2"), photometric="rgb")),
        (".tif", tiff(np.moveaxis(c16, -1, 0), photometric="rgb", planarconfig="separate")),
        (".tif", tiff(g16, tile=(16, 16))), (".tif", tiff(g8.astype(np.float32) / 255)),
    ]


def fits_seeds() -> list[tuple[str, bytes]]:
    from astropy.io import fits

    rng = np.random.default_rng(1)

    def dump(hdul) -> bytes:
        buf = io.BytesIO()
        hdul.writeto(buf)
        return buf.getvalue()

    scaled = fits.PrimaryHDU((rng.random((6, 5)) * 1000).astype(np.int16))
    scaled.header["BSCALE"], scaled.header["BZERO"], scaled.header["BLANK"] = 0.5, 100.0, -1
    cube = fits.PrimaryHDU(rng.random((2, 6, 5)).astype(np.float32))
    cube.header["CRPIX1"], cube.header["CD1_1"], cube.header["CTYPE1"] = 3.0, -1e-4, "RA---TAN"
    tile_compressed = fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU((rng.random((6, 5)) * 900).astype(np.int16))])
    gzipped = io.BytesIO()
    with gzip.GzipFile(fileobj=gzipped, mode="wb") as f:
        f.write(dump(fits.HDUList([fits.PrimaryHDU(rng.random((6, 5)).astype(np.float32))])))
    return [
        (".fits.fz", dump(tile_compressed)), (".fits.gz", gzipped.getvalue()),
        (".fits", dump(fits.HDUList([fits.PrimaryHDU(rng.random((6, 5)).astype(np.float32))]))),
        (".fits", dump(fits.HDUList([scaled]))),
        (".fits", dump(fits.HDUList([cube]))),
        (".fits", dump(fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(rng.random((4, 7)), name="SCI")]))),
    ]


def xisf_seeds() -> list[tuple[str, bytes]]:
    """Small XISF files the xisf package writes: gray and RGB, 8/16-bit and float, every codec,
    FITS keywords and properties (inline and attached vectors)."""
    import xisf

    rng = np.random.default_rng(2)
    metadata = {"FITSKeywords": {"CRPIX1": [{"value": "3.5", "comment": "ref"}],
                                 "OBJECT": [{"value": "'M 31'", "comment": ""}]},
                "XISFProperties": {"Observation:Object:Name": {"id": "Observation:Object:Name", "type": "String",
                                                               "value": "M 31"},
                                   "PCL:Big": {"id": "PCL:Big", "type": "F64Vector", "value": rng.random(600)}}}
    arrays = [(rng.random((6, 5, 1)) * 65535).astype(np.uint16), (rng.random((5, 4, 3)) * 255).astype(np.uint8),
              rng.random((4, 6, 3)).astype(np.float32)]
    seeds = []
    with tempfile.TemporaryDirectory(prefix="srcnn-fuzz-seeds-") as d:
        for i, (a, codec) in enumerate(zip(arrays * 2, (None, "zlib", "lz4", "lz4hc", "zstd", "zlib"))):
            path = os.path.join(d, f"{i}.xisf")
            xisf.XISF.write(path, a, image_metadata=metadata if i % 2 else {}, codec=codec, shuffle=i > 2)
            with open(path, "rb") as f:
                seeds.append((".xisf", f.read()))
    return seeds


# ---------------------------------------------------------------- mutations


def _png_chunks(data: bytes):
    """[(start, length, kind)] of the well-formed chunks at the start of a PNG (stops at damage)."""
    chunks, pos = [], len(png.PNG_SIGNATURE)
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        if pos + 12 + length > len(data):
            break
        chunks.append((pos, length, bytes(data[pos + 4:pos + 8])))
        pos += 12 + length
    return chunks


def fix_png_crcs(data: bytes) -> bytes:
    """Recompute every chunk's CRC, so that mutations get past the checksum."""
    out = bytearray(data)
    for start, length, _ in _png_chunks(data):
        end = start + 8 + length
        out[end:end + 4] = zlib.crc32(out[start + 4:end]).to_bytes(4, "big")
    return bytes(out)


def mutate_png_image_data(data: bytes, rnd: random.Random) -> bytes:
    """Inflate the IDAT stream, mutate the raw scanlines (filter bytes included), deflate, rebuild."""
    chunks = _png_chunks(data)
    idat = [(s, n) for s, n, kind in chunks if kind == b"IDAT"]
    if not idat:
        return data
    try:
        raw = zlib.decompress(b"".join(data[s + 8:s + 8 + n] for s, n in idat))
    except zlib.error:
        return data
    raw = mutate_bytes(raw, rnd, rounds=rnd.randint(1, 4))
    first, last = idat[0][0], idat[-1][0] + 12 + idat[-1][1]
    return data[:first] + png.chunk(b"IDAT", zlib.compress(raw)) + data[last:]


def mutate_fits_card(data: bytes, rnd: random.Random) -> bytes:
    """Give one header card (80 characters) of a FITS file an interesting value."""
    header_end = data.find(b"END" + b" " * 77)
    cards = max(header_end // 80, 1) if header_end > 0 else len(data) // 80
    if cards < 1:
        return data
    i = rnd.randrange(cards) * 80
    value = rnd.choice([str(rnd.choice(INTERESTING)), "-1", "0", "1E300", "NaN", "'X'", "T", "-32", "-64", "64",
                        "99999999999999999999", "  "])
    card = data[i:i + 10] + value.rjust(20).encode("ascii")[:70]
    return data[:i] + card.ljust(80)[:80] + data[i + 80:]


def mutate_xisf_header(data: bytes, rnd: random.Random) -> bytes:
    """Give one number of the XML header an interesting value; the header length field follows
    (the header grows into the zero padding before the first data block)."""
    length = int.from_bytes(data[8:12], "little")
    header = data[16:16 + length]
    numbers = list(re.finditer(rb"\d+", header))
    if len(data) < 16 or not numbers:
        return data
    m = rnd.choice(numbers)
    value = str(rnd.choice(INTERESTING + (0, 1 << 40, 4096, len(data)))).encode()
    header = header[:m.start()] + value + header[m.end():]
    if len(header) <= length:
        return data[:16] + header.ljust(length, b"\0") + data[16 + length:]
    return data[:8] + len(header).to_bytes(4, "little") + data[12:16] + header + data[16 + len(header):]


def mutate_bytes(data: bytes, rnd: random.Random, rounds: int = 1, pool=()) -> bytes:
    """Generic mutations: flip, set, interesting integers, delete, duplicate, truncate, splice."""
    out = bytearray(data)
    for _ in range(rounds):
        op = rnd.randrange(8)
        n = len(out)
        if n == 0:
            out += bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 16)))
            continue
        at = rnd.randrange(n)
        if op == 0:
            out[at] ^= 1 << rnd.randrange(8)
        elif op == 1:
            out[at] = rnd.randrange(256)
        elif op == 2:
            width = rnd.choice((1, 2, 4))
            value = rnd.choice(INTERESTING) & ((1 << (8 * width)) - 1)
            out[at:at + width] = value.to_bytes(width, rnd.choice(("big", "little")))
        elif op == 3:
            del out[at:at + rnd.randint(1, 64)]
        elif op == 4:
            span = bytes(out[at:at + rnd.randint(1, 64)])
            where = rnd.randrange(n)
            out[where:where] = span * rnd.randint(1, 4)
        elif op == 5:
            del out[rnd.randint(0, n):]
        elif op == 6 and pool:
            other = rnd.choice(pool)
            if other:
                cut = rnd.randrange(len(other))
                out[at:] = other[cut:cut + rnd.randint(1, 256)] + out[at:]
        else:
            out[at:at + 4] = bytes(rnd.randrange(256) for _ in range(4))
    return bytes(out)


def mutate(ext: str, data: bytes, rnd: random.Random, pool) -> bytes:
    """One fuzz input from a seed."""
    if ext == ".png" and rnd.random() < 0.3:
        data = mutate_png_image_data(data, rnd)
    elif ext in (".fits", ".fits.fz") and rnd.random() < 0.5:
        data = mutate_fits_card(data, rnd)
    elif ext == ".xisf" and rnd.random() < 0.5:
        data = mutate_xisf_header(data, rnd)
    else:
        data = mutate_bytes(data, rnd, rounds=rnd.choice((1, 1, 2, 4, 8)), pool=pool)
    if ext == ".png" and rnd.random() < 0.7:
        data = fix_png_crcs(data)
    return data


# ---------------------------------------------------------------- targets


def decode_image(path: str) -> str | None:
    """read_image as `upscale` uses it; raise AssertionError if the result breaks LoadedImage's contract.

    Returns the name of the decoder's exception that ImageIOError wraps, if any (for the summary).
    """
    try:
        image = read_image(path, max_pixels=MAX_PIXELS)
    except ImageIOError as e:
        return wrapped_error(path, e)
    check_pixels(image.pixels)
    assert image.format in ("png", "jpeg", "tiff"), image
    float_tiff = image.format == "tiff" and image.pixels.dtype == np.float32
    assert image.bit_depth == 32 if float_tiff else image.bit_depth in (8, 16), image  # float TIFF: any range, NaN
    return None


def decode_fits(path: str) -> str | None:
    """read_fits as `upscale` uses it; like decode_image."""
    from srcnn_np.io.fits_io import FitsError, read_fits

    try:
        image = read_fits(path)
    except FitsError as e:
        return wrapped_error(path, e)
    assert image.data.ndim >= 2 and image.data.dtype.isnative, f"data {image.data.dtype} {image.data.shape}"
    return None


def decode_xisf(path: str) -> str | None:
    """read_xisf as `upscale` uses it; like decode_image, float samples finite and in [0, 1]."""
    from srcnn_np.io.xisf import XisfError, read_xisf

    try:
        image = read_xisf(path, max_pixels=MAX_PIXELS)
    except XisfError as e:
        return wrapped_error(path, e)
    p = check_pixels(image.pixels)
    assert p.dtype != np.float32 or (np.isfinite(p).all() and 0 <= p.min() and p.max() <= 1), "float range"
    return None


def wrapped_error(path: str, e: Exception) -> str | None:
    """Check a decoder's error is one line naming the file; the name of the exception it wraps, if any."""
    assert "\n" not in str(e) and str(e).startswith(path), f"error is not one line naming the file: {e!r}"
    return type(e.__context__).__name__ if e.__context__ is not None else None


def check_pixels(p) -> np.ndarray:
    """Assert the LoadedImage pixel contract: (H, W) or (H, W, 2..4), within MAX_PIXELS, native
    uint8 | uint16 | float32."""
    assert isinstance(p, np.ndarray) and p.ndim in (2, 3), f"pixels {type(p)} {getattr(p, 'shape', None)}"
    assert p.shape[0] >= 1 and p.shape[1] >= 1 and p.shape[0] * p.shape[1] <= MAX_PIXELS, f"shape {p.shape}"
    assert p.ndim == 2 or 2 <= p.shape[2] <= 4, f"shape {p.shape}"
    assert p.dtype in (np.uint8, np.uint16, np.float32) and p.dtype.isnative, f"dtype {p.dtype}"
    return p


@dataclass
class TargetStats:
    executions: int = 0
    seconds: float = 0.0
    crashes: list = field(default_factory=list)  # (saved path or None, one-line description)
    wrapped: dict = field(default_factory=dict)  # decoder exception type -> times turned into the one-line error


OPTIONAL_TARGETS = {  # name -> (the module it needs, decode function, seed maker)
    "fits": ("astropy", decode_fits, fits_seeds),
    "xisf": ("xisf", decode_xisf, xisf_seeds),
}


def targets(which: str) -> dict:
    """name -> (decode function, seeds) for the targets asked for and available."""
    chosen = {}
    if which in ("image", "all"):
        chosen["image"] = (decode_image, image_seeds())
    for name, (module, decode, seeds) in OPTIONAL_TARGETS.items():
        if which not in (name, "all"):
            continue
        try:
            __import__(module)
        except ImportError as e:
            print(f"fuzz: skipping {name} ({e})", file=sys.stderr)
        else:
            chosen[name] = (decode, seeds())
    return chosen


class Hang(BaseException):
    """One decode ran past --hang-seconds (a BaseException, so decoders' `except Exception` cannot
    swallow it)."""


def _raise_hang(signum, frame):
    raise Hang("the decoder did not return in time")


def run(seconds: float, seed: int = 0, which: str = "all", crashes_dir: str | None = None,
        hang_seconds: float = 10.0) -> dict:
    """Fuzz for `seconds` (split evenly between targets); returns {target: TargetStats}.

    Must run in the main thread (hangs are detected with SIGALRM).
    """
    chosen = targets(which)
    rnd = random.Random(seed)
    stats = {name: TargetStats() for name in chosen}
    previous_handler = signal.signal(signal.SIGALRM, _raise_hang)
    try:
        with tempfile.TemporaryDirectory(prefix="srcnn-fuzz-") as workdir:
            for name, (decode, seeds) in chosen.items():
                _fuzz_target(decode, seeds, stats[name], name, seconds / len(chosen), rnd, workdir,
                             crashes_dir, hang_seconds)
    finally:
        signal.signal(signal.SIGALRM, previous_handler)
    return stats


def _fuzz_target(decode, seeds, s: TargetStats, name, seconds, rnd, workdir, crashes_dir, hang_seconds):
    pool = [data for _, data in seeds]
    started = time.monotonic()
    while time.monotonic() < started + seconds:
        ext, data = rnd.choice(seeds)
        data = mutate(ext, data, rnd, pool)
        path = os.path.join(workdir, "current" + ext)
        with open(path, "wb") as f:
            f.write(data)
        signal.setitimer(signal.ITIMER_REAL, hang_seconds)  # a hang in Python code: Hang
        faulthandler.dump_traceback_later(3 * hang_seconds, exit=True)  # a hang in C: exit
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                wrapped = decode(path)
            if wrapped:
                s.wrapped[wrapped] = s.wrapped.get(wrapped, 0) + 1
        except (Exception, Hang) as e:  # noqa: BLE001 - every escape is what we look for
            s.crashes.append((_save_crash(crashes_dir, name, ext, data, len(s.crashes)), _describe(e)))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            faulthandler.cancel_dump_traceback_later()
        s.executions += 1
    s.seconds = time.monotonic() - started


def _describe(e: BaseException) -> str:
    frames = traceback.extract_tb(e.__traceback__) if e.__traceback__ else []
    if isinstance(e, Hang) and len(frames) > 1:
        frames = frames[:-1]  # the alarm handler's own frame
    frame = frames[-1] if frames else None
    where = f" at {os.path.basename(frame.filename)}:{frame.lineno}" if frame else ""
    return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}{where}"


def _save_crash(crashes_dir, target, ext, data, index):
    if crashes_dir is None:
        return None
    os.makedirs(crashes_dir, exist_ok=True)
    path = os.path.join(crashes_dir, f"{target}-{index:04d}{ext}")
    with open(path, "wb") as f:
        f.write(data)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="total fuzzing time (default 60)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--target", choices=("image", "fits", "xisf", "all"), default="all")
    p.add_argument("--crashes", help="directory to save crashing inputs in")
    p.add_argument("--hang-seconds", type=float, default=10.0, help="one decode longer than this is a hang")
    args = p.parse_args(argv)
    stats = run(args.seconds, args.seed, args.target, args.crashes, args.hang_seconds)
    total = 0
    for name, s in stats.items():
        rate = s.executions / s.seconds if s.seconds else 0.0
        print(f"{name}: {s.executions} executions in {s.seconds:.1f} s = {rate:.0f} exec/s, "
              f"{len(s.crashes)} crashes")
        if s.wrapped:
            print("  decoder errors reported as one line: "
                  + ", ".join(f"{k} x{v}" for k, v in sorted(s.wrapped.items(), key=lambda kv: -kv[1])))
        seen = set()
        for path, what in s.crashes:
            if what not in seen:
                seen.add(what)
                print(f"  {what}" + (f"  (e.g. {path})" if path else ""))
        total += len(s.crashes)
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
