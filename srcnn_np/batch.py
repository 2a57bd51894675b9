"""A batch of files through one Upscaler: plan the jobs, then read -> upscale -> write each.

    plan_jobs(inputs, output, ...)        every output path and format; collisions become failures
    run_batch(jobs, upscaler, options)    skip or refuse existing outputs, then each job in order
                                          (the writes pipelined), or on a --scheduler cluster
    upscale_job(job, upscaler, options)   one file: read_any -> upscaler -> write_any, any format

Every format takes the same route (a FITS file too: io/ reads it as data plus a header, the
Upscaler maps its planes into the network's range and back, io/ writes it with the header
rescaled). A failure fails its file only: it becomes one line (errors.failure_line), the batch
goes on and reports it at the end. The options are a frozen BatchOptions, which is also what a
cluster's workers receive beside the Upscaler.
"""
import contextlib
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .config import MAX_PIXELS_DEFAULT
from .errors import PROG, UsageError, exists, failure_line
from .io.formats import EXT_CHOICES, EXTENSIONS, converted, format_of, kind_of, read_any, split_extension, \
    upscaled_metadata, write_any
from .io.imageio import PNG_COMPRESSION, check_regular_file, quiet_decoders, refuse_clipping
from .progress import JsonProgress, Progress

SILENT = JsonProgress(enabled=False)  # no --progress json: no events
CROSSING_KINDS = ("FITS converts only to FITS or a float TIFF (.tif), and images to FITS only from float samples "
                  "(a float TIFF): other conversions would lose the physical values or the header")


@dataclass(frozen=True)
class Job:
    source: str  # input file
    target: str  # output file
    fmt: str  # output format: "png", "jpeg", "tiff", "xisf" or "fits" (see srcnn_np.io.formats)


@dataclass(frozen=True)
class BatchOptions:
    """How a batch reads, writes and reports (the CLI's options beside the Upscaler's)."""

    overwrite: bool = False
    skip_existing: bool = False
    max_pixels: int = MAX_PIXELS_DEFAULT
    hdu: str | None = None  # FITS inputs' HDU: index or EXTNAME (None: the first image HDU)
    quantize_level: float = 0.0  # .fits.fz outputs of float data (see io.fits_io.write_fits)
    png_compression: int | str = PNG_COMPRESSION
    threads: int | None = None  # encoder threads (PNG, TIFF)
    compare: bool = False  # also write the before/after viewer beside each output
    timings: bool = False  # each image's decode, network and encode times on stderr
    quiet: bool = False  # no bar, no per-file lines
    scheduler: str | None = None  # a dask.distributed scheduler's address
    started: float = field(default_factory=time.time)  # when the batch began (time.time())


class JobFailed(Exception):
    """One job failed; the message is its one failure line."""


def expand_inputs(inputs: list[str], failures: list[str]) -> list[str]:
    """Files named, plus the entries with an image extension directly inside each directory named
    (sorted), except subdirectories."""
    files = []
    for item in inputs:
        if os.path.isdir(item):
            try:
                names = sorted(os.listdir(item))
            except OSError as e:
                failures.append(f"{item}: cannot list directory ({e.strerror})")
                continue
            # not only regular files: a pipe or a dangling or looping link is reported, not skipped
            for n in names:
                path = os.path.join(item, n)
                if os.path.isdir(path):
                    report_skipped(path, "a directory (directories are not searched recursively)")
                elif format_of(n) is None:
                    report_skipped(path, f"not a supported file type ({split_extension(n)[1] or 'no extension'})")
                else:
                    files.append(path)
        elif os.path.lexists(item):
            files.append(item)
        else:
            failures.append(f"{item}: no such file or directory")
    return files


def report_skipped(path: str, reason: str) -> None:
    """One stderr line for a directory entry a batch leaves out, so that nothing is skipped silently."""
    print(f"{PROG}: skipping {path}: {reason}", file=sys.stderr)


