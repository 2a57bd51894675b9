"""Train SRCNN: pre-training on natural images, fine-tuning on astronomical images (Y channel).

    # 1. general model: bundled natural images (NATURAL_TRAIN), validated on NATURAL_HELD_OUT
    python -m reference.train --stage general --scale 2 --out runs/x2_general \
        --export srcnn_np/weights/srcnn_x2_general.npz
    # 2. astro model: fine-tune the general one on ESA/Hubble train split + skimage + synthetic sky
    python -m reference.train --stage astro --scale 2 --init runs/x2_general/model.pt \
        --out runs/x2_astro --export srcnn_np/weights/srcnn_x2_astro.npz

Every epoch validates on full images with the evaluate protocol (make_lr input, PSNR on Y,
`scale`-pixel border crop) on both validation sets: the held-out natural images and the ESA/Hubble
validation split (reference.data.split_of). Writes OUT/log.csv, OUT/curves.png, OUT/checkpoint.pt
(each epoch, for --resume) and OUT/model.pt (a checkpoint tools/convert_weights.py reads).
--quick trains a few seconds on tiny data (tests).
"""
import argparse
import csv
import json
import math
import platform
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from reference import data
from reference.model import SRCNN
from srcnn_np.geometry import edge_margin
from srcnn_np.io.atomic import atomic_output
from srcnn_np.eval.metrics import psnr

DEFAULT_ASTRO_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "esa-hubble-128"
LOG_FIELDS = ("epoch", "iterations", "train_loss", "val_natural_psnr", "val_astro_psnr", "wall_s")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", choices=("general", "astro"), required=True)
    p.add_argument("--scale", type=int, default=2, choices=(2, 3, 4))
    p.add_argument("--out", required=True, help="run directory (log, checkpoints, plot)")
    p.add_argument("--init", help="model.pt/checkpoint.pt, or an srcnn_np .npz, to start from (astro: the general model)")
    p.add_argument("--export", help="also write the final weights as an srcnn_np .npz here")
    p.add_argument("--astro-dir", default=str(DEFAULT_ASTRO_DIR),
                   help="ESA/Hubble image directory (split by file-name hash); 'none' to skip")
    p.add_argument("--synthetic", type=int, default=8, help="synthetic sky images in the astro set")
    p.add_argument("--epochs", type=int, help="epochs (default 10; 2 with --quick)")
    p.add_argument("--iters", type=int, default=200, help="iterations per epoch")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr-patch", type=int, help="LR patch side (HR patch = scale x this); default "
                   "64 // scale, so every scale trains on about 64x64 HR patches")
    p.add_argument("--loss-border", type=int, help="HR pixels cropped from each patch edge before the "
                   "loss; default `scale`. The net sees zero padding within 8 pixels of a patch edge "
                   "(receptive radius 4 + 2 + 2), which only the image's own border sees at inference")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    p.add_argument("--lr", type=float, default=3e-4, help="learning rate of conv1 and conv2")
    p.add_argument("--last-lr-factor", type=float, default=1.0,
                   help="conv3 lr = lr x this; SRCNN's SGD practice is 0.1, with Adam 1.0 measured better")
    p.add_argument("--schedule", choices=("cosine", "constant"), default="cosine",
                   help="learning-rate schedule over all iterations (cosine decays to 0)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD only")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: forward and backward under bfloat16 autocast in channels-last layout, "
                   "about 4x faster on CPUs with AMX (4th-gen Xeon and later), slow elsewhere; the "
                   "weights, the optimizer and validation stay float32")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--stop-after", type=int, metavar="EPOCH",
                   help="stop after this epoch as if interrupted (continue later with --resume)")
    p.add_argument("--quick", action="store_true", help="tiny data, 2 short epochs (< 1 minute)")
    args = p.parse_args(argv)
    if args.quick:
        args.iters, args.batch, args.lr_patch, args.synthetic = 5, 4, 16, 2
    if args.lr_patch is None:
        args.lr_patch = 64 // args.scale
    if args.loss_border is None:
        args.loss_border = args.scale
    if args.epochs is None:
        args.epochs = 2 if args.quick else 10
    return args


