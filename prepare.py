"""Detect facial landmarks of a photo folder once and cache them (run before training).

    python prepare.py data/ffhq128                     # -> data/ffhq128/.toonface_landmarks.npz
    python prepare.py /readonly/ffhq --cache-file /scratch/ffhq_landmarks.npz

Detection (mediapipe FaceMesh) runs here, in its own pass, so that DataLoader workers only read
the cache: a worker forked after the parent built a mediapipe graph crashes. Re-running is
cheap: only new or changed files are detected again. See datasets/landmarks.py for the cache.
"""
from __future__ import annotations

from pathlib import Path

import click

from datasets.images import IMAGE_EXTENSIONS, list_images
from datasets.landmarks import LandmarkCache
from utils.errors import ToonFaceError, call_or_exit

MAX_LISTED_UNREADABLE = 50   # longer lists are cut, with the count of the rest


def prepare(photo_dir: str | Path, cache_file: str | Path | None = None, recursive: bool = True,
            progress: bool = True, detector=None) -> tuple[dict, LandmarkCache]:
    """Fill the landmark cache of ``photo_dir``; returns (summary, cache). See LandmarkCache.fill."""
    root = Path(photo_dir)
    if not root.is_dir():
        raise ToonFaceError(f"photo folder not found: {root}")
    paths = list_images(root, recursive=recursive)
    if not paths:
        raise ToonFaceError(f"no images ({' '.join(e[1:] for e in IMAGE_EXTENSIONS)}) in {root}"
                            + ("" if recursive else " (without subfolders: try --recursive)"))
    cache = LandmarkCache(root, cache_file).load()
    summary = cache.fill(detector=detector, paths=paths, progress=progress)
    return summary, cache


def format_summary(summary: dict, cache: LandmarkCache) -> list[str]:
    """The lines printed after a run: one summary line, then the unreadable files (if any)."""
    unreadable = summary["unreadable"]
    lines = [f"landmarks: {summary['found']} found, {summary['not_found']} not found, "
             f"{len(unreadable)} unreadable of {summary['total']} images "
             f"({summary['detected']} detected, {summary['cached']} from cache) -> {cache.cache_file}"]
    if unreadable:
        lines.append(f"unreadable files ({len(unreadable)}):")
        lines += [f"  {p}" for p in unreadable[:MAX_LISTED_UNREADABLE]]
        if len(unreadable) > MAX_LISTED_UNREADABLE:
            lines.append(f"  ... and {len(unreadable) - MAX_LISTED_UNREADABLE} more")
    return lines


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("photo_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--cache-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Cache file [default: PHOTO_DIR/.toonface_landmarks.npz, or under "
                   "~/.cache/toonface/landmarks/ if the folder is read-only]")
@click.option("--recursive/--no-recursive", default=True, show_default=True,
              help="Include images in subfolders.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def main(photo_dir: Path, cache_file: Path | None, recursive: bool, quiet: bool) -> None:
    """Detect and cache the facial landmarks of every image in PHOTO_DIR."""
    summary, cache = call_or_exit(prepare, photo_dir, cache_file, recursive=recursive,
                                  progress=not quiet)
    if cache.load_error:
        click.echo(f"note: the old cache file was unreadable ({cache.load_error}); rebuilt", err=True)
    for line in format_summary(summary, cache):
        click.echo(line)


if __name__ == "__main__":
    main()
