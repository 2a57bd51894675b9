"""The CLI end to end: the encode before and after, side by side, and a batch written sequentially
or on the writer thread while the next image is computed.

Run (not part of the normal test run):
    flock /tmp/srcnn_cpu.lock python -m pytest benchmarks/test_cli_speed.py --benchmark-enable \
        --benchmark-columns=min,mean,rounds
SRCNN_BENCH_SIDE (default 2048) is the side of the input (Hubble Deep Field from scikit-image,
enlarged); outputs are twice that. SRCNN_BENCH_BATCH_SIDE (default 512) is the side of the four
inputs of the batch entries: the network dominates those, at 2048 they take minutes on 2 cores.
Each entry's extra_info holds the file size; the batch entries hold the per-phase times.
"""
import io
import os

import numpy as np
import pytest
from PIL import Image

from srcnn_np.io import imageio
from srcnn_np.io.png import read_png16, write_png

skimage_data = pytest.importorskip("skimage.data")

SIDE = int(os.environ.get("SRCNN_BENCH_SIDE", "2048"))
BATCH_SIDE = int(os.environ.get("SRCNN_BENCH_BATCH_SIDE", "512"))
BATCH = 4


def hubble(side: int) -> np.ndarray:
    """(side, side, 3) uint8: the Hubble Deep Field enlarged (Pillow bicubic)."""
    return np.asarray(Image.fromarray(skimage_data.hubble_deep_field()).resize((side, side), Image.Resampling.BICUBIC))


@pytest.fixture(scope="module")
def output8():
    """The (2 SIDE, 2 SIDE, 3) uint8 image the CLI writes for a SIDE x SIDE input. Bicubic stands in
    for the network here: at 4096^2 it compresses ~7% better (Pillow level 6: 15.4 MB, the network's
    output 16.6 MB), so sizes are a little low and times about right."""
    write_png(io.BytesIO(), np.zeros((2, 2, 3), np.uint8), compression=1)  # Numba compiles or loads its cache
    return hubble(2 * SIDE)


@pytest.fixture(scope="module")
def output16():
    """(2 SIDE, 2 SIDE, 3) uint16 as the CLI writes it for a 16-bit input: float samples enlarged
    (Pillow bicubic on float planes) and quantised, so the low bytes hold noise as real data does."""
    small = hubble(SIDE).astype(np.float32) / 255
    planes = [np.asarray(Image.fromarray(small[:, :, c]).resize((2 * SIDE, 2 * SIDE), Image.Resampling.BICUBIC))
              for c in range(3)]
    return imageio.quantize(np.stack(planes, axis=2), 16)


def encode_to_file(path, encode) -> int:
    """encode(f) into a new file at path, flushed to disk as write_image does; its size in bytes."""
    with open(path, "wb") as f:
        encode(f)
        f.flush()
        os.fsync(f.fileno())
    return os.path.getsize(path)


def run_encode(benchmark, path, encode, group, name):
    benchmark.group = group
    benchmark.name = name
    size = benchmark.pedantic(encode_to_file, args=(path, encode), rounds=2, iterations=1)
    benchmark.extra_info["megabytes"] = round(size / 1e6, 2)
    return path


def test_png8_before_pillow_level6(benchmark, output8, tmp_path):
    """What the CLI did before: Pillow, compress_level=6, one thread."""
    run_encode(benchmark, tmp_path / "a.png", lambda f: Image.fromarray(output8).save(f, format="PNG", compress_level=6),
               f"PNG 8-bit RGB {2 * SIDE}^2 encode", "before: Pillow level 6")


@pytest.mark.parametrize("compression", ["rle", 0, 1, 2, 6])
def test_png8_now(benchmark, output8, tmp_path, compression):
    path = run_encode(benchmark, tmp_path / "a.png", lambda f: write_png(f, output8, compression=compression),
                      f"PNG 8-bit RGB {2 * SIDE}^2 encode", f"now: {compression}, all cores")
    assert np.array_equal(np.asarray(Image.open(path)), output8)  # lossless: what was meant to be written


