"""srcnn_np against other CPU inference engines on the same network: torch, onnxruntime, OpenVINO.

    pip install -e ".[reference,bench]"     (torch for the reference; onnx, onnxruntime, openvino)
    python benchmarks/peers.py [--size 512] [--threads 2] [--rounds 3] [--repeats 5] [--weights FILE]
        [--engines srcnn_np,onnxruntime,openvino,torch]

The network (bicubic x2, then the three convs, raw output) is the shipped x2 weights (or --weights)
in each engine's own form: srcnn_np's kernels (model.srcnn_forward, default tiling); torch's
reference model; and, for onnxruntime and OpenVINO, an ONNX graph built from the .npz with the
`onnx` package (Resize cubic a = -0.75 half-pixel, Conv, Relu; no torch involved). Input: a
size x size gray float32 image (random, fixed seed). Each engine runs in its own process, with
`threads` threads, one warm-up then the median of `repeats` runs; the engines take turns, and each
round starts with the next engine, so that a machine that drifts hits all of them alike. Printed:
each round's medians, each engine's time over torch's in the same round, the max difference of its
output to torch's, and the machine's peak (benchmarks/peak.py) with srcnn_np's share of it.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ENGINES = ("srcnn_np", "onnxruntime", "openvino", "torch")
SCALE = 2


def onnx_model(weights):
    """srcnn_np Weights (OIHW arrays) -> an onnx ModelProto: (1, 1, H, W) "lr" -> (1, 1, sH, sW) "sr"."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    arrays = weights.arrays()
    s = float(weights.scale)
    inits = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in arrays.items()]
    inits.append(numpy_helper.from_array(np.array([1, 1, s, s], np.float32), "scales"))
    nodes = [helper.make_node("Resize", ["lr", "", "scales"], ["up"], mode="cubic", cubic_coeff_a=-0.75,
                              coordinate_transformation_mode="half_pixel", exclude_outside=0)]
    x = "up"
    for i, relu in ((1, True), (2, True), (3, False)):
        k = arrays[f"conv{i}.weight"].shape[2]
        out = f"conv{i}" if relu else "sr"
        nodes.append(helper.make_node("Conv", [x, f"conv{i}.weight", f"conv{i}.bias"], [out],
                                      kernel_shape=[k, k], pads=[k // 2] * 4))
        if relu:
            nodes.append(helper.make_node("Relu", [out], [out + "_relu"]))
            out += "_relu"
        x = out
    graph = helper.make_graph(nodes, "srcnn", [helper.make_tensor_value_info("lr", TensorProto.FLOAT, [1, 1, None, None])],
                              [helper.make_tensor_value_info("sr", TensorProto.FLOAT, [1, 1, None, None])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="srcnn_np")
    onnx.checker.check_model(model)
    return model


def engine_runner(engine: str, weights, lr: np.ndarray, onnx_path: Path, threads: int):
    """(version, run) where run() returns the (sH, sW) float32 output for lr (H, W) float32."""
    x = lr[None, None]
    if engine == "srcnn_np":
        import numba

        import srcnn_np
        from srcnn_np.model import KernelWeights, srcnn_forward

        numba.set_num_threads(threads)
        kw = KernelWeights.from_weights(weights)
        return srcnn_np.__version__, lambda: srcnn_forward(lr, kw)
    if engine == "torch":
        import torch

        from reference.model import from_weights

        torch.set_num_threads(threads)
        net = from_weights(weights)
        xt = torch.from_numpy(x)

        def run_torch():
            with torch.inference_mode():
                return net(xt)[0, 0].numpy()
        return torch.__version__, run_torch
    if engine == "onnxruntime":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        return ort.__version__, lambda: sess.run(None, {"lr": x})[0][0, 0]
    if engine == "openvino":
        import openvino as ov

        compiled = ov.Core().compile_model(str(onnx_path), "CPU", {
            "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"})
        request = compiled.create_infer_request()

        def run_openvino():
            request.infer({0: x})
            return request.get_output_tensor(0).data[0, 0].copy()
        return ov.__version__.split("-")[0], run_openvino
    raise ValueError(f"unknown engine {engine!r}")


def child(engine: str, work: Path, threads: int, repeats: int) -> None:
    """One engine in this process: warm up, time `repeats` runs, save the output, print JSON."""
    from srcnn_np.weights import load_weights

    weights = load_weights(str(work / "weights.npz"), scale=SCALE)
    lr = np.load(work / "lr.npy")
    version, run = engine_runner(engine, weights, lr, work / "srcnn.onnx", threads)
    out = run()  # warm-up: compile or load caches, plan the convolutions
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - t0)
    np.save(work / f"{engine}.npy", np.asarray(out, np.float32))
    print(json.dumps({"engine": engine, "version": version, "median": statistics.median(times)}))


def available(engine: str) -> bool:
    module = {"srcnn_np": "srcnn_np", "torch": "torch", "onnxruntime": "onnxruntime", "openvino": "openvino"}[engine]
    import importlib.util

    return importlib.util.find_spec(module) is not None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=512, help="input side (gray), output is x2")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=5, help="timed runs per engine and round (median)")
    p.add_argument("--weights", help="a .npz weights file at x2 (default: the shipped x2 weights)")
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--fma-units", type=int, help="override benchmarks/peak.py's FMA units per core")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child, args.work, args.threads, args.repeats)
        return 0

    from peak import machine_peak
    from srcnn_np.cpu import winograd
    from srcnn_np.weights import load_weights, save_weights

    engines = [e.strip() for e in args.engines.split(",")]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        p.error(f"unknown engine {unknown[0]!r}: use {', '.join(ENGINES)}")
    missing = [e for e in engines if not available(e)]
    for e in missing:
        print(f"{e}: not installed, left out (pip install -e '.[reference,bench]')", file=sys.stderr)
    engines = [e for e in engines if e not in missing]
    weights = load_weights(args.weights, scale=SCALE)
    work = Path(tempfile.mkdtemp(prefix="srcnn_peers_"))
    save_weights(work / "weights.npz", weights.arrays(), scale=weights.scale, meta={"note": "peer benchmark"})
    np.save(work / "lr.npy", np.random.default_rng(0).random((args.size, args.size), dtype=np.float32))
    if "onnxruntime" in engines or "openvino" in engines:
        import onnx

        onnx.save(onnx_model(weights), str(work / "srcnn.onnx"))

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]))
    medians = {e: [] for e in engines}
    versions = {}
    for r in range(args.rounds):
        for e in engines[r % len(engines):] + engines[:r % len(engines)]:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--child", e, "--work", str(work),
                   "--threads", str(args.threads), "--repeats", str(args.repeats)]
            result = json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
                                .stdout.strip().splitlines()[-1])
            medians[e].append(result["median"])
            versions[e] = result["version"]
            print(f"round {r + 1}: {e:12} {result['median']:.4f} s", file=sys.stderr)

    peak = machine_peak(args.threads, args.fma_units)
    s = args.size * SCALE
    w = weights.arrays()  # a conv's multiply-adds per output pixel: its weights' size
    done = 2 * s * s * (w["conv1.weight"].size + winograd.MULTIPLY_ADD_RATIO * w["conv2.weight"].size
                        + w["conv3.weight"].size)
    reference = np.load(work / "torch.npy") if "torch" in engines else None
    print(f"\nx{SCALE} {args.size}x{args.size} gray, {args.threads} threads, median of {args.repeats} runs "
          f"per round, {args.rounds} rounds; {peak.describe()}")
    print(f"{'engine':12} {'version':16} {'seconds per round':>26} {'/ torch per round':>22} "
          f"{'max |diff| to torch':>19}")
    for e in engines:
        times = " / ".join(f"{t:.3f}" for t in medians[e])
        ratios = (" / ".join(f"{t / u:.3f}" for t, u in zip(medians[e], medians["torch"]))
                  if "torch" in medians else "-")
        diff = (f"{float(np.abs(np.load(work / f'{e}.npy') - reference).max()):.1e}"
                if reference is not None and e != "torch" else "-")
        print(f"{e:12} {versions[e]:16} {times:>26} {ratios:>22} {diff:>19}")
    if "srcnn_np" in medians:
        best = min(medians["srcnn_np"])
        print(f"srcnn_np: {done / 1e9:.1f} GFLOP done by its algorithms (conv2 by Winograd), best round "
              f"{done / best / 1e9:.1f} GFLOP/s = {100 * done / best / 1e9 / peak.gflops:.0f}% of peak")
        peers = [e for e in ("onnxruntime", "openvino") if e in medians]
        if peers:
            fastest = [min(medians[e][r] for e in peers) for r in range(args.rounds)]
            print("srcnn_np / the faster of " + " and ".join(peers) + " per round: "
                  + " / ".join(f"{t / u:.3f}" for t, u in zip(medians["srcnn_np"], fastest)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
