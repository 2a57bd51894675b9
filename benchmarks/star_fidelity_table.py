"""Print the science-fidelity tables of docs/science.md (Markdown) from `python -m srcnn_np evaluate --stars --json`.

    python -m srcnn_np evaluate --stars --scale 2 --hr data/esa-x2/val/hr --hdf --json > runs/stars_x2.json
    python benchmarks/star_fidelity_table.py runs/stars_x2.json            # every row docs/science.md shows
    python benchmarks/star_fidelity_table.py runs/stars_x4.json --short    # the x3 / x4 tables' rows

Cells: flux ratio median ± robust sigma at S/N 10, 100, 1000; centroid scatter (|bias|) in
low-resolution pixels; false and lost detections per field; sky noise over the native one and the
edge residual in native sky sigmas (synthetic fields only: a real image's noise is unknown).
"""
import argparse
import json

ROWS = ("native", "bicubic", "lanczos", "srcnn-general", "srcnn-astro", "srcnn-astro asinh", "bicubic +flux",
        "lanczos +flux", "srcnn-general +flux", "srcnn-astro +flux", "srcnn-astro +flux asinh")
SHORT_ROWS = ("bicubic", "srcnn-general", "srcnn-astro", "srcnn-astro asinh", "srcnn-astro +flux",
              "srcnn-astro +flux asinh")
LEVELS = ("10", "100", "1000")


def row_label(variant: str) -> str:
    return variant.replace("+flux", "--conserve-flux")


def table(summary: dict, rows, sky_columns: bool) -> str:
    head = (["method"] + [f"flux S/N {l}" for l in LEVELS] + ["centroid S/N 10", "S/N 100", "S/N 1000", "false", "lost"]
            + (["sky noise", "edge"] if sky_columns else []))
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for variant in rows:
        s = summary[variant]
        cells = [row_label(variant)]
        for l in LEVELS:
            b = s["by_snr"].get(l)
            cells.append(f"{b['flux_median']:.3f} ± {b['flux_scatter']:.3f}" if b else "-")
        for l in LEVELS:
            b = s["by_snr"].get(l)
            cells.append(f"{b['centroid_scatter']:.3f} ({abs(b['centroid_bias']):.3f})" if b else "-")
        cells += [f"{s['false_per_field']:.1f}", f"{s['lost_per_field']:.1f}"]
        if sky_columns:
            cells += [f"{s['noise_ratio']:.2f}", f"{s['edge_noise']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("json", help="output of evaluate --stars --json")
    p.add_argument("--short", action="store_true", help="only the rows of the x3 and x4 tables in docs/science.md")
    args = p.parse_args()
    with open(args.json) as f:
        results = json.load(f)
    rows = SHORT_ROWS if args.short else ROWS
    print(f"x{results['scale']}, synthetic fields ({len(results['fields'])}):\n")
    print(table(results["synthetic"], rows, sky_columns=True))
    if results.get("real"):
        print(f"\nx{results['scale']}, real images ({len(results['real_fields'])}):\n")
        print(table(results["real"], rows, sky_columns=False))


if __name__ == "__main__":
    main()
