"""(photo, output) pairs for scoring: centre crops of photos, and a photo folder paired with a
folder of outputs (``test.py --outputs``).

Pairing rule for two folders: a file's key is its path relative to its folder without the
extension (``00049.jpg`` pairs with ``00049.png``, ``a/x.jpg`` with ``a/x.webp``); keys compare
case-sensitively, extensions in any case (``.jpg .jpeg .png .webp .bmp``, as the photo
folders of training). Subfolders are walked, so the layout ``cartoonize.py`` writes for a folder
pairs with that folder. Hidden files and folders are skipped.

What is refused before any work, with one line (:class:`~utils.errors.ToonFaceError`): a
missing or empty folder, the same folder twice, two files of one folder with one key (the
pairing would be a guess), two folders with no key in common. What is skipped and reported per
pair (:func:`read_pair` raises; the caller records the reason and counts it): an unreadable photo
or output, an output whose aspect ratio is not the photo's.

Images are decoded by ``media.decode.decode_image``, the one decoder of training and
inference (EXIF orientation, 16-bit, ICC profiles to sRGB, alpha), so a file gives the same
pixels here as everywhere else.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evaluation.rgb import resize_to
from utils.errors import ToonFaceError
from media.errors import UnreadableImage


@dataclass
class Pair:
    """One (photo, output) pair ready to score.

    name: the pair's label (the pairing key, or ``NNNN_<stem>`` for a checkpoint's outputs).
    photo_path / output_path: the files they came from (reported in per_image.csv);
    photo, output: uint8 (H, W, 3) RGB of one size, or None when ``error`` says why the pair
    cannot be scored; shown_photo / shown_output: the image files index.html shows (default: the
    paths above).
    """

    name: str
    photo_path: Path | None
    output_path: Path | None
    photo: np.ndarray | None = None
    output: np.ndarray | None = None
    error: str | None = None
    shown_photo: Path | None = field(default=None)
    shown_output: Path | None = field(default=None)

    def __post_init__(self):
        self.shown_photo = self.shown_photo or self.photo_path
        self.shown_output = self.shown_output or self.output_path


@dataclass(frozen=True)
class FilePair:
    """A photo file and the output file with the same key."""

    name: str
    photo: Path
    output: Path


@dataclass
class Pairing:
    """The result of :func:`pair_folders`: pairs in key order, and the files left unpaired."""

    photo_dir: Path
    outputs_dir: Path
    pairs: list[FilePair]
    photos_only: list[Path]
    outputs_only: list[Path]


# ------------------------------------------------------------------------------- crops
def load_crops(paths: list[Path], image_size: int, load_size: int | None = None) -> list[np.ndarray]:
    """Centre crops (the training evaluation view), uint8 (S, S, 3) RGB. Raises ToonFaceError
    naming an unreadable file."""
    # lazy: torch, cv2 only when this runs
    from datasets.folders import resize_crop_flip
    # lazy: PIL only when this runs
    from media.decode import read_image_rgb

    out = []
    for p in paths:
        try:
            raw = read_image_rgb(p)
        except UnreadableImage as exc:
            raise ToonFaceError(f"unreadable image {p}: {exc}") from None
        out.append(resize_crop_flip(raw, image_size, max(load_size or image_size, image_size), None)[0])
    return out


# ----------------------------------------------------------------------------- folders
def pair_key(path: Path, root: Path) -> str:
    """The pairing key of ``path`` under ``root``: the relative POSIX path without extension."""
    return path.relative_to(root).with_suffix("").as_posix()


def index_folder(folder: str | os.PathLike, what: str, exclude: Path | None = None
                 ) -> dict[str, Path]:
    """{key: file} of the images under ``folder`` (files under ``exclude``, when that is a
    folder inside ``folder``, left out).

    Raises ToonFaceError (one line) for a missing folder, a folder without images and two
    files with one key (naming them).
    """
    # lazy: PIL only when this runs
    from media.folders import IMAGE_EXTENSIONS, list_images

    root = Path(folder)
    if not root.exists():
        raise ToonFaceError(f"{what} folder not found: {root}")
    if not root.is_dir():
        raise ToonFaceError(f"{what} folder {root} is not a folder")
    ex = exclude.resolve() if exclude is not None else None
    if ex is not None and root.resolve() not in ex.parents:
        ex = None  # only a folder inside this one is left out
    files = [p for p in list_images(root) if ex is None or ex not in p.resolve().parents]
    if not files:
        raise ToonFaceError(f"{what} folder {root} holds no images ({' '.join(IMAGE_EXTENSIONS)})")
    by_key: dict[str, list[Path]] = {}
    for p in files:
        by_key.setdefault(pair_key(p, root), []).append(p)
    dups = {k: v for k, v in by_key.items() if len(v) > 1}
    if dups:
        shown = "; ".join(", ".join(p.relative_to(root).as_posix() for p in v)
                          for v in list(dups.values())[:3])
        more = f" and {len(dups) - 3} more" if len(dups) > 3 else ""
        raise ToonFaceError(f"{what} folder {root}: {len(dups)} name(s) with several files, so "
                            f"pairing by name is ambiguous: {shown}{more}")
    return {k: v[0] for k, v in sorted(by_key.items())}


def pair_folders(photo_dir: str | os.PathLike, outputs_dir: str | os.PathLike) -> Pairing:
    """Pair the photos of ``photo_dir`` with the outputs of ``outputs_dir`` by key (module
    docstring). Nothing is decoded here. Raises ToonFaceError before any work for the cases the
    module docstring lists."""
    photo_dir, outputs_dir = Path(photo_dir), Path(outputs_dir)
    if photo_dir.exists() and outputs_dir.exists() and photo_dir.resolve() == outputs_dir.resolve():
        raise ToonFaceError(f"--outputs and --photo_dir are the same folder {photo_dir}: "
                            "each photo would be scored against itself")
    # One folder inside the other (photos/ holding a toon/ subfolder): the inner one is not
    # part of the outer one's set.
    photos = index_folder(photo_dir, "photo", exclude=outputs_dir if outputs_dir.is_dir() else None)
    outputs = index_folder(outputs_dir, "outputs", exclude=photo_dir if photo_dir.is_dir() else None)
    common = sorted(set(photos) & set(outputs))
    if not common:
        raise ToonFaceError(
            f"no output in {outputs_dir} has the name of a photo in {photo_dir} (files pair by "
            f"name without extension; e.g. output '{next(iter(outputs))}', photo "
            f"'{next(iter(photos))}')")
    return Pairing(photo_dir, outputs_dir,
                   [FilePair(k, photos[k], outputs[k]) for k in common],
                   [photos[k] for k in sorted(set(photos) - set(outputs))],
                   [outputs[k] for k in sorted(set(outputs) - set(photos))])


def read_pair(pair: FilePair) -> Pair:
    """Decode a :class:`FilePair`; the output is resized to its photo's size when it differs
    but has the same aspect ratio (within a pixel of rounding; ``evaluation.rgb.resize_to``:
    INTER_AREA when shrinking, INTER_CUBIC when enlarging). Never raises for bad files: a pair
    that cannot be scored comes back with ``error`` (one line) and no images."""
    # lazy: PIL only when this runs
    from media.decode import read_image_rgb

    out = Pair(pair.name, pair.photo, pair.output)
    try:
        photo = read_image_rgb(pair.photo)
    except UnreadableImage as exc:
        out.error = f"unreadable photo {pair.photo}: {exc}"
        return out
    try:
        output = read_image_rgb(pair.output)
    except UnreadableImage as exc:
        out.error = f"unreadable output {pair.output}: {exc}"
        return out
    try:
        output = resize_to(output, photo.shape[:2], what=f"output {pair.output}")
    except ToonFaceError as exc:
        out.error = str(exc)
        return out
    out.photo, out.output = photo, output
    return out
