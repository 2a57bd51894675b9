"""srcnn_np.chunked.upscale against in-memory srcnn_np.upscale: same input, same process, same threads.

Run (not part of the normal test run):
    flock /tmp/srcnn_cpu.lock python -m pytest benchmarks/test_dask_speed.py --benchmark-enable
The dask entries use the local threaded scheduler; the chunk side is in the entry's name.
"""
import numpy as np
import pytest

da = pytest.importorskip("dask.array")
from srcnn_np import chunked
from srcnn_np import upscale
from srcnn_np.model import resolve_weights

SIZE = 1024  # input side; x2 output 2048 x 2048
CHUNKS = (256, 512, 1024)


@pytest.fixture(scope="module")
def case():
    lr = np.random.default_rng(0).random((SIZE, SIZE), dtype=np.float32)
    kw = resolve_weights(None, scale=2)
    return lr, kw, upscale(lr, kw)  # also the warm-up: Numba compiles or loads its cache


def test_in_memory(benchmark, case):
    lr, kw, _ = case
    benchmark.group = f"dask vs in-memory gray {SIZE}x{SIZE}"
    benchmark.pedantic(upscale, args=(lr, kw), rounds=3, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("chunk", CHUNKS)
def test_dask(benchmark, case, chunk):
    lr, kw, expected = case
    benchmark.group = f"dask vs in-memory gray {SIZE}x{SIZE}"
    benchmark.name = f"test_dask[chunks {chunk}]"
    out = benchmark.pedantic(lambda: chunked.upscale(da.from_array(lr, chunks=chunk), kw).compute(),
                             rounds=3, iterations=1, warmup_rounds=1)
    np.testing.assert_array_equal(out, expected)  # the same image, not just the same time