def init_near_identity(model: SRCNN, rng: torch.Generator) -> None:
    """Start the net exactly at bicubic upsampling, with the other channels ready to learn.

    conv1 and conv2: He-normal (halved) weights, zero biases, except channel 0 of each, a centred
    delta on input channel 0; conv3: a centred delta on input channel 0, zero elsewhere. Images are
    >= 0, so the ReLUs pass the upsampled input through and the untrained net is bicubic; training
    learns the correction (conv3's zero weights still get gradients from the other channels).
    """
    with torch.no_grad():
        for conv in (model.conv1, model.conv2):
            fan_in = conv.weight[0].numel()
            conv.weight.normal_(0.0, (2.0 / fan_in) ** 0.5 * 0.5, generator=rng)
            conv.bias.zero_()
        model.conv3.weight.zero_()
        model.conv3.bias.zero_()
        for conv in (model.conv1, model.conv2, model.conv3):
            k = conv.kernel_size[0] // 2
            conv.weight[0].zero_()
            conv.weight[0, 0, k, k] = 1.0


def make_optimizer(model: SRCNN, args):
    groups = [{"params": list(model.conv1.parameters()) + list(model.conv2.parameters()), "lr": args.lr},
              {"params": list(model.conv3.parameters()), "lr": args.lr * args.last_lr_factor}]
    if args.optimizer == "adam":
        return torch.optim.Adam(groups, weight_decay=args.weight_decay)
    return torch.optim.SGD(groups, momentum=args.momentum, weight_decay=args.weight_decay)


def load_data(args):
    """(training images, {'natural': [...], 'astro': [...]} validation images), TrainImage lists."""
    s = args.scale
    astro_dir = None if args.astro_dir == "none" else Path(args.astro_dir)
    if astro_dir is not None and not astro_dir.is_dir():
        print(f"train: {astro_dir} not found; the astro set is skimage + synthetic only", file=sys.stderr)
        astro_dir = None
    if args.quick:
        nat_train = data.natural_images(s, ("camera", "coins"), size=96)
        nat_val = data.natural_images(s, ("chelsea",), size=64)
    else:  # full resolution and ground truths of each NATURAL_GT_SIZES side (256: the dataset protocol)
        nat_train = data.natural_images(s)
        for size in data.NATURAL_GT_SIZES:
            nat_train += data.natural_images(s, size=size)
        nat_val = data.natural_images(s, data.NATURAL_HELD_OUT, size=data.GT_SIZE)
    astro_val = data.astro_dir_images(astro_dir, s, "val") if astro_dir else []
    if args.stage == "general":
        return nat_train, {"natural": nat_val, "astro": astro_val}
    from srcnn_np.eval.synthetic import synthetic_sky

    size = 96 if args.quick else data.GT_SIZE
    astro_train = data.natural_images(s, ("moon",) if args.quick else data.SKIMAGE_ASTRO)
    if not args.quick:
        astro_train += data.natural_images(s, data.SKIMAGE_ASTRO, size=data.GT_SIZE)
    astro_train += [data.train_image(f"synthetic-{i}", synthetic_sky(size, size, seed=1000 + i), s)
                    for i in range(args.synthetic)]
    if astro_dir:
        astro_train += data.astro_dir_images(astro_dir, s, "train")
    if not astro_val:  # no ESA images: validate on held-out synthetic sky
        astro_val = [data.train_image(f"synthetic-val-{i}", synthetic_sky(size, size, seed=9000 + i), s)
                     for i in range(2)]
    return astro_train, {"natural": nat_val, "astro": astro_val}


@torch.no_grad()
def validate(model: SRCNN, images: list, scale: int) -> float:
    """Mean PSNR (dB) on Y over whole images, `scale`-pixel border crop; nan for no images.

    As `srcnn_np.upscale` runs the net (edges="replicate"): on the input extended by
    edge_margin(scale) edge pixels, the output cropped back.
    """
    if not images:
        return float("nan")
    model.eval()
    m = edge_margin(scale)
    c = m * scale
    scores = []
    for im in images:
        lr = np.pad(im.lr, m, mode="edge")
        out = model(torch.from_numpy(lr)[None, None]).clamp(0, 1)[0, 0, c:-c, c:-c].numpy()
        scores.append(psnr(im.hr, out, border=scale))
    model.train()
    return float(np.mean(scores))


