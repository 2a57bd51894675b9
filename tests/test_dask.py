"""srcnn_np.chunked (the successor of srcnn_np.dask): chunked and out-of-core upscaling equals the
in-memory results; batches on a cluster (srcnn_np.cluster).

The cluster tests run a dask.distributed LocalCluster on 127.0.0.1 with two workers.
"""
import os
import sys

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
zarr = pytest.importorskip("zarr")
import dask  # noqa: E402

from srcnn_np import chunked, cluster  # noqa: E402
from srcnn_np import model, science  # noqa: E402
from srcnn_np.cli import main  # noqa: E402
from srcnn_np.io.atomic import TEMP_NAME  # noqa: E402
from srcnn_np.io.header import provenance_history  # noqa: E402
from srcnn_np.io.imageio import read_image, write_image  # noqa: E402
from srcnn_np.model import Upscaler  # noqa: E402
from srcnn_np.options import ScienceOptions  # noqa: E402

from .checks import assert_close  # noqa: E402
from .conftest import random_weights  # noqa: E402

TOL = 1e-5  # the bound between the chunked and the in-memory result


@pytest.fixture(autouse=True)
def synchronous_dask():
    """One thread, deterministic, fast for the many small graphs here (the cluster tests bring their own)."""
    with dask.config.set(scheduler="synchronous"):
        yield


@pytest.fixture(scope="module")
def cluster_client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


