"""Command line: `python -m srcnn_np upscale INPUT... -o OUTPUT` (also installed as `srcnn-np`).

Exit status: 0 all done; 1 some inputs failed (each named on stderr, the rest were processed);
2 the command itself is wrong (bad arguments, invalid weights, unusable device);
130 interrupted by Ctrl-C, 143 terminated by SIGTERM (finished outputs are complete, no temp files
are left).
"""
import argparse
import os
import signal
import sys
import threading
import time

from .batch import BatchOptions, plan_jobs, run_batch
from .config import MAX_PIXELS_DEFAULT
from .errors import OUT_OF_MEMORY, PROG, UsageError, failure_line, one_line
from .io.formats import EXT_CHOICES, format_of
from .io.imageio import PNG_COMPRESSION
from .options import (DEFAULT_DEVICE, DEFAULT_EDGES, DEFAULT_FLUX_UNITS, DEFAULT_MODE, DEFAULT_STRETCH, DEVICES, EDGES,
                      FLUX_UNITS, MODES, STRETCHES, ScienceOptions)
from .progress import JsonProgress
from .weights import MODELS, SUPPORTED_SCALES, WeightsError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143  # 128 + signal


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that it unwinds like Ctrl-C: temp files are removed."""


def raise_terminated(signum, frame):
    raise Terminated


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of argparse's usage dump
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


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
    up.add_argument("--mode", default=DEFAULT_MODE, choices=MODES,
                    help="rgb: every colour channel through the net (default); y: luminance only, chroma "
                    "bicubic (faster, less memory)")
    up.add_argument("--suffix", help="added to output names in directory mode (default _x<scale>)")
    up.add_argument("--ext", choices=tuple(EXT_CHOICES), help="output format in directory mode (default: the input's)")
    existing = up.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    existing.add_argument("--skip-existing", action="store_true",
                          help="skip inputs whose output exists (resume a batch)")
    up.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    up.add_argument("--device", default=DEFAULT_DEVICE, choices=DEVICES,
                    help="cpu (default), cuda (NVIDIA GPU, pip install \"srcnn_np[cuda]\") or auto (GPU if usable)")
    up.add_argument("--tile", type=int, help="tile side in output pixels, bounds memory "
                    "(default 512 on the CPU, sized to the GPU's memory on CUDA)")
    up.add_argument("--edges", default=DEFAULT_EDGES, choices=EDGES,
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
    fits.add_argument("--flux-units", default=DEFAULT_FLUX_UNITS, choices=FLUX_UNITS,
                      help="surface: pixel values are surface brightness (default); total: flux per pixel, "
                      "so each output block sums to its input pixel")
    fits.add_argument("--stretch", default=DEFAULT_STRETCH, choices=STRETCHES,
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


def build_upscaler(args):
    """The Upscaler the command's options describe (UsageError for unusable weights)."""
    from .model import Upscaler

    try:
        return Upscaler.load(args.weights, scale=args.scale, model=args.model, mode=args.mode, device=args.device,
                             tile=args.tile, edges=args.edges,
                             science=ScienceOptions(args.stretch, args.conserve_flux, args.flux_units))
    except WeightsError as e:
        raise UsageError(str(e)) from None


def batch_options(args, started: float) -> BatchOptions:
    return BatchOptions(overwrite=args.overwrite, skip_existing=args.skip_existing, max_pixels=args.max_pixels,
                        hdu=args.hdu, quantize_level=args.quantize_level, png_compression=args.png_compression,
                        threads=args.threads, compare=args.compare, timings=args.timings, quiet=args.quiet,
                        scheduler=args.scheduler, started=started)


def run_upscale(args) -> int:
    """`upscale INPUT... -o OUTPUT`: an Upscaler and a batch plan, run; outcomes -> exit status."""
    started = time.time()
    configure_threads(args.threads)
    check_device(args.device)
    if args.tile is not None and args.tile < 1:
        raise UsageError("--tile must be a positive number of pixels")
    upscaler = build_upscaler(args)
    options = batch_options(args, started)
    report = JsonProgress(sys.stdout, enabled=args.progress == "json")
    if uses_zarr(args):
        return run_out_of_core(args, upscaler, options, report)
    failures: list[str] = []
    jobs = plan_jobs(args.inputs, args.output, scale=args.scale, suffix=args.suffix, ext=args.ext, failures=failures)
    summary = run_batch(jobs, upscaler, options, report, failures)
    code = EXIT_FAILED if summary.failures else EXIT_OK if jobs or summary.skipped else EXIT_USAGE
    report.end(code, done=summary.done, failed=len(summary.failures), skipped=summary.skipped)
    if len(summary.failures) == 1 and not summary.done and not summary.skipped:
        print(f"{PROG}: error: {summary.failures[0]}", file=sys.stderr)
    elif summary.failures:
        print(f"{PROG}: {len(summary.failures)} input(s) failed, {summary.done} done"
              + (f", {summary.skipped} skipped" if summary.skipped else "") + ":", file=sys.stderr)
        for line in summary.failures:
            print(f"  {line}", file=sys.stderr)
    elif code == EXIT_USAGE:
        raise UsageError("no input images found")
    return code


def uses_zarr(args) -> bool:
    """True when an input or the output is a .zarr array: the out-of-core path."""
    from .io.zarr_io import is_zarr

    return any(is_zarr(p) for p in [args.output, *args.inputs])


def run_out_of_core(args, upscaler, options: BatchOptions, report: JsonProgress) -> int:
    """`upscale IN.fits|IN.zarr -o OUT.zarr` (or IN.zarr -o OUT.fits): one science plane through
    srcnn_np.chunked chunk by chunk, here or on the --scheduler cluster."""
    from .batch import connect_scheduler
    from .chunked import upscale_file
    from .io.zarr_io import is_zarr

    if args.compare:
        raise UsageError("--compare: no viewer for a .zarr input or output (it embeds every pixel in the page)")
    if len(args.inputs) != 1:
        raise UsageError("with a .zarr input or output give exactly one input: a FITS file or a .zarr array")
    if not (is_zarr(args.output) or format_of(args.output) == "fits"):
        raise UsageError(f"{args.output}: a .zarr input goes to a .zarr or FITS output")
    if args.device != "cpu":
        raise UsageError("--device: the out-of-core .zarr path runs on the CPU (or a --scheduler cluster)")
    source = args.inputs[0]
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
        shape, out_shape = upscale_file(source, args.output, upscaler, hdu=args.hdu, overwrite=args.overwrite,
                                        client=client, progress=not args.quiet and not report.enabled,
                                        counter=count_tasks)
    except ImportError as e:
        raise UsageError(str(e)) from None
    except (ValueError, TypeError) as e:  # a bad file, or data the network cannot take (complex, empty, ...)
        error = str(e) if str(e).startswith(source) or str(e).startswith(args.output) else f"{source}: {one_line(e)}"
    except MemoryError:
        error = f"{source}: {OUT_OF_MEMORY}"
    except Exception as e:  # noqa: BLE001 - zarr or astropy tripping over a file: one line, no traceback
        error = failure_line(source, e)
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