def bicubic_psnr(images: list, scale: int) -> float:
    """The bicubic baseline of `validate` (the untrained, identity-initialised net equals it)."""
    if not images:
        return float("nan")
    scores = []
    for im in images:
        up = F.interpolate(torch.from_numpy(im.lr)[None, None], scale_factor=scale, mode="bicubic",
                           align_corners=False).clamp(0, 1)[0, 0].numpy()
        scores.append(psnr(im.hr, up, border=scale))
    return float(np.mean(scores))


def atomic_torch_save(obj, path: Path) -> None:
    with atomic_output(path, overwrite=True, suffix=".pt") as tmp:
        torch.save(obj, tmp)


def progress(epoch, epochs, it, iters, loss, stream=sys.stderr):
    width = 30
    done = int(width * it / iters)
    stream.write(f"\repoch {epoch}/{epochs} [{'#' * done}{'.' * (width - done)}] {it}/{iters} "
                 f"loss {loss:.6f}")
    if it == iters:
        stream.write("\n")
    stream.flush()


def plot_curves(rows: list, baseline: dict, path: Path) -> None:
    """Training loss and validation PSNR per epoch (bicubic dashed) -> PNG (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [r["epoch"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    a.plot(ep, [r["train_loss"] for r in rows], marker="o")
    a.set(xlabel="epoch", ylabel="training MSE", yscale="log", title="training loss")
    for key, label in (("natural", "natural (held out)"), ("astro", "astro (val split)")):
        line, = b.plot(ep, [r[f"val_{key}_psnr"] for r in rows], marker="o", label=label)
        b.axhline(baseline[key], color=line.get_color(), linestyle="--", linewidth=1)
    b.set(xlabel="epoch", ylabel="PSNR Y (dB)", title="validation PSNR (dashed: bicubic)")
    b.legend()
    fig.tight_layout()
    with atomic_output(path, overwrite=True, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)


def write_log(rows: list, path: Path) -> None:
    with atomic_output(path, overwrite=True, suffix=".csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=LOG_FIELDS)
        w.writeheader()
        w.writerows(rows)


def _number_or_none(x):
    """JSON has no NaN: a validation set that is absent is recorded as null."""
    return None if x is None or not math.isfinite(x) else float(x)


def train(args) -> dict:
    """Run the training described by `args`; returns the meta written with the weights."""
    t_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train_images, val_sets = load_data(args)
    rng = np.random.default_rng(args.seed)
    sampler = data.PatchSampler(train_images, args.scale, args.lr_patch, rng)
    model = SRCNN(args.scale)
    init_near_identity(model, torch.Generator().manual_seed(args.seed))
    init_meta = None  # the meta of the run we start from: each file carries its whole training history
    if args.init and args.init.endswith(".npz"):  # an srcnn_np weight file, e.g. a shipped model
        from srcnn_np.weights import load_weights

        weights = load_weights(args.init, scale=args.scale)  # refuses another scale's weights
        model.load_state_dict({k: torch.tensor(v) for k, v in weights.arrays().items()})
        init_meta = weights.meta
    elif args.init:
        state = torch.load(args.init, map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("model", state))
        init_meta = state.get("meta")
    bf16 = args.precision == "bf16"
    layout = torch.channels_last if bf16 else torch.contiguous_format
    model = model.to(memory_format=layout)
    optimizer = make_optimizer(model, args)
    total = args.epochs * args.iters
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, (lambda i: 0.5 * (1 + math.cos(math.pi * min(i, total) / total)))
        if args.schedule == "cosine" else (lambda i: 1.0))
    rows, start_epoch, wall_before = [], 0, 0.0
    ckpt_path = out / "checkpoint.pt"
    if args.resume:
        if not ckpt_path.is_file():
            raise FileNotFoundError(f"{ckpt_path}: no checkpoint to resume from")
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        rng.bit_generator.state = json.loads(ckpt["numpy_rng"])
        torch.set_rng_state(ckpt["torch_rng"])
        rows, start_epoch, wall_before = ckpt["log"], ckpt["epoch"], ckpt["wall_s"]
    baseline = {k: bicubic_psnr(v, args.scale) for k, v in val_sets.items()}
    print(f"train: {args.stage} x{args.scale}, {len(sampler.images)} training images, "
          f"bicubic val PSNR natural {baseline['natural']:.3f} astro {baseline['astro']:.3f}", file=sys.stderr)
    b = args.loss_border
    t0 = time.perf_counter()
    for epoch in range(start_epoch + 1, args.epochs + 1):
        losses = []
        for it in range(1, args.iters + 1):
            lr_np, hr_np = sampler.batch(args.batch)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                pred = model(torch.from_numpy(lr_np)[:, None].contiguous(memory_format=layout))
            loss = F.mse_loss(pred.float()[:, :, b:-b, b:-b], torch.from_numpy(hr_np)[:, None, b:-b, b:-b])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            if it % 10 == 0 or it == args.iters:
                progress(epoch, args.epochs, it, args.iters, float(np.mean(losses[-50:])))
        rows.append({"epoch": epoch, "iterations": epoch * args.iters, "train_loss": float(np.mean(losses)),
                     "val_natural_psnr": validate(model, val_sets["natural"], args.scale),
                     "val_astro_psnr": validate(model, val_sets["astro"], args.scale),
                     "wall_s": round(wall_before + time.perf_counter() - t0, 1)})
        r = rows[-1]
        print(f"epoch {epoch}: loss {r['train_loss']:.6f}  val PSNR natural {r['val_natural_psnr']:.3f} "
              f"astro {r['val_astro_psnr']:.3f}  ({r['wall_s']:.0f} s)", file=sys.stderr)
        atomic_torch_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                           "scheduler": scheduler.state_dict(),
                           "numpy_rng": json.dumps(rng.bit_generator.state, default=int), "torch_rng": torch.get_rng_state(),
                           "log": rows, "epoch": epoch, "wall_s": r["wall_s"]}, ckpt_path)
        write_log(rows, out / "log.csv")
        plot_curves(rows, baseline, out / "curves.png")
        if args.stop_after is not None and epoch >= args.stop_after and epoch < args.epochs:
            print(f"train: stopped after epoch {epoch}; continue with --resume", file=sys.stderr)
            return {}
    final = rows[-1] if rows else {}
    meta = {
        "model": args.stage,
        "scale": args.scale,
        "data": {"train": sorted({im.name for im in train_images}),
                 "val_natural": [im.name for im in val_sets["natural"]],
                 "val_astro": [im.name for im in val_sets["astro"]],
                 "astro_dir": args.astro_dir if args.stage == "astro" or val_sets["astro"] else None,
                 "split": f"reference.data.split_of, val fraction {data.VAL_FRACTION}"},
        "init": args.init or "near-identity (bicubic pass-through)",
        "init_meta": init_meta,
        "epochs": args.epochs, "iterations": args.epochs * args.iters, "batch": args.batch,
        "hr_patch": args.lr_patch * args.scale, "loss_border": args.loss_border, "precision": args.precision, "optimizer": args.optimizer, "lr": args.lr, "schedule": args.schedule,
        "last_lr_factor": args.last_lr_factor, "weight_decay": args.weight_decay, "seed": args.seed,
        "wall_time_s": round(wall_before + time.perf_counter() - t_start, 1),
        "train_loop_s": final.get("wall_s"), "threads": args.threads, "machine": platform.processor() or platform.machine(),
        "val_psnr_y": {k: _number_or_none(final.get(f"val_{k}_psnr")) for k in baseline},
        "val_psnr_y_bicubic": {k: _number_or_none(v) for k, v in baseline.items()},
        "command": "python -m reference.train " + shlex.join(sys.argv[1:]),
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch": str(torch.__version__),
    }
    model = model.to(memory_format=torch.contiguous_format)  # plain (O, I, kH, kW) arrays on disk
    atomic_torch_save({"model": model.state_dict(), "config": {**vars(args)}, "meta": meta}, out / "model.pt")
    if args.export:
        from srcnn_np.weights import save_weights

        arrays = {k: v.detach().numpy() for k, v in model.state_dict().items()}
        save_weights(args.export, arrays, scale=args.scale, meta=meta, overwrite=True)  # --export names it
        print(f"train: wrote {args.export}", file=sys.stderr)
    return meta


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        meta = train(args)
    except (OSError, ValueError, ImportError) as e:
        print(f"train: error: {e}", file=sys.stderr)
        return 2
    if not meta:  # --stop-after
        return 0
    print(json.dumps({k: meta[k] for k in ("model", "scale", "epochs", "wall_time_s", "val_psnr_y",
                                           "val_psnr_y_bicubic")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
