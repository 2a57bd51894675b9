"""A small soak (tools/soak.py): a batch of a couple hundred small files, some bad, watched from
outside; then killed and resumed. The 10,000-file run is `python tools/soak.py WORKDIR` (docs/reliability.md).

Also: which hidden temp files a run removes, and that they are never taken for inputs or outputs.
"""
import os
import time

import numpy as np
import pytest

from srcnn_np.cli import EXIT_OK, main
from srcnn_np.io.imageio import write_image
from tools import soak

FILES = 200
RSS_GROWTH_KIB = 4096  # a leak of one 24x24 RGB float32 result per file would pass it in ~150 files
FD_GROWTH = 2  # one source and one temp file may be open when a sample is taken


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("soak") / "in")
    good, bad = soak.make_corpus(directory, FILES, 0.05, seed=3)
    assert len(bad) >= 5 and len({os.path.basename(b).split("_", 1)[1] for b in bad}) >= 4, bad
    return directory, good, bad


@pytest.mark.slow
def test_soak_every_file_handled_memory_and_descriptors_flat(corpus, tmp_path):
    source, good, bad = corpus
    run = soak.run_batch(source, str(tmp_path / "out"), every=25)
    problems = soak.check_batch(run, good, bad, str(tmp_path / "out"))
    assert not problems, "\n".join(problems)
    table = "\n".join(f"{s.done:5d} files: {s.rss_kib} KiB, {s.fds} fds" for s in run.samples)
    assert len(run.samples) >= 5, table
    rss_growth, fd_growth = soak.flatness(run.samples)
    assert rss_growth <= RSS_GROWTH_KIB and fd_growth <= FD_GROWTH, (
        f"RSS +{rss_growth} KiB, fds +{fd_growth} after the first sample:\n{table}")


@pytest.mark.slow
def test_soak_killed_then_resumed_with_skip_existing(corpus, tmp_path):
    source, good, bad = corpus
    out = str(tmp_path / "out")
    killed = soak.run_batch(source, out, every=1000, kill_after=len(good) // 2)
    assert killed.returncode < 0 and len(killed.done) < len(good), (killed.returncode, len(killed.done))
    todo = sorted(set(good) - set(killed.done))
    stale = soak.plant_stale_temp(out, soak.output_name(todo[0]))
    rerun = soak.run_batch(source, out, "--skip-existing", every=1000)
    problems = soak.check_batch(rerun, good, bad, out, skipped=len(killed.done))
    assert not problems, "\n".join(problems)
    assert not os.path.exists(stale)
    assert "removed 1 temp file(s) that an interrupted run left" in rerun.stderr, rerun.stderr


def test_only_stale_temp_files_of_this_batchs_outputs_are_removed(tmp_path, capsys, weights_file):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    for name in ("a.png", "b.png"):
        write_image(str(src / name), np.full((6, 5), 0.5, np.float32), "png", 8)
    hour_ago = time.time() - 3600
    planted = {
        ".a_x2.png.abcd_123.tmp": hour_ago,  # a killed run's temp file for an output of this batch: removed
        ".b_x2.png.zzzzzzzz.tmp": hour_ago,  # another: removed
        ".other.png.abcd_123.tmp": hour_ago,  # not an output of this batch: kept
        ".a_x2.png.abc.tmp": hour_ago,  # not the temp-name pattern: kept
        ".b_x2.png.newer123.tmp": time.time() + 3600,  # newer than this run (a write in flight): kept
    }
    for name, mtime in planted.items():
        (out / name).write_bytes(b"partial")
        os.utime(out / name, (mtime, mtime))
    assert main(["upscale", str(src), "-o", str(out), "--weights", weights_file]) == EXIT_OK
    err = capsys.readouterr().err
    assert "removed 2 temp file(s)" in err, err
    assert sorted(os.listdir(out)) == sorted(["a_x2.png", "b_x2.png", ".other.png.abcd_123.tmp",
                                              ".a_x2.png.abc.tmp", ".b_x2.png.newer123.tmp"])
    # the hidden temp files are never inputs: the output directory as a batch's input
    assert main(["upscale", str(out), "-o", str(tmp_path / "again"), "-q", "--weights", weights_file]) == EXIT_OK
    assert sorted(os.listdir(tmp_path / "again")) == ["a_x2_x2.png", "b_x2_x2.png"]
