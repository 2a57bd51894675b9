"""Plot the science-fidelity figures of `python -m srcnn_np evaluate --stars --json` (docs/science.md).

    python -m srcnn_np evaluate --stars --scale 2 --json > runs/stars_x2.json
    python benchmarks/star_fidelity_plot.py runs/stars_x2.json docs/science_fidelity.png

Three panels against S/N, synthetic fields: median aperture flux error in %, the scatter of the ratio, and the
centroid scatter in low-resolution pixels, for the native image and a few methods. Needs matplotlib.
"""
import argparse
import json

VARIANTS = {  # variant -> (label, colour, line style)
    "native": ("native (no upscaling)", "black", "-"),
    "bicubic": ("bicubic", "tab:blue", "-"),
    "lanczos": ("Lanczos-3", "tab:cyan", "--"),
    "srcnn-general": ("SRCNN general", "tab:orange", "-"),
    "srcnn-astro": ("SRCNN astro", "tab:red", "-"),
    "srcnn-astro asinh": ("SRCNN astro, asinh", "tab:purple", ":"),
    "srcnn-astro +flux": ("SRCNN astro, --conserve-flux", "tab:green", "-"),
    "srcnn-astro +flux asinh": ("SRCNN astro, --conserve-flux asinh", "tab:olive", "--"),
}
PANELS = (("flux_median", "median flux error (%)", True), ("flux_scatter", "flux ratio scatter (robust sigma)", False),
          ("centroid_scatter", "centroid scatter (low-res px)", False))


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.3), dpi=80)
    summary = results["synthetic"]
    for variant, (label, colour, style) in VARIANTS.items():
        if variant not in summary:
            continue
        by_snr = summary[variant]["by_snr"]
        snr = [float(k) for k in by_snr]
        for ax, (key, _, signed) in zip(axes, PANELS):
            values = [100 * (by_snr[k][key] - 1) if signed else by_snr[k][key] for k in by_snr]
            ax.plot(snr, values, style, color=colour, marker="o", ms=3, label=label)
    for ax, (_, title, signed) in zip(axes, PANELS):
        ax.set_xscale("log")
        if not signed:
            ax.set_yscale("log")
        ax.set_xlabel("S/N")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].axhline(0, color="grey", lw=0.8)
    axes[2].legend(fontsize=7)
    fig.suptitle(f"x{results['scale']} synthetic star fields ({len(results['fields'])}), photutils "
                 "aperture photometry against the noiseless truth", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("json", help="output of evaluate --stars --json")
    p.add_argument("png", help="figure to write")
    args = p.parse_args(argv)
    with open(args.json, encoding="utf-8") as f:
        plot(json.load(f), args.png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
