"""Command line: `python -m srcnn_np upscale INPUT... -o OUTPUT` (also installed as `srcnn-np`).

Exit status: 0 all done; 1 some inputs failed (each named on stderr, the rest were processed);
2 the command itself is wrong (bad arguments, invalid weights, unusable device);
130 interrupted by Ctrl-C, 143 terminated by SIGTERM (finished outputs are complete, no temp files
are left).
"""
import argparse
import contextlib
import math
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .io.formats import (EXT_CHOICES, EXTENSIONS, format_of, image_as_fits_data, kind_of, read_any, split_extension,
                         upscaled_metadata, write_any)
from .io.imageio import (MAX_PIXELS_DEFAULT, PNG_COMPRESSION, ImageIOError, check_regular_file, quiet_decoders,
                         refuse_clipping)
from .errors import one_line
from .geometry import EDGES
from .progress import JsonProgress, Progress
from .weights import MODELS, SUPPORTED_SCALES, WeightsError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143  # 128 + signal
PROG = "srcnn-np"
SILENT = JsonProgress(enabled=False)  # --progress bar: no events
CROSSING_KINDS = ("FITS converts only to FITS or a float TIFF (.tif), and images to FITS only from float samples "
                  "(a float TIFF): other conversions would lose the physical values or the header")


class UsageError(Exception):
    """The command cannot run at all (exit status 2); the message is one line."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that it unwinds like Ctrl-C: temp files are removed."""


def raise_terminated(signum, frame):
    raise Terminated


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of argparse's usage dump
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


@dataclass
class Job:
    source: str  # input file
    target: str  # output file
    fmt: str  # output format: "png", "jpeg", "tiff", "xisf" or "fits" (see srcnn_np.io.formats)


