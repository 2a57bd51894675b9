"""Run the srcnn_np-vs-torch benchmarks and print a table; write a PNG bar chart.

    flock /tmp/srcnn_cpu.lock python benchmarks/report.py [--sizes 256,512,1024] [--threads 2]
        [--variants native,avx2,lanes4] [--json bench.json] [--png benchmarks/speed.png]
        [--from-json bench.json [more.json ...]]

The table has, per variant, stage and input size: the median time of each, their GFLOP/s (of the
direct convolutions' work, the same count for both), the srcnn_np / torch time ratio (below 1:
srcnn_np is faster), and srcnn_np's GFLOP/s of the work its algorithms actually do (conv2 by
Winograd does fewer multiply-adds) with that rate's share of the machine's peak, printed above the
table with its parts (benchmarks/peak.py; --fma-units overrides its guess). --variants runs the benchmarks once per
variant of the CPU kernels, each in its own process, one after the other: "native" is this
machine's; a forced variant is compiled for a CPU of its kind and torch is capped to the same
vector ISA (see FORCED), so an AVX-512 machine shows roughly what an AVX2 one would. --from-json
re-reads saved runs (several are merged) instead of running the benchmarks. The chart needs
matplotlib (pip install matplotlib).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Environment of each forced variant: the kernels' block, the CPU Numba compiles for (both variables:
# the name alone keeps this machine's features) and the vector ISA torch (ATen, oneDNN) may use.
FORCED = {
    "avx512": dict(SRCNN_NP_CPU_VARIANT="avx512", NUMBA_CPU_NAME="skylake-avx512", NUMBA_CPU_FEATURES=""),
    "avx2": dict(SRCNN_NP_CPU_VARIANT="avx2", NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES="",
                 ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2"),
    "lanes4": dict(SRCNN_NP_CPU_VARIANT="lanes4", NUMBA_CPU_NAME="nehalem", NUMBA_CPU_FEATURES="",
                   ATEN_CPU_CAPABILITY="default", ONEDNN_MAX_CPU_ISA="SSE41"),
}


def run_benchmarks(sizes: str, threads: int, json_path: Path, select: str | None, variant: str = "native") -> None:
    env = {k: v for k, v in os.environ.items() if variant == "native" or k not in FORCED[variant]}
    env.update(FORCED.get(variant, {}), SRCNN_BENCH_SIZES=sizes, SRCNN_BENCH_THREADS=str(threads))
    cmd = [sys.executable, "-m", "pytest", str(HERE), "-q", "-p", "no:cacheprovider",
           "--benchmark-enable", f"--benchmark-json={json_path}",
           # not torch comparisons: dask vs in-memory, and the CLI's encoders before/after
           "--ignore", str(HERE / "test_dask_speed.py"), "--ignore", str(HERE / "test_cli_speed.py")]
    if select:
        cmd += ["-k", select]
    subprocess.run(cmd, cwd=HERE.parent, env=env, check=True)


def rows_from_json(paths: list[Path]) -> list[dict]:
    """One row per variant and benchmark group: stage, colour, size, and each implementation's time
    and GFLOP/s (the variant: the kernels' block @ Numba's target CPU, torch's CPU capability)."""
    groups: dict = {}
    for b in (b for path in paths for b in json.loads(path.read_text())["benchmarks"]):
        info = b["extra_info"]
        if "stage" not in info:  # another kind of benchmark (a saved run of the whole folder)
            continue
        variant = (f"{info['variant']}@{info['target_cpu']}/torch {info['torch_cpu']}" if "variant" in info
                   else "-")
        row = groups.setdefault((variant, b["group"]), {"group": b["group"], "stage": info["stage"],
                                                        "colour": info["colour"], "size": info["size"],
                                                        "threads": info["threads"], "variant": variant})
        t = b["stats"]["median"]
        row[info["impl"]] = t
        row[info["impl"] + "_gflops"] = info["flop"] / t / 1e9 if info["flop"] else None
        done = info.get("flop_done", info["flop"])  # older runs did not record it
        row[info["impl"] + "_done_gflops"] = done / t / 1e9 if done else None
    rows = [r for r in groups.values() if "srcnn_np" in r and "torch" in r]
    for r in rows:
        r["ratio"] = r["srcnn_np"] / r["torch"]
    order = {s: i for i, s in enumerate(["bicubic", "conv1", "conv2", "conv3", "conv2+3", "model"])}
    return sorted(rows, key=lambda r: (r["variant"], r["colour"], r["size"], order[r["stage"]]))


def print_table(rows: list[dict], fma_units: int | None = None) -> None:
    from peak import machine_peak

    def gf(x):
        return "-" if x is None else f"{x:7.1f}"

    peaks = {t: machine_peak(t, fma_units) for t in sorted({r["threads"] for r in rows})}
    for p in peaks.values():
        print(f"\n{p.describe()}")
    width = max(len(r["variant"]) for r in rows)
    print(f"{'variant':{width}} {'stage':8} {'input':>12} {'thr':>3} {'torch s':>9} {'GFLOP/s':>8} "
          f"{'srcnn_np s':>10} {'GFLOP/s':>8} {'np/torch':>8} {'done GF/s':>9} {'% peak':>6}")
    for r in rows:
        done = r["srcnn_np_done_gflops"]
        share = "-" if done is None else f"{100 * done / peaks[r['threads']].gflops:5.0f}%"
        print(f"{r['variant']:{width}} {r['stage']:8} {r['colour'] + ' ' + str(r['size']):>12} {r['threads']:>3} "
              f"{r['torch']:9.4f} {gf(r['torch_gflops']):>8} {r['srcnn_np']:10.4f} "
              f"{gf(r['srcnn_np_gflops']):>8} {r['ratio']:8.3f} {gf(done):>9} {share:>6}")


def bar_chart(rows: list[dict], png: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no chart: matplotlib is not installed (pip install matplotlib)", file=sys.stderr)
        return
    labels = [f"{r['stage']}\n{r['colour']} {r['size']}\n{r['variant'].split('@')[0]}" for r in rows]
    fig, ax = plt.subplots(figsize=(max(8, 0.7 * len(rows)), 4.5))
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [r["torch"] for r in rows], 0.4, label="torch")
    ax.bar([x + 0.2 for x in xs], [r["srcnn_np"] for r in rows], 0.4, label="srcnn_np")
    for x, r in zip(xs, rows):
        ax.text(x + 0.2, r["srcnn_np"], f"{r['ratio']:.2f}", ha="center", va="bottom", fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("median time (s, log)")
    ax.set_title(f"srcnn_np vs torch, {rows[0]['threads']} threads (labels: srcnn_np / torch time)")
    ax.set_xticks(list(xs), labels, fontsize=7)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    print(f"chart: {png}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="256,512,1024", help="input sides, comma separated")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("-k", dest="select", help="pytest -k expression to run a subset")
    p.add_argument("--variants", default="native",
                   help=f"comma separated: native and/or forced variants ({', '.join(FORCED)})")
    p.add_argument("--json", type=Path, help="keep the pytest-benchmark JSON here")
    p.add_argument("--from-json", type=Path, nargs="+", help="report saved runs instead of running")
    p.add_argument("--png", type=Path, default=HERE / "speed.png")
    p.add_argument("--fma-units", type=int, help="FMA units per core for the peak (default: benchmarks/peak.py's table)")
    args = p.parse_args(argv)
    if args.from_json:
        json_paths = args.from_json
    else:
        variants = args.variants.split(",")
        unknown = [v for v in variants if v != "native" and v not in FORCED]
        if unknown:
            p.error(f"unknown variant {unknown[0]!r}: use native, {', '.join(FORCED)}")
        json_paths = []
        for variant in variants:
            path = args.json or Path(tempfile.mkdtemp()) / "bench.json"
            if len(variants) > 1:
                path = path.with_name(f"{path.stem}-{variant}{path.suffix}")
            run_benchmarks(args.sizes, args.threads, path, args.select, variant)
            json_paths.append(path)
    rows = rows_from_json(json_paths)
    if not rows:
        print(f"{' '.join(map(str, json_paths))}: no benchmark group has both an srcnn_np and a torch entry",
              file=sys.stderr)
        return 1
    print_table(rows, args.fma_units)
    bar_chart(rows, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
