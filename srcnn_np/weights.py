"""The weight contract: SRCNN weights in a versioned .npz file, read without unpickling.

A weights file is an uncompressed or deflated .npz holding exactly these arrays:

    magic           ()            int32   WEIGHTS_MAGIC, says "this is an srcnn_np weights file"
    format_version  ()            int32   FORMAT_VERSION
    scale           ()            int32   the upsampling factor the net was trained for (2, 3, 4)
    meta            (n,)          uint8   UTF-8 JSON: what it was trained on, when, PSNR, ...
    conv1.weight    (64, 1, 9, 9) float32 torch OIHW layout
    conv1.bias      (64,)         float32
    conv2.weight    (32, 64, 5, 5) float32
    conv2.bias      (32,)         float32
    conv3.weight    (1, 32, 5, 5) float32
    conv3.bias      (1,)          float32

The conv arrays' shapes are those of the layer table (srcnn_np.layers), from which CONV_SHAPES is derived.
Every array's header is read and checked (name, dtype, shape, size) before its data is read, so a
tampered file can neither unpickle objects nor make us allocate what it claims.
Write files with `save_weights` (numpy only) or `tools/convert_weights.py` (from torch).
"""
import io
import json
import os
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from .errors import exists
from .io.atomic import OutputExistsError, atomic_output
from .layers import LAYERS

WEIGHTS_MAGIC = 0x53524E50  # "SRNP"
# FORMAT_VERSION history:
#   1: first release. OIHW float32 conv weights, int32 scale, uint8 JSON meta.
FORMAT_VERSION = 1

# name -> shape of every float32 conv array a version-1 file holds, from the layer table:
# "convN.weight" (Cout, Cin, K, K) in torch's OIHW layout, "convN.bias" (Cout,)
CONV_SHAPES = {name: shape for layer in LAYERS for name, shape in (
    (f"{layer.name}.weight", (layer.channels_out, layer.channels_in, layer.kernel, layer.kernel)),
    (f"{layer.name}.bias", (layer.channels_out,)))}
SCALARS = ("magic", "format_version", "scale")
MAX_META_BYTES = 64 * 1024
MAX_FILE_BYTES = 1 << 20  # a version-1 file is ~230 KiB plus meta
SUPPORTED_SCALES = (2, 3, 4)
MODELS = ("astro", "general")
REGENERATE_HINT = "regenerate it with: python tools/convert_weights.py MODEL.pt OUT.npz"


class WeightsError(ValueError):
    """A weights file that is missing, malformed, or from another format version."""


@dataclass(frozen=True)
class Weights:
    """Validated SRCNN weights, torch OIHW layout, float32."""

    conv1_weight: np.ndarray  # (64, 1, 9, 9)
    conv1_bias: np.ndarray  # (64,)
    conv2_weight: np.ndarray  # (32, 64, 5, 5)
    conv2_bias: np.ndarray  # (32,)
    conv3_weight: np.ndarray  # (1, 32, 5, 5)
    conv3_bias: np.ndarray  # (1,)
    scale: int  # upsampling factor the net was trained for
    meta: dict = field(default_factory=dict)  # provenance: data, epochs, wall time, PSNR
    source: str = "<memory>"  # where it was loaded from, for messages

    @classmethod
    def from_arrays(cls, arrays: dict, scale: int, meta: dict | None = None, source="<memory>"):
        """Build from a {'conv1.weight': array, ...} dict, checking shapes and finiteness."""
        checked = {}
        for name, shape in CONV_SHAPES.items():
            if name not in arrays:
                raise WeightsError(f"{source}: missing array {name!r}")
            a = np.asarray(arrays[name])
            if a.shape != shape:
                raise WeightsError(f"{source}: {name} has shape {a.shape}, expected {shape}")
            a = np.ascontiguousarray(a, dtype=np.float32)
            if not np.isfinite(a).all():
                raise WeightsError(f"{source}: {name} holds NaN or inf values")
            checked[name.replace(".", "_")] = a
        if scale not in SUPPORTED_SCALES:
            raise WeightsError(f"{source}: scale {scale} is not one of {SUPPORTED_SCALES}")
        return cls(**checked, scale=int(scale), meta=dict(meta or {}), source=source)

    def arrays(self) -> dict:
        """{'conv1.weight': (64, 1, 9, 9) float32, ...}: the contract's names and layout."""
        return {name: getattr(self, name.replace(".", "_")) for name in CONV_SHAPES}


def shipped_weights_path(scale: int = 2, model: str = "astro"):
    """Path of the weights shipped inside the package for this scale and model."""
    if model not in MODELS:
        raise WeightsError(f"unknown model {model!r}: choose one of {', '.join(MODELS)}")
    path = resources.files("srcnn_np") / "weights" / f"srcnn_x{scale}_{model}.npz"
    if not path.is_file():
        raise WeightsError(f"no shipped {model} weights for scale {scale} (looked for {path})")
    return path


def save_weights(path, arrays: dict, scale: int, meta: dict | None = None, *, overwrite: bool = False) -> None:
    """Write a version-FORMAT_VERSION weights file atomically (temp file + rename).

    An existing file is replaced only with overwrite=True (else WeightsError).
    """
    w = Weights.from_arrays(arrays, scale, meta, source=str(path))
    meta_bytes = json.dumps(w.meta, sort_keys=True).encode("utf-8")
    if len(meta_bytes) > MAX_META_BYTES:
        raise WeightsError(f"{path}: meta is {len(meta_bytes)} bytes, limit {MAX_META_BYTES}")
    contents = {
        "magic": np.int32(WEIGHTS_MAGIC),
        "format_version": np.int32(FORMAT_VERSION),
        "scale": np.int32(w.scale),
        "meta": np.frombuffer(meta_bytes, dtype=np.uint8),
        **w.arrays(),
    }
    try:
        with atomic_output(path, overwrite=overwrite, suffix=".npz") as tmp:  # .npz: np.savez appends it otherwise
            np.savez(tmp, **contents)
    except OutputExistsError:
        raise WeightsError(exists(path)) from None


