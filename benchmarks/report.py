"""Run the srcnn_np-vs-torch benchmarks and print a table; write a PNG bar chart.

    flock /tmp/srcnn_cpu.lock python benchmarks/report.py [--sizes 256,512,1024] [--threads 2]
        [--json bench.json] [--png benchmarks/speed.png] [--from-json bench.json [more.json ...]]

The table has, per stage and input size: the median time of each, their GFLOP/s and the
srcnn_np / torch time ratio (below 1: srcnn_np is faster). --from-json re-reads saved runs
(several are merged) instead of running the benchmarks. The chart needs matplotlib (pip install matplotlib).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_benchmarks(sizes: str, threads: int, json_path: Path, select: str | None) -> None:
    env = dict(os.environ, SRCNN_BENCH_SIZES=sizes, SRCNN_BENCH_THREADS=str(threads))
    cmd = [sys.executable, "-m", "pytest", str(HERE), "-q", "-p", "no:cacheprovider",
           "--benchmark-enable", f"--benchmark-json={json_path}",
           "--ignore", str(HERE / "test_dask_speed.py")]  # dask vs in-memory, not a torch comparison
    if select:
        cmd += ["-k", select]
    subprocess.run(cmd, cwd=HERE.parent, env=env, check=True)


def rows_from_json(paths: list[Path]) -> list[dict]:
    """One row per benchmark group: stage, colour, size, and each implementation's time and GFLOP/s."""
    groups: dict = {}
    for b in (b for path in paths for b in json.loads(path.read_text())["benchmarks"]):
        info = b["extra_info"]
        row = groups.setdefault(b["group"], {"group": b["group"], "stage": info["stage"],
                                             "colour": info["colour"], "size": info["size"],
                                             "threads": info["threads"]})
        t = b["stats"]["median"]
        row[info["impl"]] = t
        row[info["impl"] + "_gflops"] = info["flop"] / t / 1e9 if info["flop"] else None
    rows = [r for r in groups.values() if "srcnn_np" in r and "torch" in r]
    for r in rows:
        r["ratio"] = r["srcnn_np"] / r["torch"]
    order = {s: i for i, s in enumerate(["bicubic", "conv1", "conv2", "conv3", "conv2+3", "model"])}
    return sorted(rows, key=lambda r: (r["colour"], r["size"], order[r["stage"]]))


def print_table(rows: list[dict]) -> None:
    def gf(x):
        return "-" if x is None else f"{x:7.1f}"

    print(f"\n{'stage':8} {'input':>12} {'thr':>3} {'torch s':>9} {'GFLOP/s':>8} "
          f"{'srcnn_np s':>10} {'GFLOP/s':>8} {'np/torch':>8}")
    for r in rows:
        print(f"{r['stage']:8} {r['colour'] + ' ' + str(r['size']):>12} {r['threads']:>3} "
              f"{r['torch']:9.4f} {gf(r['torch_gflops']):>8} {r['srcnn_np']:10.4f} "
              f"{gf(r['srcnn_np_gflops']):>8} {r['ratio']:8.3f}")


def bar_chart(rows: list[dict], png: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no chart: matplotlib is not installed (pip install matplotlib)", file=sys.stderr)
        return
    labels = [f"{r['stage']}\n{r['colour']} {r['size']}" for r in rows]
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
    p.add_argument("--json", type=Path, help="keep the pytest-benchmark JSON here")
    p.add_argument("--from-json", type=Path, nargs="+", help="report saved runs instead of running")
    p.add_argument("--png", type=Path, default=HERE / "speed.png")
    args = p.parse_args(argv)
    if args.from_json:
        json_paths = args.from_json
    else:
        json_paths = [args.json or Path(tempfile.mkdtemp()) / "bench.json"]
        run_benchmarks(args.sizes, args.threads, json_paths[0], args.select)
    rows = rows_from_json(json_paths)
    if not rows:
        print(f"{' '.join(map(str, json_paths))}: no benchmark group has both an srcnn_np and a torch entry",
              file=sys.stderr)
        return 1
    print_table(rows)
    bar_chart(rows, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
