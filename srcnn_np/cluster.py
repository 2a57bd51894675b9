"""Batches of files on a dask.distributed cluster, and the kernels' one thread per Dask task.

`connect` opens a Client on a scheduler; `run_on_cluster` sends one task per item to it, each
running with the Numba kernels single-threaded (`one_kernel_thread`: Dask runs one task per
worker thread, more kernel threads would oversubscribe). srcnn_np.chunked runs its blocks in the
same context. distributed is an optional extra: pip install "srcnn_np[dask]"; it is imported
inside the functions.
"""
import itertools
from contextlib import contextmanager

from .errors import one_line
from .io.zarr_io import DASK_HINT

CONNECT_TIMEOUT_S = 10.0
IN_FLIGHT_PER_THREAD = 4  # batch tasks queued per worker thread: keeps workers busy, the scheduler small


@contextmanager
def one_kernel_thread():
    """Run the Numba kernels single-threaded in this thread (numba's setting is per thread) and
    restore the setting after: dask runs one block per core, more threads would oversubscribe."""
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def connect(address: str):
    """A dask.distributed Client for the scheduler at `address` ("tcp://HOST:PORT"), waiting up
    to CONNECT_TIMEOUT_S for it.

    Raises ImportError (distributed missing) or OSError (no scheduler there), one line each.
    """
    try:
        from distributed import Client
    except ImportError:
        raise ImportError(DASK_HINT) from None
    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as e:
        raise OSError(f"cannot connect to the dask scheduler at {address} ({type(e).__name__}: {e})") from None


def _single_threaded_call(fn, item, *args):
    with one_kernel_thread():
        return fn(item, *args)


def run_on_cluster(client, fn, items, *args):
    """fn(item, *args) for every item, one task each on a dask.distributed Client.

    args are sent to every worker once (client.scatter), not with each task; fn runs with the
    Numba kernels single-threaded (a worker runs one task per thread). fn must be importable on
    the workers (a module-level function of an installed package). At most IN_FLIGHT_PER_THREAD
    tasks per worker thread are submitted at a time, so millions of items never flood the
    scheduler. Yields (item, result, error) as tasks finish, in completion order: error is None,
    or a one-line description of what the task raised (or why it was lost) and result None.
    """
    from distributed import as_completed

    shared = [client.scatter(a, broadcast=True) for a in args]
    window = max(IN_FLIGHT_PER_THREAD * sum(client.nthreads().values()), 1)
    pending = iter(items)
    in_flight = {}
    finished = as_completed()

    def submit(count):
        for item in itertools.islice(pending, count):
            future = client.submit(_single_threaded_call, fn, item, *shared, pure=False)
            in_flight[future] = item
            finished.add(future)

    submit(window)
    for future in finished:
        item = in_flight.pop(future)
        submit(1)
        try:
            yield item, future.result(), None
        except Exception as e:  # noqa: BLE001 - whatever the task raised, re-raised here, or a lost worker
            yield item, None, f"{type(e).__name__}: {one_line(e)}"