def plan_jobs(inputs: list[str], output: str, *, scale: int, suffix: str | None, ext: str | None,
              failures: list[str]) -> list[Job]:
    """Every output path and format. One input file: `output` is the output file; several inputs
    or a directory: `output` is a directory (created) and each output is named after its input
    plus `suffix` (default _x<scale>), in its input's format unless `ext` (an EXT_CHOICES key).
    Collisions and self-overwrites are appended to failures; UsageError for an unusable output."""
    sources = expand_inputs(inputs, failures)
    single = (len(inputs) == 1 and not os.path.isdir(inputs[0])
              and not os.path.isdir(output) and not output.endswith(os.sep))
    if single:
        fmt = format_of(output)
        if fmt is None:
            raise UsageError(f"{output}: cannot tell the output format; end it with "
                             f"{', '.join(sorted(EXTENSIONS))}")
        jobs = [Job(s, output, fmt) for s in sources]
    else:
        try:
            if sources:  # nothing to write, nothing created
                os.makedirs(output, exist_ok=True)
        except OSError as e:
            raise UsageError(f"{output}: cannot create output directory ({e.strerror})") from None
        suffix = f"_x{scale}" if suffix is None else suffix
        jobs = []
        for s in sources:
            stem, in_ext = split_extension(s)
            fmt = EXTENSIONS[EXT_CHOICES[ext]] if ext else format_of(s)
            if fmt is None:
                failures.append(f"{s}: unknown image extension {in_ext!r}")
                continue
            jobs.append(Job(s, os.path.join(output, stem + suffix + (EXT_CHOICES[ext] if ext else in_ext)), fmt))
    planned, seen = [], {}
    for job in jobs:
        key = os.path.realpath(job.target)
        if key in seen:
            failures.append(f"{job.source}: output {job.target} would also be written for {seen[key]}")
        elif os.path.realpath(job.source) == key:
            failures.append(f"{job.source}: output would replace the input")
        else:
            seen[key] = job.source
            planned.append(job)
    return planned


def tile_counter(job: Job, tiles: int, options: BatchOptions, report: JsonProgress):
    """What counts one job's network tiles (update(), close()): --progress json's events, or the
    bar on a terminal (not when quiet, nor for images of fewer than 8 tiles). FITS gets the bar
    too: its reader silences stderr only while it reads, before the network runs."""
    if report.enabled:
        return report.tiles(job.source, job.target, tiles)
    return Progress(tiles, os.path.basename(job.source), enabled=False if options.quiet or tiles < 8 else None)


def compute_job(job: Job, upscaler, options: BatchOptions, report: JsonProgress = SILENT):
    """Read and upscale one job. Returns a function of no arguments that writes the output and
    returns (summary line, phases): phases = {"decode": s, "network": s, "encode": s} wall
    times. Raises JobFailed (one line) for anything that fails this file."""
    source_kind = kind_of(format_of(job.source) or "png")  # an unknown extension: an image, told by its bytes
    if source_kind == "fits" and job.fmt not in ("fits", "tiff"):
        raise JobFailed(f"{job.source}: {CROSSING_KINDS} (output {job.target})")
    report.file_start(job.source, job.target)
    started = time.monotonic()
    try:
        check_regular_file(job.source)
        with quiet_decoders():  # astropy's warnings about a damaged file: the error line says it
            image = read_any(job.source, max_pixels=options.max_pixels, hdu=options.hdu)
        data = image.data if source_kind == "fits" else image.pixels
        if job.fmt == "fits" and source_kind != "fits" and data.dtype.kind != "f":
            raise JobFailed(f"{job.source}: {CROSSING_KINDS} (output {job.target})")
        if job.fmt not in ("tiff", "fits"):  # physical units in: physical units out, which these formats clip
            refuse_clipping(job.target, data, job.fmt)
        decoded = time.monotonic()
        planes = data[..., 0, 0].size if source_kind == "fits" else 1
        counter = tile_counter(job, upscaler.tiles(data.shape[-2:] if planes > 1 else data.shape, planes),
                               options, report)
        try:
            result = (upscaler.science_data(data, counter.update) if source_kind == "fits"
                      else upscaler(data, counter.update))
        finally:
            counter.close()
        metadata = upscaled_metadata(image, upscaler.scale, upscaler.provenance(job.source))
        sizes = f"{size_text(data, source_kind)} -> {size_text(result, source_kind)}"
        result = converted(result, source_kind, job.fmt)
    except JobFailed:
        raise
    except Exception as e:  # noqa: BLE001 - a bad file, no memory, or a bug: this file fails, not the batch
        raise JobFailed(failure_line(job.source, e)) from None
    phases = {"decode": decoded - started, "network": time.monotonic() - decoded}
    bit_depth = 32 if job.fmt == "fits" else getattr(image, "bit_depth", 32)

    def write() -> tuple[str, dict]:
        encoding = time.monotonic()
        try:
            write_any(job.target, result, job.fmt, bit_depth, overwrite=options.overwrite,
                      icc_profile=getattr(image, "icc_profile", None), metadata=metadata,
                      quantize_level=options.quantize_level, png_compression=options.png_compression,
                      threads=options.threads)
        except Exception as e:  # noqa: BLE001 - as above
            raise JobFailed(failure_line(job.target if isinstance(e, FileExistsError) else job.source, e)) from None
        finally:
            report.stop_clock(job.target)
        phases["encode"] = time.monotonic() - encoding
        return f"{job.source} -> {job.target} ({sizes}, {time.monotonic() - started:.2f} s)", phases

    return write


