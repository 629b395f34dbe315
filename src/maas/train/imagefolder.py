"""Read an image folder (one sub-folder per class) into flat, resized pixel rows in [0, 1].

Classes are the sub-folder names in sorted order; images are read in sorted file order, so the
rows and the dataset fingerprint do not depend on the file system. Hidden files and files without
an image extension are ignored.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Final

import numpy as np

from maas.errors import DataError
from maas.train.datafiles import TableData, one_line

log = logging.getLogger(__name__)

IMAGE_SUFFIXES: Final = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
PIXEL_MAX: Final = 255.0  # 8-bit images; rows are scaled into [0, 1]


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _class_folders(root: Path, where: str) -> list[Path]:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and _visible(p))
    if not folders:
        raise DataError(
            f"{where} has no class sub-folders; put each class's images in a folder named after it "
            "(cat/1.png, dog/2.png)"
        )
    return folders


def _image_files(folder: Path, where: str) -> list[Path]:
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and _visible(p) and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise DataError(
            f'{where} class folder "{folder.name}" has no images ({", ".join(IMAGE_SUFFIXES)})'
        )
    return files


def _read_image(
    path: Path, root: Path, where: str, size: tuple[int, int], grayscale: bool
) -> np.ndarray:
    """One image as float32 [C, H, W] in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    height, width = size
    try:
        with Image.open(path) as opened:
            opened.load()
            image: Image.Image = opened
            if image.mode in ("P", "PA"):
                image = image.convert("RGBA")  # palette transparency converts cleanly via RGBA
            image = image.convert("L" if grayscale else "RGB")
            if image.size != (width, height):
                image = image.resize((width, height), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.float32) / PIXEL_MAX
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        relative = path.relative_to(root).as_posix()
        raise DataError(f'{where}: image "{relative}" cannot be read ({one_line(err)})') from err
    if grayscale:
        return pixels[np.newaxis, :, :]
    return np.transpose(pixels, (2, 0, 1))


def read_image_folder(
    root: Path, name: str, image_size: tuple[int, int] | None, grayscale: bool
) -> TableData:
    """Read `root`/<class>/<image> files, resized to `image_size` (H, W), L or RGB.

    Args:
        root: the folder holding one sub-folder per class.
        name: how messages call the folder.
        image_size: (height, width) every image is resized to; required.
        grayscale: one channel (L) when true, three (RGB) otherwise.

    Returns:
        Rows flattened from [C, H, W] in C order, with `image_shape` set.
    """
    where = f'image folder "{name}"'
    if image_size is None:
        raise DataError(f"{where}: set data.image_size to [height, width] to load images")
    folders = _class_folders(root, where)
    channels = 1 if grayscale else 3
    rows: list[np.ndarray] = []
    targets: list[int] = []
    for index, folder in enumerate(folders):
        for path in _image_files(folder, where):
            rows.append(_read_image(path, root, where, image_size, grayscale).reshape(-1))
            targets.append(index)
    height, width = image_size
    names = tuple(
        f"pixel_{c}_{i}_{j}" for c in range(channels) for i in range(height) for j in range(width)
    )
    log.info("data.images_read", extra={"folder": name, "images": len(rows)})
    return TableData(
        features=np.stack(rows).astype(np.float32, copy=False),
        targets=np.array(targets, dtype=np.int64),
        labels=tuple(f.name for f in folders),
        feature_names=names,
        image_shape=(channels, height, width),
    )
