"""The ONNX graph that benchmarks/peers.py hands to onnxruntime and OpenVINO is the same network:
built from the weights alone (no torch), it gives srcnn_np's output within the parity tolerance."""
import numpy as np
import pytest

from benchmarks.peers import onnx_model
from srcnn_np.model import KernelWeights, forward_stages

from .checks import assert_close
from .conftest import PARITY_TOL, random_weights


@pytest.mark.parametrize("scale, shape", [(2, (13, 17)), (3, (9, 6)), (4, (5, 8))])
def test_onnx_graph_computes_the_network(scale, shape):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    weights = random_weights(6, scale)
    lr = np.random.default_rng(scale).random(shape, dtype=np.float32)
    session = ort.InferenceSession(onnx_model(weights).SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"lr": lr[None, None]})[0][0, 0]
    want = forward_stages(lr, KernelWeights.from_weights(weights))["output"]
    assert_close(f"ONNX graph x{scale} {shape}", got, want, PARITY_TOL)