def size_text(data, kind: str) -> str:
    """'WxH' of image pixels (H, W[, C]); every axis of FITS data, fastest first ('WxHxN')."""
    return "x".join(map(str, data.shape[::-1] if kind == "fits" else data.shape[1::-1]))


def upscale_job(job: Job, upscaler, options: BatchOptions, report: JsonProgress = SILENT) -> tuple[bool, str]:
    """Read, upscale and write one job (and its viewer with options.compare): (True, summary
    line) or (False, failure line).

    Runs in this process or as a task on a --scheduler cluster's worker. On a cluster a task whose
    worker died is run again; if that worker had already moved the output into place (complete:
    outputs are written atomically), the output is this batch's and the retry reports it done.
    """
    if options.scheduler and not options.overwrite and written_since(job.target, options.started):
        return True, f"{job.source} -> {job.target} (written by an attempt on a worker that was lost)"
    try:
        if options.compare:
            return True, upscale_and_compare(job, upscaler, options, report)
        return True, compute_job(job, upscaler, options, report)()[0]
    except JobFailed as e:
        return False, str(e)


def run_file(source, target, upscaler, options: BatchOptions | None = None) -> str:
    """One file through the batch's route (compute_job, then its write), outside a batch: the
    output's format from its name. Returns the summary line; raises JobFailed (one line)."""
    source, target = os.fspath(source), os.fspath(target)
    options = options or BatchOptions()
    fmt = format_of(target)
    if fmt is None:
        raise JobFailed(f"{target}: cannot tell the output format; end it with {', '.join(sorted(EXTENSIONS))}")
    if os.path.lexists(target) and not options.overwrite:
        raise JobFailed(exists(target))
    return compute_job(Job(source, target, fmt), upscaler, options)()[0]


def upscale_and_compare(job: Job, upscaler, options: BatchOptions, report: JsonProgress) -> str:
    """compute_job and write, then (--compare) the before/after viewer beside its output
    (viewer.viewer_path). Returns the summary line; raises JobFailed."""
    from .viewer import ViewerError, viewer_path, write_viewer

    html = viewer_path(job.target)
    if os.path.lexists(html) and not options.overwrite:
        raise JobFailed(exists(html))
    line = compute_job(job, upscaler, options, report)()[0]
    try:
        write_viewer(job.source, job.target, html, hdu=options.hdu, overwrite=options.overwrite)
    except ViewerError as e:
        raise JobFailed(f"{job.source}: upscaled to {job.target}, but no viewer: {e}") from None
    return f"{line}; viewer {html}"


def written_since(path, started: float) -> bool:
    """Whether `path` exists and was last modified at or after `started` (time.time())."""
    try:
        return os.lstat(path).st_mtime >= started
    except OSError:
        return False


def run_pipelined(jobs: list[Job], upscaler, options: BatchOptions, report: JsonProgress = SILENT):
    """Yield (job, ok, line) for each job, in order, each output written on a writer thread
    while the next input is read and upscaled. At most one write is in flight (two results in
    memory). An interrupt lets that write finish (its output is complete, no temp file) and yields
    its outcome, so that every output on disk is reported, then propagates. options.timings: each
    image's phases, and the batch's wall time, on stderr."""
    started = time.monotonic()

    def finish(job, future):  # in the main thread: a decoder may be silencing stderr meanwhile
        try:
            line, phases = future.result()
        except JobFailed as e:
            return job, False, str(e)
        if options.timings:
            print(f"{PROG}: timings {job.source}: " + ", ".join(f"{name} {s:.2f} s" for name, s in phases.items()),
                  file=sys.stderr, flush=True)
        return job, True, line

    with ThreadPoolExecutor(1, thread_name_prefix="srcnn-np-writer") as writer:
        writing = None  # (job, Future of its write) in flight, or written but not yet yielded
        try:
            for job in jobs:
                try:
                    write, failed = compute_job(job, upscaler, options, report), None
                except JobFailed as e:
                    write, failed = None, str(e)
                    report.stop_clock(job.target)
                if writing is not None:
                    yield finish(*writing)
                    writing = None
                if failed is not None:
                    yield job, False, failed
                else:
                    writing = job, writer.submit(write)
        except KeyboardInterrupt:  # in compute_job or while waiting for the write: report that write
            if writing is not None:
                yield finish(*writing)
            raise
        if writing is not None:
            yield finish(*writing)
    if options.timings and jobs:
        wall = time.monotonic() - started
        print(f"{PROG}: timings: {len(jobs)} input(s) in {wall:.2f} s wall, {wall / len(jobs):.2f} s per input",
              file=sys.stderr, flush=True)


