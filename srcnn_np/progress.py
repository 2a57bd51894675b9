"""A minimal progress bar on stderr, silent when stderr is not a terminal or when quiet; and
`--progress json`, the same progress as JSON lines for programs that call srcnn-np (JsonProgress).

Why not tqdm (issue 14 asked): the runtime needs only numpy, numba and pillow, so tqdm could only be
an optional extra, and then this fallback would have to stay anyway: two code paths, and a bar that
looks different depending on what happens to be installed, to save thirty lines. What srcnn_np needs
(drawn only on a terminal, at most ten redraws a second, callable from the tile loop and Dask
callbacks, one final newline) is all here.
"""
import json
import os
import sys
import threading
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


SCHEMA = 1  # the "schema" of the start event; raised only when a field changes meaning or goes away


class JsonProgress:
    """`--progress json`: the batch as events, one JSON object a line on `stream` (stdout), each
    line written whole and flushed, from any thread. Field names are documented in docs/siril.md
    ("Progress for programs") and stable; enabled=False makes every method a no-op.

    Events: start, file_start, progress (network tiles of one file), file_end, error (a failure
    that names no planned file), end. A file is identified by `index`, its place in the batch.
    """

    def __init__(self, stream=None, *, enabled: bool = True):
        self.stream = stream or sys.stdout
        self.enabled = enabled and self.stream is not None
        self.lock = threading.Lock()
        self.index: dict[str, int] = {}  # output path -> index
        self.started: dict[int, float] = {}  # index -> time.monotonic() at file_start
        self.stopped: dict[int, float] = {}  # index -> when its output was written (or failed)
        self.fractions: dict[int, float] = {}  # index -> fraction of its network tiles done
        self.began = time.monotonic()

    def emit(self, event: str, **fields) -> None:
        if not self.enabled:
            return
        line = json.dumps({"event": event, **fields}, ensure_ascii=False, allow_nan=False)
        with self.lock:
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except BrokenPipeError:  # the reader left: the batch goes on without events
                self.enabled = False
                os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())

    def start(self, outputs: list[str]) -> None:
        """The batch's planned files, by output path (each one's index is its place here)."""
        self.index = {output: i for i, output in enumerate(outputs)}
        self.emit("start", schema=SCHEMA, files=len(outputs))

    def file_start(self, source: str, output: str) -> None:
        if not self.enabled:
            return
        i = self.index.get(output, -1)
        self.started[i] = time.monotonic()
        self.emit("file_start", index=i, input=source, output=output)

    def stop_clock(self, output: str) -> None:
        """Note that this file's work ended now (its file_end may be reported later)."""
        if not self.enabled:
            return
        self.stopped.setdefault(self.index.get(output, -1), time.monotonic())

    def tiles(self, source: str, output: str, total: int) -> "FileFraction":
        """A counter of `total` network tiles for this file, with Progress's update()/close()."""
        return FileFraction(self, self.index.get(output, -1), source, total)

    def file_end(self, source: str, output: str | None, status: str, message: str) -> None:
        """status "ok" (output written), "failed" or "skipped" (--skip-existing)."""
        if not self.enabled:
            return
        i = self.index.get(output, -1)
        seconds = None  # no file_start here: skipped, refused before its start, or run on a cluster's worker
        if i in self.started:
            seconds = round(self.stopped.get(i, time.monotonic()) - self.started[i], 3)
        self.fractions[i] = 1.0  # done with, for batch_fraction
        self.emit("file_end", index=i, input=source, output=output, status=status, seconds=seconds, message=message)

    def error(self, message: str) -> None:
        self.emit("error", message=message)

    def end(self, exit_code: int, *, done: int, failed: int, skipped: int) -> None:
        self.emit("end", status="ok" if exit_code == 0 else "failed", exit_code=exit_code, files=len(self.index),
                  done=done, failed=failed, skipped=skipped, seconds=round(time.monotonic() - self.began, 3))

    def batch_fraction(self) -> float:
        return sum(self.fractions.values()) / max(len(self.index), 1)


class FileFraction:
    """One file's network tiles as `progress` events: one each time the whole percent done grows
    (at most 100 a file), fraction = tiles done / tiles, batch_fraction over the batch's files."""

    def __init__(self, events: JsonProgress, index: int, source: str, total: int):
        self.events, self.index, self.source = events, index, source
        self.total, self.done, self.percent = max(total, 1), 0, 0
        self.lock = threading.Lock()  # Dask callbacks count from several threads

    def update(self, n: int = 1) -> None:
        with self.lock:
            self.done = min(self.done + n, self.total)
            percent = 100 * self.done // self.total
            if percent <= self.percent:
                return
            self.percent = percent
            fraction = self.done / self.total
            self.events.fractions[self.index] = fraction
            batch = self.events.batch_fraction()
        self.events.emit("progress", index=self.index, input=self.source, fraction=round(fraction, 4),
                         batch_fraction=round(batch, 4))

    def close(self) -> None:
        pass
