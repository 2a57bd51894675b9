"""A minimal progress bar on stderr, silent when stderr is not a terminal or when quiet.

Why not tqdm (issue 14 asked): the runtime needs only numpy, numba and pillow, so tqdm could only be
an optional extra, and then this fallback would have to stay anyway: two code paths, and a bar that
looks different depending on what happens to be installed, to save thirty lines. What srcnn_np needs
(drawn only on a terminal, at most ten redraws a second, callable from the tile loop and Dask
callbacks, one final newline) is all here.
"""
import sys
import time


class Progress:
    """Progress(total, label).update(n) draws `label [#####.....] k/total`; close() ends the line."""

    def __init__(self, total: int, label: str, *, enabled: bool | None = None, stream=None):
        self.stream = stream or sys.stderr
        # no stream when stderr is closed (`2>&-`): nothing to draw on
        self.enabled = self.stream is not None and (self.stream.isatty() if enabled is None else enabled)
        self.total, self.label, self.done = max(total, 1), label, 0
        self.started = time.monotonic()
        self._last_draw = 0.0

    def update(self, n: int = 1) -> None:
        self.done = min(self.done + n, self.total)
        now = time.monotonic()
        if self.enabled and (now - self._last_draw > 0.1 or self.done == self.total):
            self._last_draw = now
            width = 30
            filled = int(width * self.done / self.total)
            elapsed = now - self.started
            self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
                              f"{self.done}/{self.total} {elapsed:.1f}s")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
