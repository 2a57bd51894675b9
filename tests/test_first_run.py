"""The first run: one line on stderr while the kernels compile, and a working cache even when the
package directory is read-only (Numba then caches under the user's cache directory)."""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from srcnn_np.cpu.notice import NOTICE

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ("import numpy as np, srcnn_np; "
          "out = srcnn_np.upscale(np.linspace(0, 1, 42, dtype=np.float32).reshape(6, 7)); "
          "print(out.shape, float(out.sum()))")


def unwritable(command: list[str]) -> list[str]:
    """command run so that read-only modes bind: as root, as 'nobody' in a user namespace."""
    if os.geteuid() != 0:
        return command
    if shutil.which("unshare") is None:
        pytest.skip("running as root without unshare: file modes do not stop root from writing")
    return ["unshare", "--user", "--map-user=65534"] + command


def test_a_read_only_package_compiles_once_with_one_notice_then_loads_its_cache():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.chmod(tmp, 0o755)
        package = tmp / "site" / "srcnn_np"
        shutil.copytree(ROOT / "srcnn_np", package, ignore=shutil.ignore_patterns("__pycache__"))
        for d, _, files in os.walk(tmp / "site"):
            for f in files:
                os.chmod(Path(d, f), 0o444)
            os.chmod(d, 0o555)
        home = tmp / "home"
        home.mkdir()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "SRCNN_NP"))}
        env.update(HOME=str(home), PYTHONPATH=str(tmp / "site"), PYTHONDONTWRITEBYTECODE="1")
        try:
            runs = [subprocess.run(unwritable([sys.executable, "-c", SCRIPT]), env=env, capture_output=True,
                                   text=True, cwd=tmp) for _ in range(2)]
        finally:
            for d, _, _ in os.walk(tmp / "site"):
                os.chmod(d, 0o755)
    for run in runs:
        assert run.returncode == 0, run.stderr
    assert runs[0].stderr.count(NOTICE) == 1, f"first run's stderr:\n{runs[0].stderr}"
    assert NOTICE not in runs[1].stderr, f"second run compiled again:\n{runs[1].stderr}"
    assert runs[0].stdout == runs[1].stdout