def quantize_level(text: str) -> float:
    """--quantize-level: 0 or a positive finite number."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not 0 (lossless) or a positive number")
    return value


def png_compression(value: str) -> int | str:
    """--png-compression: "rle" or a zlib level 0..9 (an int)."""
    if value == "rle":
        return value
    if value not in tuple("0123456789"):
        raise argparse.ArgumentTypeError(f"{value!r} is not rle or a zlib level 0-9")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description="Super-resolution for astronomical images with SRCNN, "
               "torch-free (NumPy + Numba).")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    up = sub.add_parser(
        "upscale", help="upscale images by 2, 3 or 4",
        description="Upscale PNG (8/16-bit), JPEG and TIFF images, gray, RGB or RGBA. With one input file, "
        "OUTPUT is the output file; with several inputs or a directory, OUTPUT is a directory and each "
        "output is named after its input plus a suffix.",
        epilog="example: python -m srcnn_np upscale galaxy.png -o galaxy_x2.png\n"
        "         python -m srcnn_np upscale raw/ -o big/ --mode y --ext png\n"
        "         python -m srcnn_np upscale big.fits -o big_x2.zarr   (out of core, srcnn_np[dask])\n"
        "exit status: 0 ok, 1 some inputs failed, 2 bad command, 130 interrupted, 143 terminated",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    up.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or directories")
    up.add_argument("-o", "--output", required=True, help="output file (one input) or directory")
    up.add_argument("--scale", type=int, default=2, choices=SUPPORTED_SCALES, help="upscaling factor (default 2)")
    up.add_argument("--weights", help="weights .npz (default: the shipped weights for --scale and --model)")
    up.add_argument("--model", default="astro", choices=MODELS,
                    help="shipped model: astro (fine-tuned on Hubble images, default) or general")
    up.add_argument("--mode", default="rgb", choices=("rgb", "y"),
                    help="rgb: every colour channel through the net (default); y: luminance only, chroma "
                    "bicubic (faster, less memory)")
    up.add_argument("--suffix", help="added to output names in directory mode (default _x<scale>)")
    up.add_argument("--ext", choices=tuple(EXT_CHOICES), help="output format in directory mode (default: the input's)")
    existing = up.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    existing.add_argument("--skip-existing", action="store_true",
                          help="skip inputs whose output exists (resume a batch)")
    up.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    up.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"),
                    help="cpu (default), cuda (NVIDIA GPU, pip install \"srcnn_np[cuda]\") or auto (GPU if usable)")
    up.add_argument("--tile", type=int, help="tile side in output pixels, bounds memory "
                    "(default 512 on the CPU, sized to the GPU's memory on CUDA)")
    up.add_argument("--edges", default="replicate", choices=EDGES,
                    help="replicate: extend the image by its edge pixels before the network, so that its "
                    "zero padding leaves no artifacts at the border (default); zero: the network as the "
                    "PyTorch reference runs it on the image")
    up.add_argument("--max-pixels", type=int, default=MAX_PIXELS_DEFAULT,
                    help=f"refuse inputs larger than this many pixels (default {MAX_PIXELS_DEFAULT})")
    up.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                    help="run on this dask.distributed scheduler's cluster (pip install \"srcnn_np[dask]\"); "
                    "inputs and outputs must be on a filesystem the workers share")
    fits = up.add_argument_group("FITS (pip install \"srcnn_np[fits]\")")
    fits.add_argument("--hdu", help="HDU to upscale: index or EXTNAME (default: the first image HDU)")
    fits.add_argument("--conserve-flux", action="store_true",
                      help="shift each s x s output block so it averages (or sums) to its input pixel")
    fits.add_argument("--flux-units", default="surface", choices=("surface", "total"),
                      help="surface: pixel values are surface brightness (default); total: flux per pixel, "
                      "so each output block sums to its input pixel")
    fits.add_argument("--stretch", default="linear", choices=("linear", "asinh"),
                      help="how each plane's finite range is mapped into the network's [0, 1] (default linear); "
                      "also float images outside [0, 1], e.g. a 32-bit float TIFF in ADU")
    up.add_argument("--compare", action="store_true", help="also write a before/after viewer beside each "
                    "output, OUTPUT_STEM_compare.html (see the compare command)")
    fits.add_argument("--quantize-level", type=quantize_level, default=0.0, metavar="Q",
                      help=".fits.fz output of float data: 0 = lossless (GZIP_2 tiles, default); Q > 0 = "
                      "RICE_1 tiles quantised to noise/Q with subtractive dithering, lossy (astropy defaults to 16, fpack to 4)")
    up.add_argument("--png-compression", type=png_compression, default=PNG_COMPRESSION, metavar="rle|0-9",
                    help="how PNG outputs are deflated: rle (default: fast, and about as small as 6 on "
                    "photographs) or a zlib level, 0 none to 9 smallest and slowest")
    up.add_argument("--timings", action="store_true",
                    help="print each image's decode, network and encode wall times on stderr")
    up.add_argument("-q", "--quiet", action="store_true", help="no progress bar or per-file lines")
    up.add_argument("--progress", default="bar", choices=("bar", "json"),
                    help="bar: a progress bar on stderr when it is a terminal (default); json: events as one "
                    "JSON object a line on stdout, instead of the bar and the per-file lines, for programs "
                    "that run srcnn-np (fields: docs/siril.md)")
    up.set_defaults(run=run_upscale)
    add_compare_parser(sub)
    from .eval import evaluate

    ev = sub.add_parser("evaluate", help="PSNR/SSIM of the model vs bicubic on ground-truth images",
                        description="Downscale each ground truth (bicubic, antialiased), upscale it back with "
                        "bicubic and with the model, and score both on the Y channel (PSNR, SSIM, "
                        "scale-pixel border crop).")
    evaluate.add_arguments(ev)
    ev.set_defaults(run=evaluate.run)
    return p


def add_compare_parser(sub) -> None:
    from .config import MAX_VIEW_PIXELS

    cmp = sub.add_parser(
        "compare", help="before/after viewer: bicubic vs an upscaled image, one HTML file",
        description="Write one self-contained HTML file (no network) comparing the bicubic upsampling of "
        "LOWRES with UPSCALED: a slider between them, zoom and pan down to single pixels, and a display "
        "stretch (linear or asinh over the full range, min-max or a percentile clip).",
        epilog="example: python -m srcnn_np compare m51.fits m51_x2.fits -o m51_compare.html\n"
        "exit status: 0 ok, 1 unreadable or mismatched inputs or an existing output, 2 bad command",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    cmp.add_argument("lowres", metavar="LOWRES", help="the input image (PNG, JPEG, TIFF or FITS)")
    cmp.add_argument("upscaled", metavar="UPSCALED", help="its upscale, an integer multiple of its size")
    cmp.add_argument("-o", "--output", required=True, help="the HTML file to write")
    cmp.add_argument("--hdu", help="LOWRES's FITS HDU: index or EXTNAME (default: the first image HDU)")
    cmp.add_argument("--overwrite", action="store_true", help="replace an existing output")
    cmp.add_argument("--max-pixels", type=int, default=MAX_VIEW_PIXELS,
                     help=f"refuse an UPSCALED of more pixels than this (default {MAX_VIEW_PIXELS}): every pixel is "
                     "embedded in the page")
    cmp.add_argument("-q", "--quiet", action="store_true", help="no summary line")
    cmp.set_defaults(run=run_compare)


def run_compare(args) -> int:
    """`compare LOWRES UPSCALED -o VIEW.html`: see srcnn_np.viewer."""
    from .viewer import ViewerError, write_viewer

    if not args.output.lower().endswith((".html", ".htm")):
        raise UsageError(f"{args.output}: the viewer is an HTML file; end its name with .html")
    if args.max_pixels < 1:
        raise UsageError("--max-pixels must be a positive number of pixels")
    try:
        c = write_viewer(args.lowres, args.upscaled, args.output, hdu=args.hdu,
                         overwrite=args.overwrite, max_pixels=args.max_pixels)
    except ViewerError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return EXIT_FAILED
    if not args.quiet:
        print(f"{args.lowres} x{c.scale} bicubic | {args.upscaled} -> {args.output} ({c.width}x{c.height}); "
              f"SRCNN - bicubic: RMS {c.rms:.4g}, min {c.lowest:+.4g}, max {c.highest:+.4g} ({c.units})")
    return EXIT_OK


def reserve_standard_fds() -> None:
    """Hold /dev/null on any of file descriptors 0-2 that the caller closed (`2>&-`, some cron
    setups), so that no image or output file is opened as fd 2: quiet_decoders swaps fd 2 for
    /dev/null while a decoder runs, which would otherwise pull a writer thread's file from under it."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)  # the lowest free descriptor: this one (lower ones are open)