def sky_plane(h, w, seed=0):
    """(h, w) float32 in [0, 1]: smooth background, point sources and noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    plane = 0.2 + 0.1 * np.sin(y / 7.0) * np.cos(x / 5.0) + 0.05 * rng.standard_normal((h, w))
    for cy, cx in rng.uniform(0, (h, w), (6, 2)):
        plane += 0.5 * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / 3.0)
    return np.clip(plane, 0, 1).astype(np.float32)


def chunkings(depth):
    """Chunk shapes for a 37 x 45 plane: single pixels, below the depth, at it, uneven, whole."""
    return [(1, 1), (depth - 1, depth + 1), (depth, depth), ((5, 20, 12), (30, 1, 14)), (13, 7), (37, 45)]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_chunked_upscale_equals_in_memory_for_any_chunking(scale):
    kw = model.resolve_weights(random_weights(1, scale))
    plane = sky_plane(37, 45)
    want = model.upscale(plane, kw, scale=scale)
    assert 0.0 < want.min() and want.max() < 1.0, "clipping would hide differences"
    for chunks in chunkings(chunked.overlap_depth(scale)):
        got = chunked.upscale(da.from_array(plane, chunks=chunks), kw, scale=scale)
        assert got.shape == (37 * scale, 45 * scale)
        assert_close(f"x{scale} chunks {chunks}", got.compute(), want, TOL, key=f"dask x{scale}")


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_overlap_depth_is_the_least_that_works(scale, monkeypatch):
    """One input pixel less of overlap changes the result beyond the tolerance."""
    kw = model.resolve_weights(random_weights(1, scale))
    plane = sky_plane(37, 45)
    want = model.upscale(plane, kw, scale=scale)
    short = chunked.overlap_depth(scale) - 1
    monkeypatch.setattr(chunked, "overlap_depth", lambda s: short)
    got = chunked.upscale(da.from_array(plane, chunks=(12, 15)), kw, scale=scale).compute()
    worst = float(np.abs(got - want).max())
    assert worst > TOL, f"depth {short} at x{scale} still matches (max diff {worst:.2e})"


def test_colour_modes_alpha_and_integer_input_match_in_memory():
    kw = model.resolve_weights(random_weights(2, 2))
    rng = np.random.default_rng(3)
    rgba = (rng.uniform(0.2, 0.8, (29, 34, 4)) * 255).astype(np.uint8)
    for mode in model.MODES:
        want = model.upscale(rgba, kw, mode=mode)
        got = chunked.upscale(da.from_array(rgba, chunks=(7, 9, 2)), kw, mode=mode).compute()
        assert_close(f"RGBA uint8 mode {mode}", got, want, TOL, key="dask rgba")


def test_bad_arrays_are_refused():
    kw = model.resolve_weights(random_weights(0, 2))
    with pytest.raises(ValueError, match="channels"):
        chunked.upscale(da.zeros((8, 8, 5), chunks=4), kw)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        chunked.upscale(da.zeros((8,), chunks=4), kw)
    with pytest.raises(ValueError, match="one \\(H, W\\) plane"):
        chunked.upscale_science(da.zeros((2, 8, 8), chunks=4), kw)


def science_plane(seed=0):
    """(50, 61) float32 in physical units (about -3 .. 40) with NaN/inf holes, one deeper than FILL_ROUNDS."""
    plane = sky_plane(50, 61, seed) * 43.0 - 3.0
    plane[8:32, 10:40] = np.nan  # 24 x 30: pixels 12 deep, filled by the median
    plane[45, 3] = np.inf
    plane[:2, :] = np.nan
    plane[40:, 50:] = np.nan  # a whole chunk blank for (10, 11) chunks
    return plane


@pytest.mark.parametrize("options", [{}, {"conserve_flux": True, "flux_units": "total", "stretch": "asinh"}])
def test_science_plane_equals_in_memory_with_blanks(options):
    kw = model.resolve_weights(None, 2)
    plane = science_plane()
    want = science.upscale_science(plane, lambda a: model.upscale(a, kw), 2, **options)
    span = float(np.nanmax(want[np.isfinite(want)]) - np.nanmin(want[np.isfinite(want)]))
    for chunks in [(1, 1), (10, 11), ((3, 30, 17), (40, 21)), (50, 61)]:
        got = chunked.upscale_science(da.from_array(plane, chunks=chunks), kw, **options).compute()
        assert got.dtype == want.dtype
        nan_got, nan_want = np.isnan(got), np.isnan(want)
        assert (nan_got == nan_want).all(), f"chunks {chunks}: NaN differs at {np.argwhere(nan_got != nan_want)[:5]}"
        assert_close(f"science chunks {chunks} {options}", got[~nan_want] / span, want[~nan_want] / span,
                     TOL, key="dask science (relative to span)")


def test_constant_and_blank_planes():
    kw = model.resolve_weights(None, 2)
    constant = np.full((9, 10), 7.5, dtype=np.float32)
    constant[2, 3] = np.nan
    want = science.upscale_science(constant, lambda a: model.upscale(a, kw), 2)
    got = chunked.upscale_science(da.from_array(constant, chunks=4), kw).compute()
    assert np.array_equal(np.isnan(got), np.isnan(want)) and np.array_equal(got[~np.isnan(got)], want[~np.isnan(want)])
    with pytest.raises(science.BlankImageError):
        chunked.upscale_science(da.full((6, 6), np.nan, chunks=3), kw)


def test_an_upscaler_as_weights_carries_every_choice():
    """An Upscaler passed as the weights brings its science options; pixel levels (uint8) mapped
    by them use the whole image's range as in memory, and integer science data is counts."""
    upscaler = Upscaler.load(scale=2, tile=16, science=ScienceOptions("asinh", conserve_flux=True))
    plane = sky_plane(37, 45, seed=9)
    for data in (plane, (plane * 255).astype(np.uint8)):
        got = chunked.upscale(da.from_array(data, chunks=(12, 15)), upscaler).compute()
        assert got.dtype == np.float32
        assert_close(f"Upscaler as weights, {data.dtype}", got, upscaler(data), TOL, key="dask Upscaler")
    counts = (plane * 3000 - 500).astype(np.int16)
    want = upscaler.science_data(counts)
    got = chunked.upscale_science(da.from_array(counts, chunks=(12, 15)), upscaler).compute()
    assert got.dtype == want.dtype == np.float32
    assert_close("int16 science plane / span", got / 3000, want / 3000, TOL, key="dask science (relative to span)")


