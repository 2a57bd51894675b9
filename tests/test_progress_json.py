"""`upscale --progress json` (issue 27): one JSON object a line on stdout, with the field names that
docs/siril.md documents, read as the lines come from a running batch that has a failing file; and
the same events for FITS cubes (tiles of every plane) and the out-of-core Dask path."""
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from srcnn_np.cli import EXIT_FAILED, EXIT_OK, main
from srcnn_np.model import Upscaler

from .conftest import sky

# The documented fields of each event (docs/siril.md, "Progress for programs"): a change here is a
# change of the stable interface.
FIELDS = {
    "start": {"event", "schema", "files"},
    "error": {"event", "message"},
    "file_start": {"event", "index", "input", "output"},
    "progress": {"event", "index", "input", "fraction", "batch_fraction"},
    "file_end": {"event", "index", "input", "output", "status", "seconds", "message"},
    "end": {"event", "status", "exit_code", "files", "done", "failed", "skipped", "seconds"},
}


def check_fields(events: list[dict]) -> None:
    for e in events:
        assert e.get("event") in FIELDS and set(e) == FIELDS[e["event"]], f"undocumented fields: {e}"


def check_fractions(events: list[dict], index: int) -> list[float]:
    """The `progress` fractions of file `index`: increasing, within (0, 1]; batch_fraction never falls."""
    fractions = [e["fraction"] for e in events if e["event"] == "progress" and e["index"] == index]
    assert all(0 < a < b <= 1 for a, b in zip(fractions, fractions[1:])), f"file {index}: fractions {fractions}"
    batch = [e["batch_fraction"] for e in events if e["event"] == "progress"]
    assert all(0 <= a <= b <= 1 for a, b in zip(batch, batch[1:])), f"batch fractions {batch}"
    return fractions


def test_batch_with_a_failing_file_read_line_by_line(tmp_path, weights_file):
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    Image.fromarray(sky(90, 100, 3, seed=1)).save(tmp_path / "in" / "a.png")
    (tmp_path / "in" / "b.png").write_bytes(b"not a png")
    Image.fromarray(sky(50, 60, seed=2)).save(tmp_path / "in" / "c.png")
    Image.fromarray(sky(8, 8, seed=3)).save(tmp_path / "in" / "d.png")
    (tmp_path / "out" / "d_x2.png").write_bytes(b"done before")  # --skip-existing skips it
    process = subprocess.Popen(
        [sys.executable, "-m", "srcnn_np", "upscale", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
         "--weights", weights_file, "--tile", "32", "--skip-existing", "--progress", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    events, running_at = [], {}
    try:
        for line in process.stdout:  # as the batch writes them
            events.append(json.loads(line))
            running_at.setdefault(events[-1]["event"], process.poll() is None)
        stderr = process.stderr.read()
        code = process.wait(timeout=300)
    finally:
        process.kill()
        process.wait()
    check_fields(events)
    # the lines come while the batch runs (flushed one by one), not all at the exit
    assert running_at["start"] and running_at["file_start"], running_at
    assert events[0] == {"event": "start", "schema": 1, "files": 4}, events[0]
    assert events[-1]["event"] == "end" and [e["event"] for e in events].count("end") == 1
    end = events[-1]
    assert (end["status"], end["exit_code"], end["files"], end["done"], end["failed"], end["skipped"]) \
        == ("failed", EXIT_FAILED, 4, 2, 1, 1) and code == EXIT_FAILED, (end, code, stderr)
    names = {i: f"{n}.png" for i, n in enumerate("abcd")}
    ends = {e["index"]: e for e in events if e["event"] == "file_end"}
    assert sorted(ends) == [0, 1, 2, 3], ends
    assert {i: ends[i]["status"] for i in ends} == {0: "ok", 1: "failed", 2: "ok", 3: "skipped"}
    for i, e in ends.items():
        assert e["input"] == str(tmp_path / "in" / names[i]) and e["output"] == str(tmp_path / "out" / f"{names[i][0]}_x2.png")
        assert (e["seconds"] is None) if e["status"] == "skipped" else (e["seconds"] >= 0), e  # skipped: no work
    assert "b.png: not a readable image" in ends[1]["message"] and "b.png: not a readable image" in stderr
    for i in (0, 2):
        assert Image.open(ends[i]["output"]).size == {0: (200, 180), 2: (120, 100)}[i]
        order = [e["event"] for e in events if e.get("index") == i]
        assert order[0] == "file_start" and order[-1] == "file_end" and order.count("file_start") == 1, order
        fractions = check_fractions(events, i)
        assert len(fractions) >= 2 and fractions[-1] == 1.0, f"file {i}: fractions {fractions}"
    assert not any(e.get("index") == 3 and e["event"] != "file_end" for e in events)  # skipped: no work
    assert (tmp_path / "out" / "d_x2.png").read_bytes() == b"done before"
    assert " -> " not in "".join(json.dumps(e) for e in events if e["event"] != "file_end")  # no human lines


def read_events(capsys) -> list[dict]:
    out = capsys.readouterr().out
    events = [json.loads(line) for line in out.splitlines()]
    check_fields(events)
    return events


def test_fits_cube_counts_the_tiles_of_every_plane(tmp_path, weights_file, capsys):
    fits = pytest.importorskip("astropy.io.fits")
    cube = np.random.default_rng(4).random((3, 40, 50)).astype(np.float32)
    fits.writeto(tmp_path / "rgb.fits", cube)
    code = main(["upscale", str(tmp_path / "rgb.fits"), "-o", str(tmp_path / "rgb_x2.fits"), "--weights", weights_file,
                 "--tile", "32", "--progress", "json"])
    events = read_events(capsys)
    assert code == EXIT_OK and [e["event"] for e in events if e["event"] != "progress"] \
        == ["start", "file_start", "file_end", "end"], events
    fractions = check_fractions(events, 0)
    per_plane = Upscaler.load(weights_file, tile=32).tiles((40, 50))  # fewer than 100: one event per tile
    assert per_plane >= 4 and fractions[-1] == 1.0 and len(fractions) == 3 * per_plane, fractions
    assert fractions[per_plane - 1] == pytest.approx(1 / 3, abs=1e-4), fractions  # the first plane: a third
    assert events[-1]["done"] == 1 and events[-2]["status"] == "ok"


def test_out_of_core_path_reports_dask_tasks(tmp_path, weights_file, capsys):
    pytest.importorskip("dask")
    pytest.importorskip("zarr")
    fits = pytest.importorskip("astropy.io.fits")
    fits.writeto(tmp_path / "big.fits", np.random.default_rng(5).random((70, 60)).astype(np.float32))
    code = main(["upscale", str(tmp_path / "big.fits"), "-o", str(tmp_path / "big_x2.zarr"), "--weights", weights_file,
                 "--progress", "json"])
    events = read_events(capsys)
    assert code == EXIT_OK and [e["event"] for e in events if e["event"] != "progress"] \
        == ["start", "file_start", "file_end", "end"], events
    assert check_fractions(events, 0)[-1] == 1.0
    assert events[-2]["status"] == "ok" and events[-2]["output"] == str(tmp_path / "big_x2.zarr")
    assert (tmp_path / "big_x2.zarr").is_dir()