def main(argv=None) -> int:
    reserve_standard_fds()
    args = build_parser().parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()  # signal handlers live there
    previous = signal.signal(signal.SIGTERM, raise_terminated) if in_main_thread else None
    try:
        return args.run(args)
    except UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except Terminated:
        print(f"{PROG}: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def configure_threads(threads: int | None) -> None:
    import numba

    if threads is None:
        return
    if not 1 <= threads <= numba.config.NUMBA_NUM_THREADS:
        raise UsageError(f"--threads must be between 1 and {numba.config.NUMBA_NUM_THREADS}")
    numba.set_num_threads(threads)


def check_device(device: str) -> None:
    """--device cuda without a usable GPU is a usage error (exit 2), found before any work;
    --device auto without one runs on the CPU and says so in one line on stderr."""
    if device in ("cuda", "auto"):
        from .gpu.runner import cuda_status

        usable, reason = cuda_status()
        if not usable and device == "cuda":
            raise UsageError(f"--device cuda: CUDA device not usable: {reason}")
        if not usable:
            print(f"{PROG}: --device auto: running on the CPU (CUDA not usable: {reason})", file=sys.stderr)


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


def plan_jobs(args, failures: list[str]) -> list[Job]:
    """Decide every output path and format; collisions and self-overwrites become failures."""
    sources = expand_inputs(args.inputs, failures)
    single = (len(args.inputs) == 1 and not os.path.isdir(args.inputs[0])
              and not os.path.isdir(args.output) and not args.output.endswith(os.sep))
    if single:
        fmt = format_of(args.output)
        if fmt is None:
            raise UsageError(f"{args.output}: cannot tell the output format; end it with "
                             f"{', '.join(sorted(EXTENSIONS))}")
        jobs = [Job(s, args.output, fmt) for s in sources]
    else:
        try:
            if sources:  # nothing to write, nothing created
                os.makedirs(args.output, exist_ok=True)
        except OSError as e:
            raise UsageError(f"{args.output}: cannot create output directory ({e.strerror})") from None
        suffix = f"_x{args.scale}" if args.suffix is None else args.suffix
        jobs = []
        for s in sources:
            stem, ext = split_extension(s)
            fmt = EXTENSIONS[EXT_CHOICES[args.ext]] if args.ext else format_of(s)
            if fmt is None:
                failures.append(f"{s}: unknown image extension {ext!r}")
                continue
            out_ext = EXT_CHOICES[args.ext] if args.ext else ext
            jobs.append(Job(s, os.path.join(args.output, stem + suffix + out_ext), fmt))
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


def connect_scheduler(address: str):
    """A dask.distributed Client for --scheduler; UsageError (one line) when that fails."""
    from .cluster import connect

    try:
        return connect(address)
    except (ImportError, OSError) as e:
        raise UsageError(f"--scheduler: {e}") from None


def upscale_job(job: Job, kw, args, report: JsonProgress = SILENT) -> tuple[bool, str]:
    """Read, upscale and write one job: (True, summary line) or (False, failure line).

    Runs in this process or as a task on a --scheduler cluster's worker. On a cluster a task whose
    worker died is run again; if that worker had already moved the output into place (complete:
    outputs are written atomically), the output is this batch's and the retry reports it done.
    """
    if args.scheduler and not args.overwrite and written_since(job.target, args.batch_started):
        return True, f"{job.source} -> {job.target} (written by an attempt on a worker that was lost)"
    computed = compute_job(job, kw, args, report)
    return computed if isinstance(computed, tuple) else computed()[:2]


def written_since(path, started: float) -> bool:
    """Whether `path` exists and was last modified at or after `started` (time.time())."""
    try:
        return os.lstat(path).st_mtime >= started
    except OSError:
        return False


def compute_job(job: Job, kw, args, report: JsonProgress = SILENT):
    """Read and upscale one job. Returns its outcome (ok, line) when it is finished already (a
    failure, or a FITS job, done whole), else a function of no arguments that writes the output
    and returns (ok, line, phases): phases = {"decode": s, "network": s, "encode": s} wall times,
    or None when the write failed. report: --progress json's events (file_start, tiles)."""
    from .model import network_tiles, upscale

    source_kind = kind_of(format_of(job.source) or "png")  # an unknown extension: an image, told by its bytes
    if source_kind == "fits" and job.fmt not in ("fits", "tiff"):
        return False, f"{job.source}: {CROSSING_KINDS} (output {job.target})"
    report.file_start(job.source, job.target)
    if source_kind == "fits":
        return upscale_fits_job(job, kw, args, report)
    started = time.monotonic()
    try:
        image = read_any(job.source, max_pixels=args.max_pixels)
        if job.fmt == "fits" and image.pixels.dtype.kind != "f":
            return False, f"{job.source}: {CROSSING_KINDS} (output {job.target})"
        if job.fmt not in ("tiff", "fits"):  # physical units in: physical units out, which these formats clip
            refuse_clipping(job.target, image.pixels, job.fmt)
        decoded = time.monotonic()
        tiles = network_tiles(image.pixels.shape, args.mode, args.tile, args.scale, args.edges)
        bar = tile_progress(job, tiles, args, report)
        try:
            result = upscale(image.pixels, kw, mode=args.mode, scale=args.scale, tile=args.tile,
                             device=args.device, on_tile=bar.update, edges=args.edges, stretch=args.stretch,
                             conserve_flux=args.conserve_flux, flux_units=args.flux_units)
        finally:
            bar.close()
        metadata = upscaled_metadata(image, args.scale, f"srcnn_np: upscaled x{args.scale} with {method_of(args)} "
                                     f"from {os.path.basename(job.source)}")
    except Exception as e:  # noqa: BLE001 - see job_failure
        return job_failure(job, e)
    phases = {"decode": decoded - started, "network": time.monotonic() - decoded}

    def write() -> tuple[bool, str, dict | None]:
        encoding = time.monotonic()
        try:
            pixels = image_as_fits_data(result) if job.fmt == "fits" else result
            write_any(job.target, pixels, job.fmt, image.bit_depth, overwrite=args.overwrite,
                      icc_profile=image.icc_profile, metadata=metadata, quantize_level=args.quantize_level,
                      png_compression=args.png_compression,
                      threads=args.threads)
        except Exception as e:  # noqa: BLE001 - see job_failure
            return (*job_failure(job, e), None)
        finally:
            report.stop_clock(job.target)
        phases["encode"] = time.monotonic() - encoding
        h, w = image.pixels.shape[:2]
        return True, (f"{job.source} -> {job.target} ({w}x{h} -> {result.shape[1]}x{result.shape[0]}, "
                      f"{time.monotonic() - started:.2f} s)"), phases

    return write


def tile_progress(job: Job, tiles: int, args, report: JsonProgress):
    """What counts one job's network tiles (update(), close()): --progress json's events, or the
    bar on a terminal (not with -q, nor for images of fewer than 8 tiles)."""
    if report.enabled:
        return report.tiles(job.source, job.target, tiles)
    return Progress(tiles, os.path.basename(job.source), enabled=False if args.quiet or tiles < 8 else None)


def job_failure(job: Job, e: Exception) -> tuple[bool, str]:
    """(False, the failure line) for what reading, upscaling or writing job raised: a bad file, no
    memory, or a bug, which fails this file, not the rest of the batch."""
    if isinstance(e, (ImageIOError, ValueError, ImportError)):
        return False, (str(e) if str(e).startswith(job.source) or str(e).startswith(job.target)
                       else f"{job.source}: {e}")
    if isinstance(e, MemoryError):
        return False, f"{job.source}: out of memory (try a smaller --tile)"
    return False, internal_error(job.source, e)


def run_pipelined(jobs: list[Job], kw, args, report: JsonProgress = SILENT):
    """Yield (job, ok, line) for each job, in order, each output written on a writer thread
    while the next input is read and upscaled. At most one write is in flight (two results in
    memory). An interrupt lets that write finish (its output is complete, no temp file) and yields
    its outcome, so that every output on disk is reported, then propagates. --timings: each
    image's phases, and the batch's wall time, on stderr. report: --progress json's events (see compute_job)."""
    started = time.monotonic()
    with ThreadPoolExecutor(1, thread_name_prefix="srcnn-np-writer") as writer:
        writing = None  # (job, Future of its write) in flight, or written but not yet yielded
        try:
            for job in jobs:
                computed = compute_job(job, kw, args, report)
                if isinstance(computed, tuple):  # failed, or a FITS job done whole: its file_end may wait for a write
                    report.stop_clock(job.target)
                if writing is not None:
                    yield writing[0], *finish_write(*writing, args)
                    writing = None
                if isinstance(computed, tuple):
                    yield job, *computed
                else:
                    writing = job, writer.submit(computed)
        except KeyboardInterrupt:  # in compute_job or while waiting for the write: report that write
            if writing is not None:
                yield writing[0], *finish_write(*writing, args)
            raise
        if writing is not None:
            yield writing[0], *finish_write(*writing, args)
    if args.timings and jobs:
        wall = time.monotonic() - started
        print(f"{PROG}: timings: {len(jobs)} input(s) in {wall:.2f} s wall, {wall / len(jobs):.2f} s per input",
              file=sys.stderr, flush=True)


def finish_write(job: Job, writing, args) -> tuple[bool, str]:
    """Wait for job's write (a Future of compute_job's write()) and return its (ok, line); with
    --timings, print its phases on stderr (here in the main thread: a decoder may be silencing
    stderr in the meantime, see imageio.quiet_decoders)."""
    ok, line, phases = writing.result()
    if phases is not None and args.timings:
        print(f"{PROG}: timings {job.source}: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in phases.items()),
              file=sys.stderr, flush=True)
    return ok, line


def method_of(args) -> str:
    """What does the upscaling, for the HISTORY a FITS or XISF output records."""
    return f"SRCNN weights {args.weights or f'shipped {args.model}'}"


def internal_error(source: str, e: Exception) -> str:
    """The failure line for an exception nothing expected (a bug, or a library tripping over a file)."""
    return f"{source}: internal error ({type(e).__name__}: {one_line(e)}); please report it"


def upscale_fits_job(job: Job, kw, args, report: JsonProgress = SILENT) -> tuple[bool, str]:
    """upscale_job for a FITS file: science data, header and WCS through srcnn_np.io.fits_io.
    report: --progress json's tile events, counted over every plane of the HDU."""
    from .model import network_tiles, upscale

    started = time.monotonic()
    bar = Progress(1, job.source, enabled=False)  # no terminal bar: quiet_decoders silences stderr below

    def count_tiles(image):  # the HDU is read: its planes' tiles, before the first is upscaled
        nonlocal bar
        if report.enabled:
            tiles = network_tiles(image.data.shape[-2:], tile=args.tile, scale=args.scale, edges=args.edges)
            bar = report.tiles(job.source, job.target, math.prod(image.data.shape[:-2]) * tiles)

    def upscale_plane(plane):
        return upscale(plane, kw, scale=args.scale, tile=args.tile, device=args.device, edges=args.edges,
                       on_tile=bar.update)

    try:
        from .io.fits_io import FitsError, upscale_fits

        check_regular_file(job.source)
        with quiet_decoders():  # astropy's warnings and log lines about a damaged file: the error line says it
            result = upscale_fits(job.source, job.target, upscale_plane, args.scale, method=method_of(args),
                                  hdu=args.hdu, conserve_flux=args.conserve_flux, flux_units=args.flux_units,
                                  stretch=args.stretch, overwrite=args.overwrite, quantize_level=args.quantize_level,
                                  on_read=count_tiles)
    except ImportError as e:
        return False, f"{job.source}: {e}"
    except (FitsError, ImageIOError) as e:
        return False, str(e)
    except MemoryError:
        return False, f"{job.source}: out of memory (try a smaller --tile)"
    except Exception as e:  # noqa: BLE001 - astropy tripping over a hostile file fails this file only
        return False, internal_error(job.source, e)
    shape = result.data.shape
    return True, f"{job.source} -> {job.target} ({'x'.join(map(str, shape[::-1]))} FITS, {time.monotonic() - started:.2f} s)"


def upscale_and_compare(job: Job, kw, args, report: JsonProgress = SILENT) -> tuple[bool, str]:
    """upscale_job, then (--compare) the before/after viewer beside its output (viewer.viewer_path)."""
    from .viewer import ViewerError, viewer_path, write_viewer

    html = viewer_path(job.target)
    if os.path.lexists(html) and not args.overwrite:
        return False, f"{html}: exists (use --overwrite to replace it)"
    ok, line = upscale_job(job, kw, args, report)
    if not ok:
        return ok, line
    try:
        write_viewer(job.source, job.target, html, hdu=args.hdu, overwrite=args.overwrite)
    except ViewerError as e:
        return False, f"{job.source}: upscaled to {job.target}, but no viewer: {e}"
    return True, f"{line}; viewer {html}"


def run_jobs(jobs: list[Job], kw, args, report: JsonProgress):
    """Yield (job, ok, line) per job (see upscale_job): here in order (run_pipelined; one after the
    other with --compare, whose viewer reads the written output), or with --scheduler on the
    cluster, one task per job, as they finish (report's per-file events come from here only)."""
    if not args.scheduler:
        yield from (((job, *upscale_and_compare(job, kw, args, report)) for job in jobs) if args.compare
                    else run_pipelined(jobs, kw, args, report))
        return
    from .cluster import run_on_cluster

    work = upscale_and_compare if args.compare else upscale_job
    with connect_scheduler(args.scheduler) as client:
        for job, outcome, error in run_on_cluster(client, work, jobs, kw, args):
            yield (job, *outcome) if error is None else (job, False, f"{job.source}: failed on the cluster ({error})")


def uses_zarr(args) -> bool:
    """True when an input or the output is a .zarr array: the out-of-core path."""
    from .io.zarr_io import is_zarr

    return any(is_zarr(p) for p in [args.output, *args.inputs])


def run_out_of_core(args, kw) -> int:
    """`upscale IN.fits|IN.zarr -o OUT.zarr` (or IN.zarr -o OUT.fits): one science plane through
    srcnn_np.chunked chunk by chunk, here or on the --scheduler cluster."""
    from .chunked import upscale_file
    from .io.zarr_io import DaskIOError, is_zarr
    from .model import Upscaler
    from .options import ScienceOptions
    from .io.fits_io import FitsError

    if args.compare:
        raise UsageError("--compare: no viewer for a .zarr input or output (it embeds every pixel in the page)")
    if len(args.inputs) != 1:
        raise UsageError("with a .zarr input or output give exactly one input: a FITS file or a .zarr array")
    if not (is_zarr(args.output) or format_of(args.output) == "fits"):
        raise UsageError(f"{args.output}: a .zarr input goes to a .zarr or FITS output")
    if args.device != "cpu":
        raise UsageError("--device: the out-of-core .zarr path runs on the CPU (or a --scheduler cluster)")
    source = args.inputs[0]
    report = JsonProgress(sys.stdout, enabled=args.progress == "json")
    report.start([args.output])
    if os.path.lexists(args.output) and args.skip_existing:
        report.file_end(source, args.output, "skipped", f"{args.output}: exists (--skip-existing)")
        report.end(EXIT_OK, done=0, failed=0, skipped=1)
        return EXIT_OK
    client = connect_scheduler(args.scheduler) if args.scheduler else None
    started = time.monotonic()
    report.file_start(source, args.output)
    count_tasks = (lambda tasks: report.tiles(source, args.output, tasks)) if report.enabled else None
    error = None
    try:
        upscaler = Upscaler(kw, tile=args.tile, edges=args.edges,
                            science=ScienceOptions(args.stretch, args.conserve_flux, args.flux_units))
        shape, out_shape = upscale_file(source, args.output, upscaler, hdu=args.hdu, overwrite=args.overwrite,
                                        client=client, progress=not args.quiet and not report.enabled,
                                        counter=count_tasks)
    except (DaskIOError, FitsError) as e:
        error = str(e)
    except (ValueError, TypeError) as e:  # data the network cannot take (complex, empty, ...)
        error = f"{source}: {one_line(e)}"
    except MemoryError:
        error = f"{source}: out of memory (try a smaller --tile)"
    except ImportError as e:
        raise UsageError(str(e)) from None
    except Exception as e:  # noqa: BLE001 - zarr or astropy tripping over a file: one line, no traceback
        error = internal_error(source, e)
    finally:
        if client is not None:
            client.close()
    if error is not None:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        report.file_end(source, args.output, "failed", error)
        report.end(EXIT_FAILED, done=0, failed=1, skipped=0)
        return EXIT_FAILED
    line = (f"{source} -> {args.output} ({shape[1]}x{shape[0]} -> {out_shape[1]}x{out_shape[0]}, "
            f"{time.monotonic() - started:.2f} s)")
    report.file_end(source, args.output, "ok", line)
    report.end(EXIT_OK, done=1, failed=0, skipped=0)
    if not args.quiet and not report.enabled:
        print(line, flush=True)
    return EXIT_OK


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


def run_upscale(args) -> int:
    from .model import resolve_weights

    started = args.batch_started = time.time()  # batch_started: see upscale_job
    configure_threads(args.threads)
    check_device(args.device)
    if args.tile is not None and args.tile < 1:
        raise UsageError("--tile must be a positive number of pixels")
    try:
        from .weights import load_weights

        kw = resolve_weights(load_weights(args.weights, scale=args.scale, model=args.model))
    except WeightsError as e:
        raise UsageError(str(e)) from None
    if uses_zarr(args):
        return run_out_of_core(args, kw)
    failures: list[str] = []
    jobs = plan_jobs(args, failures)
    clear_stale_temps(jobs, started, args.quiet)
    report = JsonProgress(sys.stdout, enabled=args.progress == "json")
    report.start([job.target for job in jobs])
    for line in failures:  # inputs that name no planned job: missing, colliding, unknown extension
        report.error(line)
    human = not args.quiet and not report.enabled  # the bar and the per-file lines
    bar = Progress(len(jobs), "upscale", enabled=False if not human or len(jobs) < 2 else None)
    done = skipped = 0
    todo = []
    for job in jobs:
        if os.path.lexists(job.target) and not args.overwrite:
            if args.skip_existing:
                skipped += 1
                report.file_end(job.source, job.target, "skipped", f"{job.target}: exists (--skip-existing)")
            else:
                failures.append(f"{job.target}: exists (use --overwrite to replace it, or --skip-existing)")
                report.file_end(job.source, job.target, "failed", failures[-1])
            bar.update()
        else:
            todo.append(job)
    with contextlib.closing(run_jobs(todo, kw, args, report)) as outcomes:  # closed on Ctrl-C: the write in flight ends
        for job, ok, line in outcomes:
            report.file_end(job.source, job.target, "ok" if ok else "failed", line)
            if not ok:
                failures.append(line)
            else:
                done += 1
                if human:
                    try:
                        print(line, flush=True)
                    except BrokenPipeError:  # stdout's reader left (`| head`): finish the batch silently
                        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                        args.quiet, human = True, False
            bar.update()
    bar.close()
    if args.scheduler:  # every task has ended: a temp file left now is a killed worker's
        clear_stale_temps(todo, time.time(), args.quiet)
    code = EXIT_FAILED if failures else EXIT_OK if jobs or skipped else EXIT_USAGE
    report.end(code, done=done, failed=len(failures), skipped=skipped)
    if len(failures) == 1 and not done and not skipped:
        print(f"{PROG}: error: {failures[0]}", file=sys.stderr)
    elif failures:
        print(f"{PROG}: {len(failures)} input(s) failed, {done} done"
              + (f", {skipped} skipped" if skipped else "") + ":", file=sys.stderr)
        for line in failures:
            print(f"  {line}", file=sys.stderr)
    elif code == EXIT_USAGE:
        raise UsageError("no input images found")
    return code
