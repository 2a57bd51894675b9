"""Which register-block variant the CPU kernels pick, and forcing one (srcnn_np/cpu/isa.py)."""
import os
import subprocess
import sys

import pytest

from srcnn_np.cpu import isa, threads

REGISTERS = {"avx512": 32, "avx2": 16, "lanes4": 16}  # vector registers of the ISA (SSE: 16 xmm)


def variant_in_fresh_process(**env) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_CPU", isa.VARIANT_ENV))}
    full.update(env)
    return subprocess.run([sys.executable, "-c", "from srcnn_np.cpu import isa; print(isa.BLOCK.name)"],
                          env=full, capture_output=True, text=True)


@pytest.mark.parametrize("cpu,variant", [("haswell", "avx2"), ("znver3", "avx2"), ("skylake-avx512", "avx512"),
                                         ("znver4", "avx512"), ("nehalem", "lanes4"), ("x86-64", "lanes4")])
def test_variant_follows_the_vector_registers_of_the_cpu(cpu, variant):
    assert isa.variant_for(cpu, "") == variant


@pytest.mark.parametrize("cpu,variant", [("haswell", "avx2"), ("skylake-avx512", "avx512"), ("nehalem", "lanes4")])
def test_variant_follows_numbas_target_cpu(cpu, variant):
    done = variant_in_fresh_process(NUMBA_CPU_NAME=cpu, NUMBA_CPU_FEATURES="")
    assert done.stdout.strip() == variant, done.stderr


@pytest.mark.parametrize("variant", list(isa.VARIANTS))
def test_variant_can_be_forced(variant):
    done = variant_in_fresh_process(**{isa.VARIANT_ENV: variant})
    assert done.stdout.strip() == variant, done.stderr


def test_an_unknown_forced_variant_is_a_clear_error():
    done = variant_in_fresh_process(**{isa.VARIANT_ENV: "avx1024"})
    assert done.returncode != 0
    assert "SRCNN_NP_CPU_VARIANT='avx1024': use one of avx512, avx2, lanes4" in done.stderr


@pytest.mark.parametrize("name,block", isa.VARIANTS.items())
def test_every_block_fits_its_register_file_and_the_padded_maps(name, block):
    in_use = block.pixels * block.vectors + block.vectors + 1  # accumulators, weights, broadcast
    assert in_use <= REGISTERS[name], f"{name}: {in_use} vector registers, the ISA has {REGISTERS[name]}"
    assert block.pixels <= isa.MAX_PIXELS, f"{name}: {block.pixels} pixels per block, maps allow {isa.MAX_PIXELS}"
    assert 32 % block.channels == 0, f"{name}: {block.channels} channels per block must divide conv3's 32"


@pytest.mark.parametrize("n,count", [(1, 4), (7, 2), (10, 3), (64, 64), (5, 1)])
def test_bands_cover_the_rows_once(n, count):
    bands = threads.bands_of(n, count)
    assert len(bands) == min(n, count)
    assert [r for start, stop in bands for r in range(start, stop)] == list(range(n))
    sizes = [stop - start for start, stop in bands]
    assert max(sizes) - min(sizes) <= 1, sizes
