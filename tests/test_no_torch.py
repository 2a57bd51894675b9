"""The runtime never imports torch."""
import subprocess
import sys

SCRIPT = """
import sys
import numpy as np
import srcnn_np
from srcnn_np import cli, weights, model, color
from srcnn_np.io import imageio, png
image = (np.random.default_rng(0).random((9, 7, 3)) * 255).astype(np.uint8)
out = srcnn_np.upscale(image)
assert out.shape == (18, 14, 3), out.shape
bad = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
print("torch modules:", bad)
sys.exit(1 if bad else 0)
"""


def test_upscale_without_torch():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
