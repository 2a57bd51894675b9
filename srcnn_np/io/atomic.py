"""Atomic file output: write a temp file beside the target, fsync it, then move it into place.

A file written through `atomic_output` is either complete at its final path or absent. An existing
file is replaced only with overwrite=True, and even then stays intact until the new one is complete.
A process killed while writing (SIGKILL, power cut) leaves its hidden temp file, ".NAME.XXXXXXXX.tmp"
beside NAME: `remove_stale_temps` clears those for the next run.
"""
import errno
import os
import re
import shutil
import tempfile
from contextlib import contextmanager

# A temp file's name: "." + the target's name + "." + mkstemp's 8 random characters + the suffix
# (".tmp", or ".fits" for FITS writers whose library wants the extension); Zarr temp stores alike.
TEMP_NAME = re.compile(r"\.(?P<target>.+)\.[a-z0-9_]{8}(\.tmp|\.fits)")


class OutputExistsError(FileExistsError):
    """The target exists and overwrite was not asked for."""


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_output(path, *, overwrite: bool = False, suffix: str = ".tmp"):
    """Yield the name of a new empty temp file beside `path`; on a clean exit, move it to `path`.

    Write the temp file by name (some encoders want a real path). It gets the permissions a plain
    open() would give (0666 & ~umask), not mkstemp's 0600. Without `overwrite`, an existing `path`
    raises OutputExistsError, before and (atomically, through a hard link) after writing.
    On any exception, the temp file is removed and `path` is untouched.
    """
    path = os.fspath(path)
    if not overwrite and os.path.lexists(path):
        raise OutputExistsError(errno.EEXIST, "exists", path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)),
                               prefix="." + os.path.basename(path) + ".", suffix=suffix)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        os.close(fd)
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        _commit(tmp, path, overwrite)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def _commit(tmp: str, path: str, overwrite: bool) -> None:
    """Move the finished temp file into place; without overwrite, never clobber (link fails if taken)."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # atomic "create only if absent"
    except FileExistsError:
        raise OutputExistsError(errno.EEXIST, "exists", path) from None
    except OSError:  # a filesystem without hard links
        if os.path.lexists(path):
            raise OutputExistsError(errno.EEXIST, "exists", path) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def remove_stale_temps(targets, before: float) -> tuple[list[str], list[str]]:
    """Remove the temp files (or Zarr temp stores) that interrupted writes to `targets` left.

    Only names of exactly TEMP_NAME's form for one of these targets, in the target's directory,
    last modified before `before` (a time.time(), e.g. this run's start: a write in flight now is
    newer). Returns (paths removed, "path (reason)" for each that could not be removed).
    """
    names_by_dir: dict[str, set[str]] = {}
    for target in targets:
        directory, name = os.path.split(os.path.abspath(os.fspath(target)))
        names_by_dir.setdefault(directory, set()).add(name)
    removed, failed = [], []
    for directory, names in names_by_dir.items():
        try:
            entries = list(os.scandir(directory))
        except OSError:  # no directory yet: nothing left there
            continue
        for entry in entries:
            match = TEMP_NAME.fullmatch(entry.name)
            if not match or match["target"] not in names:
                continue
            try:
                if entry.stat(follow_symlinks=False).st_mtime >= before:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
            except FileNotFoundError:  # gone meanwhile
                continue
            except OSError as e:
                failed.append(f"{entry.path} ({(e.strerror or str(e)).lower()})")
                continue
            removed.append(entry.path)
    return removed, failed
