"""Geometry of the 9-5-5 SRCNN: its receptive field and the tile windows that it implies.

model.py (CPU tiling), gpu/runner.py (GPU tiling) and dask.py (block overlaps) read it; it
imports nothing of the package, so none of them has to import another for a constant.
"""
KERNEL_SIZES = (9, 5, 5)  # conv1, conv2, conv3

# Receptive-field radius of the network in output pixels (4 + 2 + 2): an output pixel depends
# only on the upsampled image within HALO pixels of it.
HALO = sum(k // 2 for k in KERNEL_SIZES)

# Default output tile side. A tile's working set is about (tile + 2 HALO)^2 x 65 float32
# (the upsampled and 64-channel maps): 72 MB at 512; the halo adds ~6% work on interior tiles.
DEFAULT_TILE = 512


def tile_windows(length: int, tile: int):
    """Split [0, length) into output spans of `tile` and their windows grown by HALO inside [0, length).

    Yields (out_start, out_stop, win_start, win_stop) for each tile along one axis.
    """
    for start in range(0, length, tile):
        stop = min(start + tile, length)
        yield start, stop, max(start - HALO, 0), min(stop + HALO, length)
