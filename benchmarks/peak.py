"""This machine's peak float32 multiply-add rate: the yardstick of the "% of peak" columns.

    peak GFLOP/s = cores x FMA units per core x lanes x 2 (FLOP per multiply-add) x clock (GHz)

cores: the benchmark's threads (at most the CPUs there are); lanes: float32 lanes of the widest
vectors this CPU multiply-adds (its own variant in srcnn_np.cpu.isa: 16 AVX-512, 8 AVX2, 4
otherwise; a forced variant does not change the machine's peak); clock: "cpu MHz"
of /proc/cpuinfo (a VM reports its nominal clock; boost is not counted); FMA units: vector
multiply-add pipes of that width per core, looked up by LLVM's name of the CPU (FMA_UNITS), 2 when
the name is not listed (say so with --fma-units where it is wrong). The result is printed with
every part, so a reader can redo it.
"""
import os
from dataclasses import dataclass

# Vector multiply-adds of the kernels' width a core starts per cycle, by LLVM CPU name.
FMA_UNITS = {
    "znver1": 1,  # two 128-bit FMA pipes: one 256-bit FMA per cycle
    "znver2": 2, "znver3": 2,
    "znver4": 1,  # AVX-512 on two 256-bit pipes: one 16-lane FMA per cycle
    "haswell": 2, "broadwell": 2, "skylake": 2, "alderlake": 2,
    "skylake-avx512": 2, "cascadelake": 2, "icelake-server": 2, "sapphirerapids": 2,  # Xeon Gold/Platinum
    "nehalem": 1, "westmere": 1,  # no FMA: one multiply and one add per cycle, counted as one unit
}


@dataclass(frozen=True)
class Peak:
    cpu: str
    cores: int
    fma_units: int
    lanes: int
    ghz: float
    assumed_units: bool  # FMA_UNITS did not know the CPU

    @property
    def gflops(self) -> float:
        return self.cores * self.fma_units * self.lanes * 2 * self.ghz

    def describe(self) -> str:
        units = f"{self.fma_units} FMA units{' (assumed)' if self.assumed_units else ''}"
        return (f"peak {self.gflops:.1f} GFLOP/s = {self.cores} cores x {units} x {self.lanes} lanes x 2 "
                f"x {self.ghz:.3f} GHz ({self.cpu})")


def clock_ghz() -> float:
    """The first 'cpu MHz' of /proc/cpuinfo in GHz (0 where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return float(line.split(":")[1]) / 1000
    except OSError:
        pass
    return 0.0


def machine_peak(threads: int, fma_units: int | None = None, ghz: float | None = None) -> Peak:
    """The peak for `threads` cores of this machine (fma_units, ghz: overrides)."""
    import llvmlite.binding as ll

    from srcnn_np.cpu import isa

    cpu = ll.get_host_cpu_name()
    lanes = isa.VARIANTS[isa.variant_for(cpu, ll.get_host_cpu_features().flatten())].lanes
    units = FMA_UNITS.get(cpu, 2) if fma_units is None else fma_units
    return Peak(cpu=cpu, cores=min(threads, os.cpu_count() or threads), fma_units=units,
                lanes=lanes, ghz=clock_ghz() if ghz is None else ghz,
                assumed_units=fma_units is None and cpu not in FMA_UNITS)
