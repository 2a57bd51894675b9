"""Which register block the CPU conv kernels use: picked once, at import, for the CPU Numba targets.

A register block is `pixels` output pixels x `vectors` float32 vectors of `lanes` lanes each,
kept in vector registers while a conv kernel sums over its taps (see srcnn_np.cpu.simd). It must
fit the register file of the target, with room for the `vectors` weight vectors and one broadcast:

    variant  vector ISA                   registers      block (accumulators + weights + broadcast)
    avx512   AVX-512                      32 zmm x 16    8 px x 2 vec = 16 + 2 + 1 = 19
    avx2     AVX2 + FMA3 (Zen, Haswell+)  16 ymm x 8     6 px x 2 vec = 12 + 2 + 1 = 15
    lanes4   SSE4 (16 xmm), NEON (32)     16 xmm x 4     4 px x 2 vec =  8 + 2 + 1 (+1 product
                                                         where there is no FMA)    = 12

The target is the CPU Numba compiles for: this machine, or NUMBA_CPU_NAME / NUMBA_CPU_FEATURES
when set (set both to build for another CPU; an empty NUMBA_CPU_FEATURES means that CPU's own
features). LLVM is asked which registers that target has. SRCNN_NP_CPU_VARIANT=avx512|avx2|lanes4
forces a variant (tests, benchmarks); any variant runs on any CPU, only its speed differs.
"""
import os
from dataclasses import dataclass

VARIANT_ENV = "SRCNN_NP_CPU_VARIANT"
MAX_PIXELS = 8  # the padded maps' columns are rounded up to 8 (kernels.PIXEL_BLOCK): no block is wider


@dataclass(frozen=True)
class BlockShape:
    """A register block: `pixels` output pixels x `vectors` vectors of `lanes` float32 lanes."""

    name: str
    pixels: int
    vectors: int
    lanes: int

    @property
    def channels(self) -> int:
        """Channels one block covers (output channels of a conv, or input channels of the last one)."""
        return self.vectors * self.lanes


VARIANTS = {
    "avx512": BlockShape("avx512", pixels=8, vectors=2, lanes=16),
    "avx2": BlockShape("avx2", pixels=6, vectors=2, lanes=8),
    "lanes4": BlockShape("lanes4", pixels=4, vectors=2, lanes=4),
}

# The smallest LLVM function that shows the widest float vector register of a target with FMA.
_PROBE_IR = """
define <16 x float> @probe(<16 x float> %a, <16 x float> %b, <16 x float> %c) {
  %r = call <16 x float> @llvm.fma.v16f32(<16 x float> %a, <16 x float> %b, <16 x float> %c)
  ret <16 x float> %r
}
declare <16 x float> @llvm.fma.v16f32(<16 x float>, <16 x float>, <16 x float>)
"""


def target_cpu() -> tuple[str, str]:
    """(CPU name, LLVM feature string) that Numba compiles for, as numba.core.codegen picks them."""
    import llvmlite.binding as ll
    from numba.core import config

    name = config.CPU_NAME or ll.get_host_cpu_name()
    features = config.CPU_FEATURES
    if features is None:
        features = ll.get_host_cpu_features().flatten()
    return name, features


def variant_for(cpu_name: str, features: str) -> str:
    """The variant whose block fits the vector registers LLVM uses on that CPU (x86 or not)."""
    import llvmlite.binding as ll

    ll.initialize_native_target()
    ll.initialize_native_asmprinter()
    machine = ll.Target.from_default_triple().create_target_machine(cpu=cpu_name, features=features)
    asm = machine.emit_assembly(ll.parse_assembly(_PROBE_IR))
    if "zmm" in asm:
        return "avx512"
    if "ymm" in asm and "vfmadd" in asm:
        return "avx2"
    return "lanes4"


def pick_variant() -> BlockShape:
    """SRCNN_NP_CPU_VARIANT when set, else the variant for Numba's target CPU."""
    forced = os.environ.get(VARIANT_ENV, "").strip()
    if forced:
        if forced not in VARIANTS:
            raise ValueError(f"{VARIANT_ENV}={forced!r}: use one of {', '.join(VARIANTS)}")
        return VARIANTS[forced]
    return VARIANTS[variant_for(*target_cpu())]


BLOCK = pick_variant()  # the register block of this process's kernels
