"""Detect facial landmarks of a photo folder once and cache them (run before training).

    .venv/bin/python prepare.py data/ffhq128                    # -> data/ffhq128/.toonface_landmarks.mediapipe.npz
    .venv/bin/python prepare.py /readonly/ffhq --cache-file /scratch/ffhq_landmarks.npz
    .venv/bin/python prepare.py data/ffhq128 --landmark-detector dlib
    .venv/bin/python prepare.py data/ffhq128 --landmark-detector mediapipe-tasks --landmark-model face_landmarker.task

Detection runs here, in its own pass, so that DataLoader workers only read the cache: a worker
forked after the parent built a mediapipe graph crashes. Everything that can be checked is
checked before the first detection (the detector, the folder, the images, that the cache file
can be written). Re-running is cheap: only new or changed files are detected again. See
faces/ for the detectors and the cache.
"""
from __future__ import annotations

from pathlib import Path

import click

from media.folders import IMAGE_EXTENSIONS, list_images
from faces import DETECTOR_NAMES, LandmarkCache, check_writable, resolve_detector
from utils.errors import ToonFaceError, call_or_exit

MAX_LISTED_UNREADABLE = 50   # longer lists are cut, with the count of the rest
DETECTOR_HELP = (f"Landmark detector: {', '.join(DETECTOR_NAMES)} [default: mediapipe where its "
                 "legacy API (mediapipe 0.10.21) is installed, else dlib].")
MODEL_HELP = ("The mediapipe Tasks model face_landmarker.task (for --landmark-detector "
              "mediapipe-tasks; download it from the MediaPipe Face Landmarker page).")


def open_cache(photo_dir: str | Path, cache_file: str | Path | None = None, recursive: bool = True,
               landmark_detector=None, landmark_model=None) -> tuple[LandmarkCache, list[Path]]:
    """Every check that needs no detection, then the loaded cache and the images to cover.

    landmark_detector / landmark_model: the detector's name (or a DetectorSpec) and the Tasks
    model file. Raises ToonFaceError (one line) for a bad detector choice, a missing folder, a
    folder without images or an unwritable cache file.
    """
    spec = resolve_detector(landmark_detector, landmark_model)
    root = Path(photo_dir)
    if not root.is_dir():
        raise ToonFaceError(f"photo folder not found: {root}")
    paths = list_images(root, recursive=recursive)
    if not paths:
        raise ToonFaceError(f"no images ({' '.join(e[1:] for e in IMAGE_EXTENSIONS)}) in {root}"
                            + ("" if recursive else " (without subfolders: try --recursive)"))
    cache = LandmarkCache(root, cache_file, detector=spec)
    check_writable(cache.cache_file)
    return cache.load(), paths


def prepare(photo_dir: str | Path, cache_file: str | Path | None = None, recursive: bool = True,
            progress: bool = True, detector=None, landmark_detector=None,
            landmark_model=None) -> tuple[dict, LandmarkCache]:
    """Fill the landmark cache of ``photo_dir``; returns (summary, cache). See open_cache for
    the checks and LandmarkCache.fill for the summary; ``detector``: an already built detector
    to use instead of building the chosen one."""
    cache, paths = open_cache(photo_dir, cache_file, recursive, landmark_detector, landmark_model)
    summary = cache.fill(detector=detector, paths=paths, progress=progress)
    return summary, cache


def cache_notes(cache: LandmarkCache) -> list[str]:
    """Why an existing cache file is rebuilt (unreadable, or another detector's), if it is."""
    notes = []
    if cache.load_error:
        notes.append(f"the old cache file was unreadable ({cache.load_error}); rebuilding it")
    if cache.other_detector:
        notes.append(f"the cache file {cache.cache_file} holds landmarks of the "
                     f"{cache.other_detector} detector; rebuilding it with {cache.detector.key}")
    return notes


def format_summary(summary: dict, cache: LandmarkCache) -> list[str]:
    """The lines printed after a run: one summary line, then the unreadable files (if any)."""
    unreadable = summary["unreadable"]
    lines = [f"landmarks: {summary['found']} found, {summary['not_found']} not found, "
             f"{len(unreadable)} unreadable of {summary['total']} images "
             f"({summary['detected']} detected, {summary['cached']} from cache) -> "
             f"{cache.cache_file} [{cache.detector.key}]"]
    if unreadable:
        lines.append(f"unreadable files ({len(unreadable)}):")
        lines += [f"  {p}" for p in unreadable[:MAX_LISTED_UNREADABLE]]
        if len(unreadable) > MAX_LISTED_UNREADABLE:
            lines.append(f"  ... and {len(unreadable) - MAX_LISTED_UNREADABLE} more")
    return lines


def _run(photo_dir, cache_file, recursive, progress, landmark_detector, landmark_model):
    spec = resolve_detector(landmark_detector, landmark_model)
    cache, paths = open_cache(photo_dir, cache_file, recursive, spec)
    # Notes only once every check has passed: bad input stays a single error line.
    for note in ([spec.note] if spec.note else []) + cache_notes(cache):
        click.echo(f"note: {note}", err=True)
    return cache.fill(paths=paths, progress=progress), cache


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("photo_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--cache-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Cache file [default: PHOTO_DIR/.toonface_landmarks.<detector>.npz, or under "
                   "~/.cache/toonface/landmarks/ if the folder is read-only]")
@click.option("--landmark-detector", "landmark_detector", default=None,
              metavar="NAME", help=DETECTOR_HELP)
@click.option("--landmark-model", "landmark_model", default=None,
              type=click.Path(path_type=Path), metavar="PATH", help=MODEL_HELP)
@click.option("--recursive/--no-recursive", default=True, show_default=True,
              help="Include images in subfolders.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def main(photo_dir: Path, cache_file: Path | None, landmark_detector: str | None,
         landmark_model: Path | None, recursive: bool, quiet: bool) -> None:
    """Detect and cache the facial landmarks of every image in PHOTO_DIR."""
    summary, cache = call_or_exit(_run, photo_dir, cache_file, recursive, not quiet,
                                  landmark_detector, landmark_model)
    for line in format_summary(summary, cache):
        click.echo(line)


if __name__ == "__main__":
    main()
