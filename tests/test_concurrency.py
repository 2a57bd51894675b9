"""`upscale` from several threads at once, and several processes compiling into one Numba cache.

Both run in subprocesses: a threading layer that cannot take concurrent calls aborts the whole
process (Numba's "workqueue" layer did while the kernels were parallel=True parfors; they now share
rows out on srcnn_np.cpu.threads, so no layer is involved), and the cache test needs processes that
start cold.
"""
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from .checks import assert_close

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE_FLAVOUR_TOL = 1e-6  # about 10 float32 ulps near 1

THREADS_SCRIPT = """
import sys, threading
import numba, numpy as np
import srcnn_np
from tests.conftest import random_weights, sky

weights = random_weights(1)
images = [sky(33 + 5 * i, 29 + 3 * i, (None, 2, 3, 4)[i % 4], seed=i) for i in range(6)]
want = [srcnn_np.upscale(a, weights, mode=("rgb", "y")[i % 2]) for i, a in enumerate(images)]
got = [[] for _ in images]
start = threading.Barrier(len(images))

def work(i):
    start.wait()
    for _ in range(3):
        got[i].append(srcnn_np.upscale(images[i], weights, mode=("rgb", "y")[i % 2]))

threads = [threading.Thread(target=work, args=(i,)) for i in range(len(images))]
for t in threads:
    t.start()
for t in threads:
    t.join()
worst = max(float(np.abs(g - w).max()) for gs, w in zip(got, want) for g in gs)
print(f"layer {numba.threading_layer()}: {sum(map(len, got))} concurrent results, worst difference {worst:.3e}")
sys.exit(0 if worst == 0 and all(len(g) == 3 for g in got) else 1)
"""

# Waits for a start signal (the file argv[1]) after the imports, so that the processes compile at
# the same moment; then upscales the smallest image and saves the result (argv[2]).
CACHE_SCRIPT = """
import os, sys, time
import numpy as np
import srcnn_np
from tests.conftest import random_weights, sky

while not os.path.exists(sys.argv[1]):
    time.sleep(0.005)
np.save(sys.argv[2], srcnn_np.upscale(sky(5, 4, seed=2), random_weights(3)))
"""


def run_python(script, *args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": REPO, **(env or {})})


@pytest.mark.parametrize("layer", ["default", "workqueue"])
def test_upscale_from_several_threads_equals_sequential(layer):
    done = run_python(THREADS_SCRIPT, env={"NUMBA_THREADING_LAYER": layer})
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr[-2000:]}"
    print(done.stdout)


@pytest.mark.slow
def test_processes_compiling_into_one_cold_cache_agree_and_leave_it_usable(tmp_path):
    cache = tmp_path / "numba-cache"
    env = {"NUMBA_CACHE_DIR": str(cache)}
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", CACHE_SCRIPT, str(go), str(tmp_path / f"out{i}.npy")],
                              cwd=REPO, env={**os.environ, "PYTHONPATH": REPO, **env},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(3)]
    time.sleep(2)  # let them import; the kernels compile at the first call, after the signal
    go.write_text("go")
    for i, proc in enumerate(procs):
        out, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, f"process {i}: exit {proc.returncode}\n{err[-2000:]}"
    results = [np.load(tmp_path / f"out{i}.npy") for i in range(3)]
    for i, got in enumerate(results[1:], 1):
        assert np.array_equal(got, results[0]), f"process {i} differs from process 0 by {np.abs(got - results[0]).max():.3e}"
    # a fourth process finds every kernel in the cache: loads it, compiles nothing
    go.write_text("go")
    later = run_python(CACHE_SCRIPT, go, tmp_path / "out3.npy", env={**env, "NUMBA_DEBUG_CACHE": "1"})
    assert later.returncode == 0, later.stderr[-2000:]
    assert "data loaded" in later.stdout and "data saved" not in later.stdout, later.stdout[-3000:]
    # Kernels compiled in the process that runs them and kernels loaded from the cache differ in
    # the last bit of a few pixels (seen: 9.3e-10 at 8 of 80): compare to float32 rounding there.
    from srcnn_np import upscale

    from .conftest import random_weights, sky

    here = upscale(sky(5, 4, seed=2), random_weights(3))
    assert_close("cold-compiled processes vs this one", results[0], here, CACHE_FLAVOUR_TOL, key="compiled vs cached")
    assert_close("cache-loading process vs this one", np.load(tmp_path / "out3.npy"), here, CACHE_FLAVOUR_TOL,
                 key="compiled vs cached")
