"""Registers, spills and instruction mix of every srcnn_np CUDA kernel, without a GPU.

    python dev/cuda_ptx_report.py [ARCH]      # ARCH: sm_90 (default), sm_80, ...

Needs numba-cuda with its toolkit wheels (`pip install "numba-cuda[cu12]"`, which ships NVVM and
ptxas); compiles each kernel to PTX, then runs ptxas -v on it. For trying other blocking
constants in srcnn_np/gpu/kernels.py before a GPU session measures them (tools/gpu_check.py).
Per kernel: registers per thread, spill bytes, and in the PTX the float64 and .local lines
(both should be 0), fma.rn.f32 and ld.shared counts (FMAs per shared load of the unrolled body).
"""
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import nvidia.cuda_nvcc
from numba import cuda
from numba.cuda import dispatcher

if not cuda.is_available():  # numba-cuda asks the device for a compute capability when it
    # compiles a device function (conv_block); give it one, as a GPU would
    dispatcher.get_current_device = lambda: SimpleNamespace(compute_capability=(7, 5))

from srcnn_np.gpu import kernels  # noqa: E402 (after the patch above)

ARCH = sys.argv[1] if len(sys.argv) > 1 else "sm_90"
PTXAS = Path(nvidia.cuda_nvcc.__path__[0]) / "bin" / "ptxas"  # from the cuda-toolkit[nvcc] wheel
for name, (kernel, signature) in kernels.SIGNATURES.items():
    ptx, _ = cuda.compile_ptx(kernel.py_func, signature, cc=tuple(int(c) for c in ARCH[3:5]))
    lines = ptx.splitlines()
    with tempfile.NamedTemporaryFile("w", suffix=".ptx") as f:
        f.write(ptx)
        f.flush()
        done = subprocess.run([str(PTXAS), f"-arch={ARCH}", "-v", f.name, "-o", "/dev/null"],
                              capture_output=True, text=True, check=True)
    info = " | ".join(l.split("info    :")[-1].strip() for l in done.stderr.splitlines()
                      if "registers" in l or "spill" in l)
    print(f"{name:8} f64 {sum('.f64' in l for l in lines)}  local "
          f"{sum('.local' in l for l in lines)}  fma {ptx.count('fma.rn.f32')}  ld.shared "
          f"{ptx.count('ld.shared')}  {info}")
