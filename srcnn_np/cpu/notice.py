"""One line on stderr when Numba is about to compile srcnn_np's CPU kernels (not yet in its cache).

Numba announces each real compile (a cache miss, never a cache load) as a "numba:compile" event;
the first one for a function of srcnn_np.cpu prints NOTICE, once per process.
"""
import sys
from threading import Lock

from numba.core import event

NOTICE = "compiling CPU kernels for this machine (once)"


class _FirstCompile(event.Listener):
    def __init__(self):
        self.told = False
        self.lock = Lock()

    def on_start(self, ev):
        func = getattr(ev.data.get("dispatcher"), "py_func", None)
        if getattr(func, "__module__", "").startswith(__package__ + "."):
            with self.lock:
                if not self.told:
                    self.told = True
                    print(NOTICE, file=sys.stderr, flush=True)

    def on_end(self, ev):
        pass


event.register("numba:compile", _FirstCompile())
