"""Multi-page TIFF: refused with one line naming the page count, never read as its first page alone.

Files come from the two writers users meet: Pillow (save_all) and tifffile (a stack, or pages
written one by one); a reduced-resolution preview beside the one image is no page of its own.
"""
import numpy as np
import pytest
from PIL import Image

from srcnn_np.cli import EXIT_FAILED, main
from srcnn_np.io.imageio import ImageIOError, read_image

from .conftest import sky


def pillow_pages(path, count, mode="L"):
    frames = [Image.fromarray(sky(12, 10, None if mode == "L" else 3, seed=i)) for i in range(count)]
    frames[0].save(path, save_all=True, append_images=frames[1:])


def test_pillow_multi_page_tiff_is_refused_naming_the_page_count(tmp_path):
    for mode in ("L", "RGB"):
        path = tmp_path / f"stack_{mode}.tif"
        pillow_pages(path, 3, mode)
        with pytest.raises(ImageIOError) as refused:
            read_image(path)
        message = str(refused.value)
        assert "\n" not in message and str(path) in message and "3 images" in message, message


def test_tifffile_stacks_are_refused_naming_the_page_count(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    from srcnn_np.io.tiff_io import TiffError, read_tiff

    gray16 = np.stack([sky(9, 11, dtype=np.uint16, seed=i) for i in range(5)])  # (5, 9, 11)
    tifffile.imwrite(tmp_path / "gray16.tif", gray16)
    with tifffile.TiffWriter(tmp_path / "rgb16.tif") as tif:  # 16-bit colour goes through tifffile here
        for i in range(2):
            tif.write(sky(9, 11, 3, dtype=np.uint16, seed=i), photometric="rgb")
    for name, pages in (("gray16.tif", 5), ("rgb16.tif", 2)):
        with pytest.raises(ImageIOError, match=f"{name}: multi-page TIFF \\({pages} images\\)"):
            read_image(tmp_path / name)
        with pytest.raises(TiffError, match=f"\\({pages} images\\)"):
            read_tiff(tmp_path / name)


def test_a_reduced_resolution_preview_is_not_a_page(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    from srcnn_np.io.tiff_io import read_tiff

    for samples in (None, 3):  # read by Pillow (16-bit gray) and by tifffile (16-bit colour)
        image = sky(16, 12, samples, dtype=np.uint16, seed=4)
        path = tmp_path / f"preview_{samples}.tif"
        with tifffile.TiffWriter(path) as tif:
            tif.write(image)
            tif.write(image[::4, ::4], subfiletype=1)  # NewSubfileType: reduced-resolution image
        got = read_image(path).pixels
        assert np.array_equal(got, image), f"{samples} samples: {np.argwhere(got != image)[:5]}"
        assert np.array_equal(read_tiff(path), image)


def test_a_batch_names_the_multi_page_file_once_and_does_the_rest(tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    pillow_pages(src / "stack.tif", 4)
    Image.fromarray(sky(8, 8)).save(src / "single.tif")
    assert main(["upscale", str(src), "-o", str(out), "-q"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert err.count("stack.tif") == 1 and "4 images" in err, err
    assert sorted(p.name for p in out.iterdir()) == ["single_x2.tif"]
