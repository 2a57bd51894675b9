"""srcnn_np.chunked and srcnn_np.cluster when things die: a cluster worker killed mid-batch, an out-of-core run killed mid-write.

Both run the real CLI in a subprocess and signal it (or one of the cluster's worker processes)
once some outputs exist, then check what a user would: exit status, per-file report, outputs
complete and equal to an undisturbed run, no temp files left.
"""
from dataclasses import replace
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("dask.array")
pytest.importorskip("distributed")
zarr = pytest.importorskip("zarr")

from srcnn_np.cli import EXIT_OK, EXIT_TERMINATED, main  # noqa: E402
from srcnn_np.io.atomic import TEMP_NAME  # noqa: E402
from srcnn_np.io.imageio import write_image  # noqa: E402

from .conftest import sky  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 300  # s: worker processes importing numba on a busy 2-core machine


def start_cli(args, code="from srcnn_np.cli import main"):
    """The CLI in a subprocess (stdout and stderr piped); `code` may set things up before main."""
    script = f"import sys; {code}; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONPATH": REPO}
    return subprocess.Popen([sys.executable, "-c", script, "upscale", *map(str, args)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until(condition, what: str, proc=None):
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended (exit {proc.returncode}) before {what}:\n{out}\n{err}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def temps(directory) -> list[str]:
    return sorted(n for n in os.listdir(directory) if TEMP_NAME.fullmatch(n))


@pytest.mark.slow
def test_a_worker_killed_mid_batch_the_batch_still_completes(tmp_path, weights_file):
    from distributed import Client, LocalCluster

    src, out, ref = tmp_path / "in", tmp_path / "out", tmp_path / "ref"
    src.mkdir()
    count = 36
    for i in range(count):
        write_image(str(src / f"img{i:02d}.png"), sky(128, 120, 3, seed=i).astype(np.float32) / 255, "png", 8)
    assert main(["upscale", str(src), "-o", str(ref), "-q", "--weights", weights_file]) == EXIT_OK
    with LocalCluster(n_workers=3, threads_per_worker=1, processes=True, protocol="tcp", host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        pids = client.run(os.getpid)  # worker address -> process id
        assert len(pids) == 3
        proc = start_cli([src, "-o", out, "--scheduler", cluster.scheduler_address, "--weights", weights_file])
        wait_until(lambda: out.is_dir() and len(os.listdir(out)) >= 4, "the first outputs", proc)
        victim = sorted(pids.values())[0]
        os.kill(victim, signal.SIGKILL)
        done_at_kill = len([n for n in os.listdir(out) if not TEMP_NAME.fullmatch(n)])
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
        after = client.run(os.getpid)
    assert done_at_kill < count, f"all {count} outputs were done before the kill: the test proved nothing"
    assert victim not in after.values(), f"worker {victim} still answers: it was not killed"
    assert proc.returncode == EXIT_OK, f"exit {proc.returncode}\n{stderr}"
    reported = [line.split(" -> ")[0] for line in stdout.splitlines()]
    want = sorted(str(src / f"img{i:02d}.png") for i in range(count))
    assert sorted(reported) == want, f"each input reported done exactly once; got {len(reported)} lines:\n{stdout}"
    names = sorted(os.listdir(out))
    assert names == sorted(os.listdir(ref)), f"outputs differ from the local run's: {names}"
    for name in names:
        assert (out / name).read_bytes() == (ref / name).read_bytes(), f"{name}: differs from the local run's"
    print(f"worker {victim} killed with {done_at_kill}/{count} outputs written; stderr: {stderr!r}")


def test_a_task_rerun_after_its_worker_wrote_the_output_reports_it_done(tmp_path, weights_file):
    """The window the cluster test cannot aim at: a worker moves the output into place, then dies
    before reporting; the scheduler's retry finds this batch's complete output and reports it done.
    An output older than the batch is not this batch's: the retry refuses to replace it."""
    from srcnn_np.batch import BatchOptions, Job, upscale_job
    from srcnn_np.model import Upscaler

    upscaler = Upscaler.load(weights_file)
    src, target = tmp_path / "a.png", tmp_path / "a_x2.png"
    write_image(str(src), sky(8, 8, 3, seed=1).astype(np.float32) / 255, "png", 8)
    job = Job(str(src), str(target), "png")
    target.write_bytes(b"written by the lost attempt")
    options = BatchOptions(quiet=True, scheduler="tcp://127.0.0.1:1", started=os.lstat(target).st_mtime)
    ok, line = upscale_job(job, upscaler, options)
    assert ok and "lost" in line, line
    options = replace(options, started=os.lstat(target).st_mtime + 1)  # the output predates the batch
    ok, line = upscale_job(job, upscaler, options)
    assert not ok and "exists" in line, line
    assert target.read_bytes() == b"written by the lost attempt"


def zarr_source(path):
    """A (512, 512) float32 plane in physical units with a blank patch, stored in 64-pixel chunks."""
    rng = np.random.default_rng(7)
    plane = (sky(512, 512, dtype=np.uint16, seed=7).astype(np.float32) / 65535 * 40 - 3
             + rng.normal(0, 0.1, (512, 512)).astype(np.float32))
    plane[100:140, 300:333] = np.nan
    zarr.create_array(path, shape=plane.shape, chunks=(64, 64), dtype=np.float32)[...] = plane


def stored_files(directory) -> int:
    return sum(len(files) for _, _, files in os.walk(directory))


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_out_of_core_run_interrupted_then_rerun_equals_an_undisturbed_one(tmp_path, weights_file, signum):
    small_chunks = "import srcnn_np.io.zarr_io as z; z.INPUT_CHUNK = 64; from srcnn_np.cli import main"
    zarr_source(tmp_path / "in.zarr")
    reference = start_cli([tmp_path / "in.zarr", "-o", tmp_path / "ref.zarr", "-q", "--weights", weights_file],
                          small_chunks)
    assert reference.wait(TIMEOUT) == EXIT_OK, reference.communicate()[1]
    want = zarr.open_array(tmp_path / "ref.zarr", mode="r")[...]
    out = tmp_path / "out.zarr"
    args = [tmp_path / "in.zarr", "-o", out, "-q", "--weights", weights_file]
    proc = start_cli(args, small_chunks)

    def some_chunks_written():
        stores = temps(tmp_path)
        return bool(stores) and stored_files(tmp_path / stores[0]) >= 6

    wait_until(some_chunks_written, "the first chunks in the temp store", proc)
    written = stored_files(tmp_path / temps(tmp_path)[0])
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=TIMEOUT)
    assert not out.exists(), "an interrupted run left an output"
    if signum == signal.SIGTERM:
        assert proc.returncode == EXIT_TERMINATED, f"exit {proc.returncode}\n{stderr}"
        assert "Traceback" not in stderr and temps(tmp_path) == [], (stderr, temps(tmp_path))
    else:
        assert proc.returncode == -signal.SIGKILL
        assert len(temps(tmp_path)) == 1, "SIGKILL leaves its temp store: the rerun must deal with it"
    rerun = start_cli(args, small_chunks)
    _, stderr = rerun.communicate(timeout=TIMEOUT)
    assert rerun.returncode == EXIT_OK, stderr
    assert temps(tmp_path) == [], f"left behind: {temps(tmp_path)}"
    got = zarr.open_array(out, mode="r")[...]
    assert np.array_equal(got, want, equal_nan=True), (
        f"rerun differs from the undisturbed run at {np.argwhere(~((got == want) | np.isnan(want)))[:5]}")
    print(f"interrupted by signal {signum} with {written} files in the temp store")