@pytest.mark.parametrize("compression, threads", [(6, 1), ("rle", None)])
def test_png16(benchmark, output16, tmp_path, compression, threads):
    """The 16-bit codec: before = level 6 on one thread (the old writer had three filters, not five)."""
    data = output16
    name = "before: level 6, one thread" if threads == 1 else "now: rle, all cores"
    path = run_encode(benchmark, tmp_path / "a.png", lambda f: write_png(f, data, compression=compression, threads=threads),
                      f"PNG 16-bit RGB {2 * SIDE}^2 encode", name)

    assert np.array_equal(read_png16(str(path)), data)


@pytest.mark.parametrize("now", [False, True])
def test_tiff16(benchmark, output16, tmp_path, now):
    """16-bit colour TIFF through tifffile: before = zlib at tifffile's default level, no predictor."""
    tifffile = pytest.importorskip("tifffile")
    from srcnn_np.io.tiff_io import write_tiff

    data = output16
    encode = ((lambda f: write_tiff(f, data, level=imageio.TIFF_LEVEL)) if now else
              (lambda f: tifffile.imwrite(f, data, photometric="rgb", planarconfig="contig", compression="zlib")))
    path = run_encode(benchmark, tmp_path / "a.tif", encode, f"TIFF 16-bit RGB {2 * SIDE}^2 encode",
                      "now: level 1, predictor, threads" if now else "before: tifffile zlib default")
    assert np.array_equal(tifffile.imread(path), data)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """Four BATCH_SIDE^2 RGB PNG inputs (different crops), the parsed CLI arguments, the jobs and weights."""
    from srcnn_np import batch as cli_batch
    from srcnn_np.batch import BatchOptions, plan_jobs
    from srcnn_np.model import Upscaler

    root = tmp_path_factory.mktemp("batch")
    big = hubble(2 * BATCH_SIDE)
    for i in range(BATCH):
        y, x = (i // 2) * BATCH_SIDE, (i % 2) * BATCH_SIDE
        Image.fromarray(big[y:y + BATCH_SIDE, x:x + BATCH_SIDE]).save(root / f"in{i}.png")
    options = BatchOptions(overwrite=True, quiet=True)
    jobs = plan_jobs([str(root)], str(root / "out"), scale=2, suffix=None, ext=None, failures=[])
    upscaler = Upscaler.load(None, scale=2)
    cli_batch.upscale_job(jobs[0], upscaler, options)  # warm-up: Numba compiles or loads its cache
    return cli_batch, options, jobs, upscaler


def test_batch_sequential(benchmark, batch):
    """Each image read, upscaled and written before the next one starts."""
    run, options, jobs, upscaler = batch
    benchmark.group = f"batch of {BATCH} RGB {BATCH_SIDE}^2 -> {2 * BATCH_SIDE}^2 (s per batch)"
    outcomes = benchmark.pedantic(lambda: [run.upscale_job(job, upscaler, options) for job in jobs], rounds=2, iterations=1)
    assert all(ok for ok, _ in outcomes), outcomes


def test_batch_pipelined(benchmark, batch):
    """What the CLI does: each output written on the writer thread while the next image is computed."""
    run, options, jobs, upscaler = batch
    benchmark.group = f"batch of {BATCH} RGB {BATCH_SIDE}^2 -> {2 * BATCH_SIDE}^2 (s per batch)"
    outcomes = benchmark.pedantic(lambda: list(run.run_pipelined(jobs, upscaler, options)), rounds=2, iterations=1)
    assert all(ok for _, ok, _ in outcomes), outcomes


def test_phases(benchmark, batch):
    """One image's decode, network and encode wall times (extra_info), as --timings prints them."""
    run, options, jobs, upscaler = batch
    benchmark.group = f"phases of one RGB {BATCH_SIDE}^2 -> {2 * BATCH_SIDE}^2"
    line, phases = benchmark.pedantic(lambda: run.compute_job(jobs[0], upscaler, options)(), rounds=2, iterations=1)
    benchmark.extra_info.update({name: round(seconds, 3) for name, seconds in phases.items()})