def run_jobs(jobs: list[Job], upscaler, options: BatchOptions, report: JsonProgress):
    """Yield (job, ok, line) per job: here in order (run_pipelined; one after the other with
    --compare, whose viewer reads the written output), or with a scheduler on the cluster, one
    task per job, as they finish (report's per-file events come from here only)."""
    if not options.scheduler:
        yield from (((job, *upscale_job(job, upscaler, options, report)) for job in jobs) if options.compare
                    else run_pipelined(jobs, upscaler, options, report))
        return
    from .cluster import run_on_cluster

    with connect_scheduler(options.scheduler) as client:
        for job, outcome, error in run_on_cluster(client, upscale_job, jobs, upscaler, options):
            yield (job, *outcome) if error is None else (job, False, f"{job.source}: failed on the cluster ({error})")


def connect_scheduler(address: str):
    """A dask.distributed Client for --scheduler; UsageError (one line) when that fails."""
    from .cluster import connect

    try:
        return connect(address)
    except (ImportError, OSError) as e:
        raise UsageError(f"--scheduler: {e}") from None


@dataclass
class Summary:
    """What a batch did: outputs written, failure lines, outputs skipped (--skip-existing)."""

    done: int = 0
    failures: list = field(default_factory=list)
    skipped: int = 0


def run_batch(jobs: list[Job], upscaler, options: BatchOptions, report: JsonProgress, failures: list[str]) -> Summary:
    """Run planned jobs: an existing output is skipped (skip_existing) or fails its job (unless
    overwrite); the rest go through run_jobs. Prints each output's line on stdout (not when quiet
    or with --progress json) and a bar on a terminal. failures: the planning's, reported first."""
    clear_stale_temps(jobs, options.started, options.quiet)
    summary = Summary(failures=list(failures))
    report.start([job.target for job in jobs])
    for line in failures:  # inputs that name no planned job: missing, colliding, unknown extension
        report.error(line)
    human = not options.quiet and not report.enabled  # the bar and the per-file lines
    bar = Progress(len(jobs), "upscale", enabled=False if not human or len(jobs) < 2 else None)
    todo = []
    for job in jobs:
        if os.path.lexists(job.target) and not options.overwrite:
            if options.skip_existing:
                summary.skipped += 1
                report.file_end(job.source, job.target, "skipped", f"{job.target}: exists (--skip-existing)")
            else:
                summary.failures.append(f"{job.target}: exists (use --overwrite to replace it, or --skip-existing)")
                report.file_end(job.source, job.target, "failed", summary.failures[-1])
            bar.update()
        else:
            todo.append(job)
    with contextlib.closing(run_jobs(todo, upscaler, options, report)) as outcomes:  # closed on Ctrl-C
        for job, ok, line in outcomes:
            report.file_end(job.source, job.target, "ok" if ok else "failed", line)
            if not ok:
                summary.failures.append(line)
                bar.update()
                continue
            summary.done += 1
            if human:
                try:
                    print(line, flush=True)
                except BrokenPipeError:  # stdout's reader left (`| head`): finish the batch silently
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                    human = False
            bar.update()
    bar.close()
    if options.scheduler:  # every task has ended: a temp file left now is a killed worker's
        clear_stale_temps(todo, time.time(), options.quiet)
    return summary


def clear_stale_temps(jobs: list[Job], before: float, quiet: bool) -> None:
    """Remove the hidden temp files an interrupted run left beside these jobs' outputs (see
    srcnn_np.io.atomic.remove_stale_temps), modified before `before`; say so on stderr."""
    from .io.atomic import remove_stale_temps

    removed, failed = remove_stale_temps([job.target for job in jobs], before)
    if removed and not quiet:
        print(f"{PROG}: removed {len(removed)} temp file(s) that an interrupted run left beside the outputs",
              file=sys.stderr)
    for line in failed:
        print(f"{PROG}: warning: cannot remove the stale temp file {line}", file=sys.stderr)
