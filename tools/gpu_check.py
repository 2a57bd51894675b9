"""Everything a session with an NVIDIA GPU should check about the CUDA path, in one run.

    OUT=/some/dir python tools/gpu_check.py [--quick]

from the project root (it puts the root on sys.path for its subprocesses). Needs numba-cuda
(`pip install "srcnn_np[cuda]"`), numpy < 2.5 with numba-cuda 0.30.4, and for the torch
comparison a CUDA build of torch. Each step writes its result into $OUT/gpu_check.json as it
finishes (a step that fails records its error and the rest still run) and prints one line:

1. env: versions, cuda_status() (the probe kernel compiled and ran).
2. parity: srcnn_np on the GPU against the CPU path (odd sizes, forced tiles, x3, one runner
   reused across images); the bound is 1e-4.
3. no_compile: the CLI twice in fresh processes on a 64x64 PNG with an empty numba cache: the
   second run's stderr must hold no "compiling CUDA kernel" line; plus a process that loads
   every kernel and reports numba's cache misses (must be 0).
4. tests: tests/test_cuda_sim.py without the simulator (PTX compile checks, cuda_status) and
   dev/cuda_ptx_report.py (registers, spills).
5. blocks: device milliseconds per kernel at a 1024^2 input for several THREADS_PER_BLOCK
   (a launch-time choice: no recompile) to pick the default.
6. cli_2048: the CLI on a 2048^2 RGB PNG -> 4096^2 with --device cuda, wall seconds of two runs,
   next to reading and writing those files alone.
7. benchmark: benchmarks/test_cuda_speed.py (256, 1024, 2048 against torch fp32 / TF32, device
   time per kernel), JSON in $OUT/bench_cuda.json. --quick skips it and step 6.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = Path(os.environ.get("OUT", "."))
PARITY_TOL = 1e-4
BLOCK_SHAPES = [(16, 8), (32, 4), (8, 8), (8, 16), (16, 4), (32, 2)]  # each under 48 KB of shared memory
results: dict = {}


def step(name: str):
    """Run the decorated function now; store its return value (or its error) under `name`."""
    def run(fn):
        started = time.perf_counter()
        try:
            results[name] = fn()
        except Exception as e:  # noqa: BLE001 - record it, go on with the next step
            results[name] = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
        results[name + "_seconds"] = round(time.perf_counter() - started, 2)
        (OUT / "gpu_check.json").write_text(json.dumps(results, indent=1, default=str))
        print(name, json.dumps(results[name], default=str)[:2000], flush=True)
        return fn
    return run


def subprocess_env(cache_dir: str) -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                NUMBA_CACHE_DIR=cache_dir)


def main(quick: bool) -> None:
    OUT.mkdir(parents=True, exist_ok=True)

    @step("env")
    def env():
        import numba

        from srcnn_np.gpu.runner import cuda_status

        versions = {"python": sys.version.split()[0], "numpy": np.__version__, "numba": numba.__version__}
        for package in ("numba_cuda", "torch"):
            try:
                versions[package] = __import__(package).__version__
            except ImportError:
                versions[package] = None
        return dict(versions, cuda_status=cuda_status())

    @step("parity")
    def parity():
        from srcnn_np.gpu.runner import CudaRunner
        from srcnn_np.model import KernelWeights, srcnn_forward
        from srcnn_np.weights import load_weights

        rng = np.random.default_rng(0)
        rows = []
        for scale, shapes, tile in [(2, [(37, 53), (1, 1), (5, 300)], None), (2, [(300, 211)], 128),
                                    (2, [(512, 512), (512, 512), (100, 77)], None), (3, [(41, 29)], 50)]:
            kw = KernelWeights.from_weights(load_weights(scale=scale))
            runner = CudaRunner(kw, tile)  # one runner for the images of a row: reuse is checked
            for shape in shapes:
                lr = rng.random(shape, dtype=np.float32)
                diff = float(np.abs(runner(lr) - srcnn_forward(lr, kw)).max())
                rows.append(dict(scale=scale, shape=shape, tile=tile, max_abs=diff, ok=diff <= PARITY_TOL))
        return {"ok": all(r["ok"] for r in rows), "rows": rows}

    @step("no_compile")
    def no_compile():
        from PIL import Image

        work = Path(tempfile.mkdtemp())
        cache = str(work / "numba_cache")
        Image.fromarray((np.random.default_rng(1).random((64, 64)) * 255).astype(np.uint8)).save(work / "in.png")
        cli = [sys.executable, "-m", "srcnn_np", "upscale", str(work / "in.png"), "-o", str(work / "out.png"),
               "--device", "cuda", "--overwrite", "--quiet"]
        runs = []
        for _ in range(2):
            started = time.perf_counter()
            done = subprocess.run(cli, cwd=ROOT, env=subprocess_env(cache), capture_output=True, text=True)
            runs.append(dict(rc=done.returncode, seconds=round(time.perf_counter() - started, 2),
                             compile_lines=[l for l in done.stderr.splitlines() if "compiling CUDA kernel" in l],
                             stderr_tail=done.stderr[-500:]))
        misses = subprocess.run(
            [sys.executable, "-c",
             "import json, numpy as np\n"
             "from srcnn_np.gpu import kernels, runner\n"
             "from srcnn_np.model import KernelWeights\nfrom srcnn_np.weights import load_weights\n"
             "runner.CudaRunner(KernelWeights.from_weights(load_weights(scale=2)))(np.ones((64, 64), np.float32))\n"
             "print(json.dumps({k.py_func.__name__: sum(k.stats.cache_misses.values())\n"
             "                  for k in (*kernels.CONV_KERNELS, kernels.bicubic_tile, kernels.probe)}))"],
            cwd=ROOT, env=subprocess_env(cache), capture_output=True, text=True)
        third = json.loads(misses.stdout) if misses.returncode == 0 else misses.stderr[-1000:]
        ok = (all(r["rc"] == 0 for r in runs) and not runs[1]["compile_lines"]
              and isinstance(third, dict) and not any(third.values()))
        return {"ok": ok, "notice_in_first_run": bool(runs[0]["compile_lines"]), "runs": runs,
                "cache_misses_third_process": third}

    @step("tests")
    def tests():
        done = subprocess.run([sys.executable, "-m", "pytest", "tests/test_cuda_sim.py", "-q", "-p", "no:cacheprovider"],
                              cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True)
        report = subprocess.run([sys.executable, "dev/cuda_ptx_report.py"], cwd=ROOT,
                                env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True)
        return dict(rc=done.returncode, tail=done.stdout[-1500:], ptx_report=report.stdout or report.stderr[-1000:])

    @step("blocks")
    def blocks():
        from srcnn_np.gpu import runner as gpu
        from srcnn_np.model import KernelWeights
        from srcnn_np.weights import load_weights

        runner = gpu.CudaRunner(KernelWeights.from_weights(load_weights(scale=2)))
        lr = np.random.default_rng(2).random((1024, 1024), dtype=np.float32)
        rows = []
        for block in BLOCK_SHAPES:
            gpu.THREADS_PER_BLOCK = block
            try:
                runner(lr)  # warm-up
                calls = []
                for _ in range(3):
                    timings = {}
                    runner(lr, timings)
                    calls.append(timings)
                rows.append(dict(block=block, **{k: float(np.median([c[k] for c in calls])) for k in calls[0]}))
            except Exception as e:  # noqa: BLE001 - e.g. too much shared memory for this shape
                rows.append(dict(block=block, error=f"{type(e).__name__}: {e}"))
        gpu.THREADS_PER_BLOCK = BLOCK_SHAPES[0]
        return rows

    if quick:
        return

    @step("cli_2048")
    def cli_2048():
        from PIL import Image

        from srcnn_np.io.imageio import read_image, write_image

        work = Path(tempfile.mkdtemp())
        rgb = (np.random.default_rng(3).random((2048, 2048, 3)) * 255).astype(np.uint8)
        Image.fromarray(rgb).save(work / "in.png")
        cli = [sys.executable, "-m", "srcnn_np", "upscale", str(work / "in.png"), "-o", str(work / "out.png"),
               "--device", "cuda", "--overwrite", "--quiet"]
        walls = []
        for _ in range(2):
            started = time.perf_counter()
            done = subprocess.run(cli, cwd=ROOT, env=subprocess_env(str(work / "cache")), capture_output=True, text=True)
            walls.append(dict(rc=done.returncode, seconds=round(time.perf_counter() - started, 2),
                              stderr_tail=done.stderr[-300:]))
        started = time.perf_counter()
        image = read_image(str(work / "in.png"))
        read_s = time.perf_counter() - started
        started = time.perf_counter()
        write_image(str(work / "again.png"), np.zeros((4096, 4096, 3), np.float32) + 0.5, "png",
                    image.bit_depth, overwrite=True)
        return dict(runs=walls, read_png_s=round(read_s, 2), write_png_4096_s=round(time.perf_counter() - started, 2))

    @step("benchmark")
    def benchmark():
        done = subprocess.run([sys.executable, "-m", "pytest", "benchmarks/test_cuda_speed.py", "-q",
                               "-p", "no:cacheprovider", "--benchmark-enable",
                               f"--benchmark-json={OUT / 'bench_cuda.json'}"],
                              cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True)
        (OUT / "bench_cuda.log").write_text(done.stdout + done.stderr)
        return dict(rc=done.returncode, tail=done.stdout[-3000:])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip cli_2048 and benchmark")
    main(parser.parse_args().quick)