def test_zarr_and_fits_out_of_core_through_the_cli(tmp_path, capsys):
    fits = pytest.importorskip("astropy.io.fits")
    kw = model.resolve_weights(None, 2)
    plane = science_plane(1)
    want = science.upscale_science(plane, lambda a: model.upscale(a, kw), 2)
    src = tmp_path / "in.zarr"
    zarr.create_array(src, shape=plane.shape, chunks=(16, 16), dtype=np.float32)[...] = plane
    header = fits.Header({"CRPIX1": 10.0, "CRPIX2": 20.0, "CDELT1": -1e-4, "CDELT2": 1e-4,
                          "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 10.0, "CRVAL2": 20.0})
    fits.PrimaryHDU(plane, header).writeto(tmp_path / "in.fits")
    for name in ("in.zarr", "in.fits"):
        out = tmp_path / f"out_{name}.zarr"
        assert main(["upscale", str(tmp_path / name), "-o", str(out), "-q"]) == 0
        stored = zarr.open_array(out, mode="r")
        got = stored[...]
        assert (np.isnan(got) == np.isnan(want)).all()
        assert_close(f"{name} -> zarr", got[~np.isnan(want)], want[~np.isnan(want)], TOL * 43)
    attrs = zarr.open_array(tmp_path / "out_in.fits.zarr").attrs
    cards = fits.Header.fromstring(attrs["fits_header"])
    assert (cards["NAXIS1"], cards["NAXIS2"], cards["CRPIX1"], cards["CDELT2"]) == (122, 100, 19.5, 5e-5)
    provenance = Upscaler.load(scale=2).provenance(tmp_path / "in.fits")
    assert attrs["provenance"] == {key: value for key, (value, _) in provenance.items()}, attrs["provenance"]
    assert attrs["srcnn_np"] == provenance_history(provenance) and cards["SRCNNSRC"] == "in.fits"
    # zarr -> FITS, gathered in memory
    for name in ("out.fits", "out.fits.gz", "out.fits.fz"):  # tile-compressed: the image is in HDU 1
        assert main(["upscale", str(src), "-o", str(tmp_path / name), "-q"]) == 0
        with fits.open(tmp_path / name) as hdus:
            got = hdus[1 if name.endswith(".fz") else 0].data
        assert_close(f"zarr -> {name}", np.nan_to_num(got), np.nan_to_num(want), TOL * 43)
    # an existing output is refused and left alone; no temporary store is left behind
    before = sorted(os.listdir(tmp_path / "out_in.zarr.zarr"))
    capsys.readouterr()
    assert main(["upscale", str(src), "-o", str(tmp_path / "out_in.zarr.zarr")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists (use --overwrite to replace it)" in err, err
    assert sorted(os.listdir(tmp_path / "out_in.zarr.zarr")) == before
    assert not [n for n in os.listdir(tmp_path) if TEMP_NAME.fullmatch(n)]


def test_out_of_core_options_and_bad_arrays(tmp_path, capsys):
    """--conserve-flux/--flux-units reach the out-of-core path; bad outputs and data are one line."""
    plane = science_plane(2)
    src = tmp_path / "in.zarr"
    zarr.create_array(src, shape=plane.shape, chunks=(16, 16), dtype=np.float32)[...] = plane
    out = tmp_path / "total.zarr"
    assert main(["upscale", str(src), "-o", str(out), "-q", "--conserve-flux", "--flux-units", "total"]) == 0
    got = zarr.open_array(out, mode="r")[...]
    sums = got.reshape(plane.shape[0], 2, plane.shape[1], 2).sum(axis=(1, 3))
    ok = np.isfinite(plane)
    assert_close("block sums == input pixels", sums[ok], plane[ok], 1e-5 * np.nanmax(np.abs(plane)))
    assert main(["upscale", str(src), "-o", str(tmp_path / "x.png"), "-q"]) == 2  # never FITS bytes in a .png
    assert "goes to a .zarr or FITS output" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
    zarr.create_array(tmp_path / "empty.zarr", shape=(0, 8), chunks=(4, 4), dtype=np.float32)
    zarr.create_array(tmp_path / "complex.zarr", shape=(8, 8), chunks=(4, 4), dtype=np.complex64)
    for name in ("empty.zarr", "complex.zarr"):
        assert main(["upscale", str(tmp_path / name), "-o", str(tmp_path / f"o_{name}"), "-q"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and name in err and "Traceback" not in err, err
        assert not (tmp_path / f"o_{name}").exists()


def test_unreadable_inputs_fail_with_one_line(tmp_path, capsys):
    (tmp_path / "junk.fits").write_bytes(b"not a fits file at all")
    for bad in ("missing.fits", "junk.fits", "missing.zarr"):
        assert main(["upscale", str(tmp_path / bad), "-o", str(tmp_path / "o.zarr")]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and bad in err, err
    assert not os.path.exists(tmp_path / "o.zarr")


def test_chunked_array_on_a_local_cluster_equals_single_process(cluster_client):
    kw = model.resolve_weights(None, 2)
    plane = sky_plane(150, 170, seed=4)
    want = model.upscale(plane, kw)
    result = chunked.upscale(da.from_array(plane, chunks=(40, 50)), kw)
    got = cluster_client.compute(result).result()
    assert_close("LocalCluster chunked array", got, want, TOL, key="dask cluster")
    assert len(cluster_client.scheduler_info()["workers"]) == 2


def test_batch_of_images_on_a_local_cluster_equals_single_process(cluster_client, tmp_path, capsys, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(5)
    for i in range(4):
        shape = (20 + 7 * i, 31 - 3 * i) + ((3,) if i % 2 else ())
        write_image(str(src / f"img{i}.png"), rng.uniform(0, 1, shape).astype(np.float32), "png", 8)
    local, remote = tmp_path / "local", tmp_path / "cluster"
    assert main(["upscale", str(src), "-o", str(local), "-q"]) == 0
    address = cluster_client.scheduler.address
    assert main(["upscale", str(src), "-o", str(remote), "-q", "--scheduler", address]) == 0
    names = sorted(os.listdir(local))
    assert names == sorted(os.listdir(remote)) and len(names) == 4
    for name in names:
        a, b = read_image(str(local / name)).pixels, read_image(str(remote / name)).pixels
        assert np.array_equal(a, b), f"{name}: cluster output differs from the local one"
    # failures on the cluster are reported per file, the rest still done; one task in flight
    # per worker thread at a time
    monkeypatch.setattr(cluster, "IN_FLIGHT_PER_THREAD", 1)
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    capsys.readouterr()
    assert main(["upscale", str(src), "-o", str(tmp_path / "again"), "--scheduler", address, "-q"]) == 1
    err = capsys.readouterr().err
    assert "1 input(s) failed, 4 done" in err and "broken.png" in err, err


def test_unreachable_scheduler_is_a_usage_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 0.5)
    write_image(str(tmp_path / "a.png"), np.zeros((8, 8), np.float32), "png", 8)
    assert main(["upscale", str(tmp_path), "-o", str(tmp_path / "out"), "--scheduler", "tcp://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "tcp://127.0.0.1:9" in err, err


def test_plain_imports_stay_light():
    """srcnn_np, its CLI and srcnn_np.chunked itself import none of dask, distributed, zarr."""
    import subprocess

    code = ("import sys, srcnn_np, srcnn_np.cli, srcnn_np.chunked; "
            "print(sorted(m for m in ('dask', 'distributed', 'zarr') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_missing_dask_gives_the_install_hint(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.array", None)
    with pytest.raises(ImportError, match=r"srcnn_np\[dask\]"):
        chunked.upscale(np.zeros((4, 4), np.float32))
    assert main(["upscale", str(tmp_path / "in.zarr"), "-o", str(tmp_path / "out.zarr")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "srcnn_np[dask]" in err, err
