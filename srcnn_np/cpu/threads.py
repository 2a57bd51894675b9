"""Sharing a kernel's rows out among threads (the kernels are compiled with nogil=True).

The thread count is Numba's setting for the calling thread (numba.set_num_threads, or
srcnn_np.set_num_threads), so code that sets it per thread (srcnn_np.cluster) keeps working.
"""
from concurrent.futures import ThreadPoolExecutor
from threading import Lock

import numba

_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    with _pools_lock:
        if workers not in _pools:
            _pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix="srcnn_np")
        return _pools[workers]


def bands_of(n: int, count: int) -> list[tuple[int, int]]:
    """[0, n) cut into min(count, n) contiguous (start, stop) bands of near-equal size."""
    count = max(1, min(count, n))
    return [(n * i // count, n * (i + 1) // count) for i in range(count)]


def run_bands(kernel, n: int, args: tuple, bands: int | None = None, bands_per_thread: int = 1) -> None:
    """kernel(*args, start, stop) for bands [start, stop) covering rows [0, n), on the threads.

    bands: how many bands (None: threads x bands_per_thread; more bands than threads balance the
    load when other processes share the cores). The calling thread waits for all of them.
    """
    workers = numba.get_num_threads()
    parts = bands_of(n, workers * bands_per_thread if bands is None else bands)
    if workers == 1 or len(parts) == 1:
        for start, stop in parts:
            kernel(*args, start, stop)
        return
    for future in [_pool(min(workers, len(parts))).submit(kernel, *args, start, stop) for start, stop in parts]:
        future.result()
