"""Geometry of the 9-5-5 SRCNN: its receptive field, the tile windows and the edge margin that it implies.

model.py (CPU tiling), gpu/runner.py (GPU tiling) and chunked.py (block overlaps) read it; it
imports only the layer table (layers.py), so none of them has to import another for a constant.
"""
from .layers import LAYERS

# Receptive-field radius of the network in output pixels (4 + 2 + 2): an output pixel depends
# only on the upsampled image within HALO pixels of it.
HALO = sum(layer.radius for layer in LAYERS)

# How `upscale` meets the image's border. The network zero-pads each conv (as torch does), which
# the 9-5-5 net turns into artifacts up to HALO output pixels deep wherever the image is not dark
# at its edge (on star fields with sky: 6 to 100 sky sigmas at x2 to x4, `evaluate --stars`).
# "replicate" (default) extends the input by edge_margin(scale) pixels by repeating its edge
# pixels, runs the network and crops: bicubic itself clamps at the border the same way, so only
# the zero padding is kept out. "zero": the network as torch runs it on the image (the seed's).
EDGES = ("replicate", "zero")


def edge_margin(scale: int) -> int:
    """Input pixels by which `upscale` extends an image by edge replication (edges="replicate"):
    ceil(HALO / scale), so that the network's zero padding, HALO output pixels deep, falls wholly
    outside the image and every output pixel sees image-like content."""
    return -(-HALO // scale)


# Default output tile side. A tile's working set is about (tile + 2 halo)^2 x 65 float32
# (the upsampled and 64-channel maps; the CPU's halo is 11): 74 MB at 512; the halo adds ~9% work
# on interior tiles.
DEFAULT_TILE = 512


def tile_windows(length: int, tile: int, halo: int = HALO):
    """Split [0, length) into output spans of `tile` and their windows grown by `halo` inside [0, length).

    Yields (out_start, out_stop, win_start, win_stop) for each tile along one axis. halo: HALO
    for the receptive field; the CPU kernels' windows add their Winograd tiles' rounding reach
    (srcnn_np.cpu.kernels.WINDOW_HALO), so that tiles give the untiled result bit for bit.
    """
    for start in range(0, length, tile):
        stop = min(start + tile, length)
        yield start, stop, max(start - halo, 0), min(stop + halo, length)
