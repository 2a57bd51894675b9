"""Per variant and per conv kernel: FMAs and vector moves to or from the stack in the machine code.

    python tools/kernel_asm.py                     every variant for its own CPU (table below)
    python tools/kernel_asm.py haswell skylake-avx512 --variant avx2 --max 60
    python tools/kernel_asm.py --dump DIR          also write each kernel's assembly to DIR

Nothing runs: each (CPU, variant) pair is compiled in a fresh process with NUMBA_CPU_NAME=CPU,
NUMBA_CPU_FEATURES="" (that CPU's own features; with the name alone Numba keeps this machine's)
and SRCNN_NP_CPU_VARIANT, for the signatures the model calls, and the assembly is read. On x86-64
Linux no vector register is callee-saved, so every xmm/ymm/zmm move to or from (%rsp)/(%rbp) is a
spill or a reload (the count ../shared/tools/count_spills.py makes; a vector load through %rbp used
as a plain base register counts too). "in kernel" leaves out the Python-call wrapper, which runs
once per call. FMAs: vfmadd* instructions, or mulps where the CPU has no FMA (SSE).
Exit status 1 when a pair has more than --max moves in all.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CPU_OF_VARIANT = {"avx512": "skylake-avx512", "avx2": "haswell", "lanes4": "nehalem"}
KERNELS = ("conv_relu_rows", "winograd_rows", "single_out_rows", "fused_rows")
STACK_MOVE = re.compile(r"[xyz]mm\d+.*\((%rsp|%rbp)\)|\((%rsp|%rbp)\).*[xyz]mm\d+")
FUNCTION_LABEL = re.compile(r"^[A-Za-z_][\w.$]*:$")


def count(asm: str) -> dict:
    """FMAs, stack vector moves (all, and outside the Python-call wrapper) and the widest register
    of one dispatcher's assembly. The wrapper (_ZN7cpython...) unboxes the arguments once per call;
    the rest is the kernel, where a stack move in a loop costs on every step."""
    fma = moves = kernel_moves = 0
    in_wrapper = False
    for line in asm.splitlines():
        if FUNCTION_LABEL.match(line):
            in_wrapper = line.startswith("_ZN7cpython")
        fma += "vfmadd" in line
        if STACK_MOVE.search(line):
            moves += 1
            kernel_moves += not in_wrapper
    if fma == 0:
        fma = sum(1 for line in asm.splitlines() if "mulps" in line)
    return {"fma": fma, "stack_moves": moves, "kernel_stack_moves": kernel_moves,
            "register": "zmm" if "zmm" in asm else "ymm" if "ymm" in asm else "xmm"}


def compile_here(dump: str | None) -> dict:
    """In this process (target set by the environment): compile the kernels, count per kernel."""
    import numpy as np
    from numba import typeof

    from srcnn_np.cpu import isa, kernels

    f32 = np.float32
    src, dst = np.zeros((12, 20, 64), f32), np.zeros((8, 20, 32), f32)
    w, w_last, b = np.zeros((5, 5, 64, 32), f32), np.zeros((5, 5, 32, 1), f32), np.zeros(32, f32)
    u = kernels.winograd_weights(w)
    out = np.zeros((8, 16), f32)
    args = {"conv_relu_rows": (src, w, b, 16, True, dst, 2, 0, 8),  # conv1 in the model (K = 9)
            "winograd_rows": (src, u, b, 16, 0, 0, True, dst, 2, 0, 2),
            "single_out_rows": (dst, w_last, b[:1], 16, out, 0, 4),
            "fused_rows": (src, u, b, w_last, b[:1], 16, 0, 0, out, 0, 8)}
    result = {}
    for name in KERNELS:
        disp = getattr(kernels, name)
        sig = tuple(typeof(a) for a in args[name])
        disp.compile(sig)
        asm = disp.inspect_asm(sig)
        result[name] = count(asm)
        if dump:
            Path(dump, f"{isa.BLOCK.name}-{name}.s").write_text(asm)
    return {"variant": isa.BLOCK.name, "kernels": result}


def compile_for(cpu: str, variant: str, dump: str | None = None) -> dict:
    """compile_here in a fresh process that targets `cpu` with `variant`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_CPU")}
    with tempfile.TemporaryDirectory() as cache:
        env.update(NUMBA_CPU_NAME=cpu, NUMBA_CPU_FEATURES="", SRCNN_NP_CPU_VARIANT=variant,
                   NUMBA_CACHE_DIR=cache, PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
        cmd = [sys.executable, __file__, "--here"] + (["--dump", dump] if dump else [])
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"compiling for {cpu} / {variant} failed:\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cpus", nargs="*", help="LLVM CPU names (default: each variant's own CPU)")
    p.add_argument("--variant", help="compile this variant for every CPU (default: the CPU's own variant)")
    p.add_argument("--max", type=int, help="fail when a (CPU, variant) has more stack moves in all")
    p.add_argument("--dump", help="write each kernel's assembly into this directory")
    p.add_argument("--here", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.here:
        print(json.dumps(compile_here(args.dump)))
        return 0
    if args.dump:
        os.makedirs(args.dump, exist_ok=True)
    if args.cpus:
        pairs = [(cpu, args.variant) for cpu in args.cpus]
    else:
        pairs = [(cpu, args.variant or v) for v, cpu in CPU_OF_VARIANT.items()]
    failed = False
    print(f"{'cpu':16} {'variant':8} {'kernel':16} {'reg':4} {'FMAs':>5} {'stack moves':>11} {'in kernel':>9}")
    for cpu, variant in pairs:
        if variant is None:
            from srcnn_np.cpu import isa

            variant = isa.variant_for(cpu, "")
        got = compile_for(cpu, variant, args.dump)
        total = in_kernel = 0
        for name, c in got["kernels"].items():
            total += c["stack_moves"]
            in_kernel += c["kernel_stack_moves"]
            print(f"{cpu:16} {variant:8} {name:16} {c['register']:4} {c['fma']:5d} {c['stack_moves']:11d} "
                  f"{c['kernel_stack_moves']:9d}")
        print(f"{cpu:16} {variant:8} {'all':16} {'':4} {'':5} {total:11d} {in_kernel:9d}")
        failed |= args.max is not None and total > args.max
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