def _expected_header(name: str):
    """(shape or None for 'any length', dtype) the contract allows for array `name`."""
    if name in SCALARS:
        return (), np.dtype("<i4")
    if name == "meta":
        return None, np.dtype("u1")
    return CONV_SHAPES[name], np.dtype("<f4")


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, source: str) -> np.ndarray:
    """Read one .npy member after checking its header against the contract."""
    name = info.filename[: -len(".npy")]
    want_shape, want_dtype = _expected_header(name)
    max_data = MAX_META_BYTES if want_shape is None else int(np.prod(want_shape)) * want_dtype.itemsize
    if info.file_size > max_data + 4096:  # a .npy header is < 4 KiB; this also stops zip bombs
        raise WeightsError(f"{source}: {name} claims {info.file_size} bytes, expected <= {max_data}")
    with zf.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        except ValueError as e:
            raise WeightsError(f"{source}: {name} is not a valid .npy array ({e})") from None
        if dtype.hasobject:
            raise WeightsError(f"{source}: {name} holds Python objects; refusing to unpickle")
        if dtype != want_dtype:
            raise WeightsError(f"{source}: {name} has dtype {dtype}, expected {want_dtype}")
        if want_shape is None:
            if len(shape) != 1 or shape[0] > MAX_META_BYTES:
                raise WeightsError(f"{source}: {name} must be a 1-D byte array of <= {MAX_META_BYTES}")
        elif shape != want_shape:
            raise WeightsError(f"{source}: {name} has shape {shape}, expected {want_shape}")
        nbytes = int(np.prod(shape)) * dtype.itemsize
        data = f.read(nbytes)
    if len(data) != nbytes:
        raise WeightsError(f"{source}: {name} is truncated ({len(data)} of {nbytes} bytes)")
    a = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return a


def _read_capped(path, source: str) -> bytes:
    """The bytes of a regular file of at most MAX_FILE_BYTES, checked before reading anything
    (a pipe or /dev/zero would block or never end; a huge file would be read whole)."""
    if hasattr(path, "read_bytes") and not isinstance(path, os.PathLike):  # a packaged resource
        return path.read_bytes()
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise WeightsError(f"{source}: not a regular file")
    if info.st_size > MAX_FILE_BYTES:
        raise WeightsError(f"{source}: {info.st_size} bytes, too big for a weights file "
                           f"(<= {MAX_FILE_BYTES})")
    with open(path, "rb") as f:
        return f.read(MAX_FILE_BYTES + 1)


def load_weights(path=None, scale: int = 2, model: str = "astro") -> Weights:
    """Load and validate a weights file; path=None means the weights shipped for `scale`, `model`.

    Raises WeightsError with a one-line reason for anything that breaks the contract.
    """
    if path is None:
        path = shipped_weights_path(scale, model)
    source = str(path)
    try:
        raw = _read_capped(path, source)
    except OSError as e:
        raise WeightsError(f"{source}: cannot read weights file ({e.strerror or e})") from None
    try:
        zf = zipfile.ZipFile(io.BytesIO(raw))
    except zipfile.BadZipFile:
        raise WeightsError(f"{source}: not a weights file (not an .npz archive)") from None
    with zf:
        infos = {i.filename[: -len(".npy")]: i for i in zf.infolist() if i.filename.endswith(".npy")}
        names = set(infos)
        expected = set(SCALARS) | {"meta"} | set(CONV_SHAPES)
        if "magic" not in names or "format_version" not in names:
            raise WeightsError(f"{source}: no magic/format_version: not an srcnn_np weights file; "
                               + REGENERATE_HINT)
        try:
            header = {k: _read_member(zf, infos[k], source) for k in ("magic", "format_version")}
            if int(header["magic"]) != WEIGHTS_MAGIC:
                raise WeightsError(f"{source}: bad magic number: not an srcnn_np weights file")
            version = int(header["format_version"])
            if version != FORMAT_VERSION:
                raise WeightsError(f"{source}: format_version {version}, this srcnn_np reads "
                                   f"{FORMAT_VERSION}; " + REGENERATE_HINT)
            if names != expected or len(zf.infolist()) != len(expected):
                missing, extra = sorted(expected - names), sorted(names - expected)
                raise WeightsError(f"{source}: missing arrays {missing}, unexpected {extra}")
            arrays = {k: _read_member(zf, infos[k], source) for k in expected - set(header)}
        except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as e:
            raise WeightsError(f"{source}: corrupt archive ({e})") from None
        except (RuntimeError, NotImplementedError) as e:  # zipfile: encrypted, unknown compression
            raise WeightsError(f"{source}: unsupported archive ({e})") from None
    try:
        meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise WeightsError(f"{source}: meta is not UTF-8 JSON") from None
    if not isinstance(meta, dict):
        raise WeightsError(f"{source}: meta must be a JSON object")
    file_scale = int(arrays["scale"])
    if file_scale != scale:
        raise WeightsError(f"{source}: weights are for scale {file_scale}, asked for scale {scale}")
    return Weights.from_arrays(arrays, file_scale, meta, source=source)

