"""Convert a PyTorch SRCNN checkpoint to the srcnn_np weights format (.npz).

    python tools/convert_weights.py IN.pt OUT.npz [--scale 2] [--meta '{"data": "..."}']

IN.pt is a state_dict of reference.model.SRCNN (conv1/conv2/conv3 .weight/.bias), or a checkpoint
dict holding one under "model" (what reference/train.py saves; its "config" and "meta" entries are
carried into the .npz meta). It is loaded with torch.load(weights_only=True): nothing is unpickled
beyond tensors and plain containers.
"""
import argparse
import json
import sys
from datetime import datetime, timezone

from srcnn_np.weights import CONV_SHAPES, WeightsError, save_weights


def state_dict_arrays(checkpoint) -> dict:
    """A state_dict, or a checkpoint with one under "model" -> {'conv1.weight': ndarray, ...}."""
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise WeightsError("checkpoint is neither a state_dict nor a dict with a 'model' state_dict")
    state = {k.removeprefix("module."): v for k, v in state.items()}  # DataParallel prefix
    missing = [k for k in CONV_SHAPES if k not in state]
    if missing:
        raise WeightsError(f"checkpoint lacks {missing}; has {sorted(state)[:8]}")
    return {k: state[k].detach().cpu().float().numpy() for k in CONV_SHAPES}


def convert(in_path, out_path, scale=None, meta=None, overwrite=False) -> dict:
    """Read a torch checkpoint, write the .npz; returns the meta that was written."""
    import torch

    checkpoint = torch.load(in_path, map_location="cpu", weights_only=True)
    arrays = state_dict_arrays(checkpoint)
    info = dict(checkpoint.get("meta", {})) if isinstance(checkpoint, dict) else {}
    if isinstance(checkpoint, dict) and "config" in checkpoint:
        info["config"] = checkpoint["config"]
    info.update(meta or {})
    info.setdefault("converted_from", str(in_path))
    info.setdefault("converted_at", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    if scale is None:
        scale = int(info.get("config", {}).get("scale", 2))
    save_weights(out_path, arrays, scale=scale, meta=info, overwrite=overwrite)
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="torch checkpoint (.pt / .pth)")
    p.add_argument("output", help="weights file to write (.npz)")
    p.add_argument("--scale", type=int, default=None, help="upsampling factor (default: from checkpoint config, else 2)")
    p.add_argument("--meta", default="{}", help="JSON object merged into the file's meta")
    p.add_argument("--overwrite", action="store_true", help="replace OUT.npz if it exists")
    args = p.parse_args(argv)
    try:
        meta = json.loads(args.meta)
        info = convert(args.input, args.output, args.scale, meta, args.overwrite)
    except (WeightsError, OSError, RuntimeError, json.JSONDecodeError) as e:
        print(f"convert_weights: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.output} ({json.dumps(info)[:200]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
