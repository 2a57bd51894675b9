"""The conv kernels keep their register blocks in registers: compiled for each variant's own CPU
(nothing runs), their hot code moves no vector to or from the stack (tools/kernel_asm.py)."""
import importlib.util
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("kernel_asm", Path(__file__).parents[1] / "tools" / "kernel_asm.py")
kernel_asm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(kernel_asm)

# Outside the Python-call wrapper a few "stack" moves are vector loads through %rbp used as a
# plain base register (the weights), not spills; a spilling block makes dozens (issue 12: 526).
HOT_MOVES_MAX = 4
# Everything, wrappers included, in the two kernels upscale runs (../shared/tools/count_spills.py).
ALL_MOVES_MAX = 60


@pytest.mark.parametrize("variant,cpu", kernel_asm.CPU_OF_VARIANT.items())
def test_conv_kernels_do_not_spill(variant, cpu):
    got = kernel_asm.compile_for(cpu, variant)["kernels"]
    report = "\n".join(f"  {name}: {c}" for name, c in got.items())
    for name, c in got.items():
        assert c["fma"] > 0, f"{cpu}/{variant} {name}: no FMA found\n{report}"
        assert c["kernel_stack_moves"] <= HOT_MOVES_MAX, f"{cpu}/{variant} {name} spills\n{report}"
    total = got["conv_relu_rows"]["stack_moves"] + got["fused_rows"]["stack_moves"]
    assert total <= ALL_MOVES_MAX, f"{cpu}/{variant}: {total} vector stack moves in all\n{report}"
