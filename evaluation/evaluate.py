"""What ``test.py`` runs, in steps: locate -> photos -> outputs -> score -> report.

Two ways in, one way out:

- :func:`evaluate` (a checkpoint): :func:`locate_generator` -> :func:`select_photos` and
  :func:`load_crops` (the training view) -> :func:`generate_outputs` (the inference path,
  ``inference.Cartoonizer``, what ``cartoonize.py`` delivers; grids beside) -> score -> report.
- :func:`evaluate_outputs` (``test.py --outputs DIR --photo_dir DIR``: any folder of results,
  another tool's too): ``evaluation.pairs.pair_folders`` -> ``read_pair`` per pair -> score ->
  report.

Score is ``evaluation.scoring.score`` and report is :func:`write_report` in both, so the two
modes write the same files with the same keys::

    metrics.json     the contract keys (evaluation/scoring.py) flat at the top level and in
                     "summary", plus details: dlib settings, landmark detector, style of
                     outputs / photos / cartoon set, FID, notes, per-image records, and
                     "not_independent": {metric: why} for the metrics whose judge the run's
                     own training read (:data:`TRAINED_JUDGES`; checkpoint mode)
    per_image.csv    one row per pair (evaluation.scoring.PER_IMAGE_COLUMNS)
    index.html       metrics, grids (checkpoint mode), a row per pair with its images

A checkpoint's folder (default ``<run>/test/step_XXXXXX``) also holds ``grids/grid_NN.png``
(training/visuals.py columns, 8 faces each), ``photos/NNNN_<stem>.png`` (the centre crop the
generator saw) and ``outputs/NNNN_<stem>.png`` (the cartoon). The folder of ``--outputs``
(default ``<outputs>_scores`` beside it) holds only the three files above; index.html links
the scored files where they are.

Where test.py writes is checked before any work: no file it writes may land in a folder it
reads (the photos, the outputs, the cartoon set; each is read recursively), and it never
replaces a file it did not write: ``.toonface-test-files.json`` in its folder lists what it
wrote there, so a rerun replaces its own files and stops at anyone else's.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from evaluation.config import (DEFAULT_DLIB_DETECTOR, DEFAULT_DLIB_UPSAMPLE,  # noqa: F401
                               INFERENCE_GF_EPS, EvalConfig)  # (test.py's defaults, from here)
from evaluation.pairs import Pair, load_crops  # noqa: F401 (load_crops: part of this API)
from evaluation.scoring import DEFAULT_MAX_REAL, PER_IMAGE_COLUMNS, prepare_reference, score
from utils.errors import ToonFaceError
from utils.io import make_folder
from utils.run_dir import RunDir, resolve_generator
from faces.dlib_analyser import (DlibFaceAnalyser, FACE_RECOGNITION_RESNET, MMOD_FACE_DETECTOR,
                                   SHAPE_PREDICTOR_68, import_dlib, model_path)
from evaluation.pairs import pair_folders, read_pair
from evaluation.report import write_test_index
from media.tensors import to_tensor
from training.curves import plot_loss_curves
from utils.io import atomic_write_bytes, atomic_write_text, check_writable
from representations.defaults import DEFAULT_METHOD, SEG_NUM

# Loss terms whose network is also a judge: {config.json key of the term's weight: (the
# network, the metrics it judges)}. A run trained with such a term > 0 was optimised against
# that judge, so those numbers are not independent evidence for it; dlib's nme68 (its own
# 68-point predictor, which no term reads) stays the landmark judge.
TRAINED_JUDGES = {
    "w_landmark_regressor": ("mediapipe's FaceMesh network, on the output",
                             ("nme_mediapipe_mean", "face_found_rate_mediapipe")),
    "w_identity": ("dlib's face descriptor ResNet, on the output",
                   ("identity_distance_mean", "identity_same_rate", "identity_cosine_mean")),
}
GRID_ROWS = 8


def _echo(msg: str) -> None:
    print(msg, file=sys.stderr)


# --------------------------------------------------------------------------- 1. locate
def locate_generator(checkpoints_dir: str = "checkpoints", name: str | None = None,
                     model_version: int | None = None, step: int | None = None,
                     checkpoint: str | None = None) -> tuple[Path, RunDir | None]:
    """(generator file, its run or None). Raises ToonFaceError naming what it looked for."""
    if checkpoint:
        if step is not None:
            if not Path(checkpoint).is_dir():  # a file is one generator: no step to choose
                raise ToonFaceError(f"--step {step} picks a generator of a run (--name, or "
                                    f"--checkpoint RUN_FOLDER), but {checkpoint} is a file")
            return RunDir(Path(checkpoint)).find_generator(step), RunDir.containing(checkpoint)
        return resolve_generator(checkpoint), RunDir.containing(checkpoint)
    if name is None and model_version is not None:
        name = f"v{model_version}"
    if name is None:
        raise ToonFaceError("which generator? pass --model_version N, --name NAME or --checkpoint PATH")
    run = RunDir.of(checkpoints_dir, name)
    if not run.is_run():
        raise ToonFaceError(f"run '{name}' not found: no run folder {run} (under --checkpoints_dir "
                            f"{checkpoints_dir})")
    return run.find_generator(step), run


def read_run_config(run: RunDir | None) -> dict:
    return (run.read_config() or {}) if run is not None else {}


def not_independent(cfg: dict) -> tuple[dict[str, str], list[str]]:
    """({metric: why it is not an independent judge}, notes) for a run's config.json dict:
    the metrics of :data:`TRAINED_JUDGES` whose term the run trained with (weight > 0)."""
    marks: dict[str, str] = {}
    notes = []
    for key, (network, keys) in TRAINED_JUDGES.items():
        weight = cfg.get(key) or 0
        if not (isinstance(weight, (int, float)) and weight > 0):
            continue
        flag = "--" + key.replace("_", "-")
        why = f"trained with {flag} {weight:g} ({network})"
        marks.update({k: why for k in keys})
        notes.append(f"{', '.join(keys)}: not an independent judge of this run, {why}; "
                     "dlib's nme68 is")
    return marks, notes


# What test.py writes in its folder: the report files, and in checkpoint mode the image
# subfolders. OWN_FILES lists (relative paths) every file test.py has written there, so a
# rerun may replace its own files and never a file it did not write.
REPORT_FILES = ("metrics.json", "per_image.csv", "index.html")
IMAGE_SUBFOLDERS = ("grids", "photos", "outputs")
OWN_FILES = ".toonface-test-files.json"


def check_out_dir(out_dir: str | Path, subfolders: Iterable[str] = (), what: str = "--out",
                  probe: bool = True, **inputs: str | Path | Iterable[str | Path] | None) -> Path:
    """``out_dir`` unless a file test.py writes there would land among its inputs, or files
    cannot be written there (checked with a probe file, so the refusal comes before any work).

    ``inputs``: flag name -> input folder (or several); every input folder is read recursively,
    so what is written in ``out_dir`` and in its ``subfolders`` (``photos/``, ``outputs/``,
    ``grids/``) must be neither an input folder nor inside one: there it would be read as input
    by the next run, and could replace a user's own file. Links are followed (a ``photos``
    subfolder that is a link to the photo folder is that folder). Raises ToonFaceError naming
    the flag (an input key with a dot, e.g. ``evaluate.reference.dir``, is a sweep file's key and
    named as it is). ``what``: how the out folder is named; ``probe``: also check it can be
    written."""
    out = Path(out_dir)
    o = out.resolve()
    written = [("", o)] + [(sub, (o / sub).resolve()) for sub in subfolders]
    for flag, given in inputs.items():
        folders = [given] if isinstance(given, (str, Path)) else list(given or ())
        label = flag if "." in flag else f"--{flag}"
        for folder in folders:
            f = Path(folder).resolve()
            for sub, w in written:
                if w != f and f not in w.parents:
                    continue
                if not sub:
                    where = "is" if w == f else "is inside"
                    raise ToonFaceError(f"{what} {out} {where} the {label} folder {folder}: the files "
                                        "written there would be read as input by the next run; "
                                        f"choose another {what}")
                raise ToonFaceError(f"{what} {out}: its {sub}/ images are written into {out / sub}, "
                                    f"which {'is' if w == f else 'is inside'} the {label} folder "
                                    f"{folder}: they would mix with the inputs; choose another {what}")
    if probe:
        check_writable(out, what, folder=True)
    return out


def planned_files(names: list[str], grids: bool = True) -> list[str]:
    """The files (relative to the out folder) an evaluation of photos ``names`` writes:
    checkpoint mode (``grids``) also writes the crops, the outputs and the grids."""
    files = list(REPORT_FILES)
    if grids:
        files += [f"photos/{n}.png" for n in names] + [f"outputs/{n}.png" for n in names]
        files += [f"grids/grid_{k:02d}.png" for k in range((len(names) + GRID_ROWS - 1) // GRID_ROWS)]
    return files


def _own_files(out: Path) -> set[str] | None:
    """The files test.py recorded as its own in ``out`` (:data:`OWN_FILES`), or None without
    a record. A folder test.py wrote before it kept the record is recognised by its
    metrics.json, and its files of test.py's layout are counted as its own."""
    try:
        data = json.loads((out / OWN_FILES).read_text(encoding="utf-8"))
        if isinstance(data, list):
            return {str(x) for x in data}
    except (OSError, ValueError):
        pass
    try:
        m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not (isinstance(m, dict) and m.get("mode") in ("checkpoint", "outputs") and "summary" in m):
        return None
    layout = re.compile(r"^(metrics\.json|per_image\.csv|index\.html|grids/grid_\d+\.png|"
                        r"(photos|outputs)/\d{4}_[^/]*\.png)$")
    found = set()
    for sub in ("", *IMAGE_SUBFOLDERS):
        try:
            entries = list((out / sub).iterdir()) if (out / sub).is_dir() else []
        except OSError:
            continue
        for e in entries:
            rel = f"{sub}/{e.name}" if sub else e.name
            if layout.match(rel):
                found.add(rel)
    return found


def check_own_files(out: Path, files: list[str]) -> list[str]:
    """Refuse (ToonFaceError, one line) when one of ``files`` (relative to ``out``) exists and
    test.py did not write it; returns the record to keep (:func:`claim_files`)."""
    own = _own_files(out) or set()
    for rel in files:
        path = out / rel
        if rel not in own and os.path.lexists(path):
            raise ToonFaceError(f"--out {out}: {path} exists and was not written by test.py; it "
                                "would be replaced: choose another --out (or move that file)")
    return sorted(own | set(files))


def claim_files(out: Path, record: list[str]) -> None:
    """Record ``record`` as test.py's files in ``out`` before writing any of them."""
    make_folder(out, "--out")
    atomic_write_text(out / OWN_FILES, json.dumps(record, indent=0) + "\n")


def _input_folders(photo_dir: str | None, photos: list | None, run: RunDir | None, cfg: dict,
                   cartoon_dir: str | None) -> dict[str, list]:
    """The folders an evaluation reads, by flag: the photos (``photo_dir``, else the folders of
    the given or held-out photos and the run's photo folder) and the cartoon set."""
    if photo_dir:
        photo_folders = [photo_dir]
    else:
        listed = photos if photos is not None else (run.read_heldout() if run is not None else None)
        photo_folders = sorted({str(Path(p).parent) for p in listed or ()})
        if run is not None and cfg.get("photo_dir"):
            photo_folders.append(cfg["photo_dir"])
    cartoons = cartoon_dir or cfg.get("cartoon_dir")
    return {"photo_dir": photo_folders, "cartoon_dir": [cartoons] if cartoons else []}


# --------------------------------------------------------------------------- 2. photos
def heldout_photos(run: RunDir) -> list[Path]:
    """The photos a run held out of training (``heldout.txt``)."""
    f = run.heldout_file
    paths = run.read_heldout()
    if paths is None:
        raise ToonFaceError(f"run {run} has no heldout.txt (it records the held-out photos): "
                            "pass --photo_dir")
    if not paths:
        raise ToonFaceError(f"run {run} held out no photos ({f} is empty: its photo set was too "
                            "small for a split): pass --photo_dir")
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise ToonFaceError(f"{len(missing)} held-out photo(s) listed in {f} are gone, e.g. "
                            f"{missing[0]}: pass --photo_dir")
    return paths


def select_photos(photos: list | None, photo_dir: str | None, run: RunDir | None,
                  gen_path: Path, num: int | None) -> tuple[list[Path], str]:
    """(photo files, where they came from): ``photos``, else ``photo_dir``, else the run's
    ``heldout.txt``; the first ``num``. Raises ToonFaceError when there is none."""
    # lazy: torch, cv2 only when this runs
    from datasets.folders import collect_images

    if photos is not None:
        paths, source = [Path(p) for p in photos], "a given list"
    elif photo_dir:
        paths, source = collect_images(photo_dir, "photo"), str(photo_dir)
    elif run is not None:
        paths, source = heldout_photos(run), str(run.heldout_file)
    else:
        raise ToonFaceError(f"{gen_path} is not inside a run folder, so there is no held-out "
                            "list: pass --photo_dir")
    paths = paths[:num] if num is not None else paths
    if not paths:
        raise ToonFaceError("no photos to evaluate")
    return paths, source


class CachedDetector:
    """A landmark detector with a memory of images it has seen (photos are detected once, for
    the landmark map column and for the NME). ``spec``: a validated DetectorSpec (default: the
    default detector)."""

    def __init__(self, spec=None):
        # lazy: cv2, PIL only when this runs
        from faces import resolve_detector

        self.detector = resolve_detector(spec).build()
        self.cache: dict[bytes, Any] = {}

    def detect(self, image: np.ndarray):
        import hashlib

        key = hashlib.sha1(np.ascontiguousarray(image).tobytes()).digest() + bytes(str(image.shape), "ascii")
        if key not in self.cache:
            self.cache[key] = self.detector.detect(image)
        return self.cache[key]

    def close(self) -> None:
        self.detector.close()


# --------------------------------------------------------------------------- 3. outputs
def generate_outputs(toon, G, crops: list[np.ndarray], names: list[str], sources: list[Path],
                     out_dir: Path, detector, batch_size: int = 8, superpixel: str = "fast",
                     seg_num: int = SEG_NUM) -> tuple[list[Pair], list[Path]]:
    """Cartoons of the crops by the inference path, written with the crops and the grids.

    toon: an ``inference.cartoonizer.Cartoonizer`` (its ``eps`` is test.py's ``--gf_eps``); its
    outputs are what is saved and scored. G: the same generator, for the grid's "raw G" column;
    the grid's surface, texture and structure columns are computed from toon's output
    (training/visuals.py); the landmark map column comes from ``detector`` on the photo.
    Returns (pairs in memory, grid files).
    """
    import torch

    # lazy: cv2, PIL only when this runs
    from faces import render_landmark_map
    # lazy: torch, cv2 only when this runs
    from training.visuals import COLUMNS, make_grid, representations, save_png

    for sub in ("grids", "photos", "outputs"):
        make_folder(out_dir / sub, "--out")
    pairs: list[Pair] = []
    grids: list[Path] = []
    grid_cols: dict[str, list] = {c: [] for c in COLUMNS}
    grid_labels: list[str] = []
    for i in range(0, len(crops), batch_size):
        chunk = crops[i:i + batch_size]
        outs = toon.stylize_batch(chunk)
        x = torch.stack([to_tensor(im) for im in chunk]).to(toon.device)
        h, w = chunk[0].shape[:2]
        lmaps = torch.from_numpy(np.stack([render_landmark_map(detector.detect(im), h, w)
                                           for im in chunk]))
        shown = torch.stack([to_tensor(o) for o in outs]).to(toon.device)
        cols = representations(G, x, lmaps, toon.eps, superpixel, seg_num, COLUMNS, output=shown)
        for j, (crop, out_img) in enumerate(zip(chunk, outs)):
            k = i + j
            photo_file = out_dir / "photos" / f"{names[k]}.png"
            output_file = out_dir / "outputs" / f"{names[k]}.png"
            save_png(photo_file, crop)
            save_png(output_file, out_img)
            pairs.append(Pair(names[k], sources[k], output_file, crop, out_img,
                              shown_photo=photo_file))
            for c in COLUMNS:
                grid_cols[c].append(cols[c][j])
            grid_labels.append(sources[k].stem)
            if len(grid_labels) == GRID_ROWS or k == len(crops) - 1:
                g = out_dir / "grids" / f"grid_{len(grids):02d}.png"
                save_png(g, make_grid({c: torch.stack(v) for c, v in grid_cols.items()}, grid_labels))
                grids.append(g)
                grid_cols = {c: [] for c in COLUMNS}
                grid_labels = []
    return pairs, grids


# ----------------------------------------------------------------------------- 4. score
def dlib_analyser(detector: str = DEFAULT_DLIB_DETECTOR, upsample: int = DEFAULT_DLIB_UPSAMPLE,
                  load: bool = True):
    """The dlib judge; ``load``: its models now (else only checked to be installed), so a
    missing package fails before any work."""
    analyser = DlibFaceAnalyser(detector=detector, upsample=upsample)
    if load:
        return analyser.load()
    import_dlib()
    needed = (SHAPE_PREDICTOR_68, FACE_RECOGNITION_RESNET)
    for f in needed + ((MMOD_FACE_DETECTOR,) if detector == "cnn" else ()):
        model_path(f)
    # lazy: torch only when this runs
    from faces.dlib_encoder import RESNET_FILE

    RESNET_FILE.path()  # the descriptor's weights: size and sha256 checked now
    return analyser


# ---------------------------------------------------------------------------- 5. report
def write_report(out_dir: Path, result: dict, pairs_shown: list[dict], grids: list[Path] = (),
                 loss_curves: Path | None = None) -> dict:
    """metrics.json, per_image.csv and index.html in ``out_dir``.

    result: the header fields of the evaluation plus, when scored, what
    ``evaluation.scoring.score`` returned (its "summary" keys are copied to the top level).
    pairs_shown: per pair {"name", "photo", "output"} image files for index.html.
    Returns {"metrics_path", "per_image_path", "index"}.
    """
    summary = result.get("summary") or {}
    metrics = {"mode": result.get("mode"), **summary, **result}
    metrics_path = out_dir / "metrics.json"
    atomic_write_bytes(metrics_path, (json.dumps(_clean(metrics), indent=2) + "\n").encode())
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(PER_IMAGE_COLUMNS)
    for row in result.get("per_image", []):
        w.writerow(["" if row.get(k) is None else _clean(row.get(k)) for k in PER_IMAGE_COLUMNS])
    per_image_path = out_dir / "per_image.csv"
    atomic_write_text(per_image_path, buf.getvalue())
    index = write_test_index(out_dir, _clean(metrics), grids, pairs_shown, loss_curves)
    return {"metrics_path": metrics_path, "per_image_path": per_image_path, "index": index}


def _scored(pairs: Iterable[Pair], shown: list[dict]) -> Iterator[Pair]:
    """Pass pairs through, noting which image files index.html shows for each."""
    for p in pairs:
        shown.append({"name": p.name, "photo": p.shown_photo, "output": p.shown_output})
        yield p


# ------------------------------------------------------------------------- the two modes
def evaluate(config: EvalConfig, *, analyser=None, feature_cache: dict | None = None,
             echo: Callable[[str], None] = _echo) -> dict:
    """Evaluate one generator as ``config`` says (:mod:`evaluation.config`); returns
    ``{"out_dir", "index", "metrics_path", "per_image_path", "metrics", "grids"}``.

    The generator: ``config.generator``, a run's step, a file, or a style by name or a blend of
    styles (found in ``styles_dir``; inference/styles.py). With ``config.record``, the summary
    is written into the metadata of the generator file that was scored (``metrics``), where
    ``--list-styles`` shows it; blends and full training checkpoints are not files of that kind
    and are left as they are.

    Photos: ``config.photos``, centre-cropped to ``image_size`` (default: the training size).
    Outputs: the inference path with guided-filter eps ``config.gf_eps``. Scores:
    ``config.scoring`` (landmark detector default: the run's, else the default detector).
    ``analyser``: a loaded ``DlibFaceAnalyser`` to use instead of the one ``scoring`` names (its
    models load once, e.g. across a sweep or a test session); ``feature_cache``: Inception
    features of the reference sets, shared across calls; ``echo``: progress and notes. Raises
    ToonFaceError for anything the user can fix.
    """
    # lazy: cv2, PIL only when this runs
    from faces import resolve_detector
    # lazy: torch, cv2 only when this runs
    from inference.cartoonizer import Cartoonizer
    # lazy: torch only when this runs
    from models.checkpoint import load_generator
    # lazy: torch only when this runs
    from utils.device import resolve_device

    gen, ph, sc = config.generator, config.photos, config.scoring
    style, out, image_size, metrics = gen.style, config.out, ph.image_size, sc.metrics
    # the run's settings fill these in below when they are not given
    landmark_detector, landmark_model = sc.landmark_detector, sc.landmark_model
    superpixel, seg_num = sc.superpixel, sc.seg_num

    if image_size is not None and image_size % 4:
        raise ToonFaceError(f"--image_size {image_size}: must be a multiple of 4 (the generator "
                            "halves the size twice)")
    if style and (gen.checkpoint or gen.name or gen.model_version is not None):
        raise ToonFaceError("give --style or a checkpoint (--checkpoint, --name, --model_version), not both")
    if style:
        # lazy: torch only when this runs
        from inference.styles import load_style

        G, meta = load_style(style, gen.styles_dir, warn=lambda m: echo(f"warning: {m}"))
        gen_path = Path(meta["blend"][0][2] if meta.get("blend") else meta["file"])
        run = None if meta.get("blend") else RunDir.containing(gen_path)
    else:
        gen_path, run = locate_generator(gen.checkpoints_dir, gen.name, gen.model_version, gen.step,
                                        gen.checkpoint)
    # a given --out is checked before any work; the default one once the step is known
    cfg = read_run_config(run)
    inputs = _input_folders(ph.photo_dir, ph.photos, run, cfg, sc.cartoon_dir)
    out_dir = check_out_dir(out, IMAGE_SUBFOLDERS, **inputs) if out is not None else None
    dev = resolve_device(str(config.device))
    if style:
        G = G.to(dev)
    else:  # a bad file is the one line reported, before notes and before the photos are read
        G, meta = load_generator(gen_path, dev)
    if landmark_detector is None and landmark_model is None:
        landmark_detector, landmark_model = cfg.get("landmark_detector"), cfg.get("landmark_model")
    spec = resolve_detector(landmark_detector, landmark_model)
    if spec.note:
        echo(f"note: {spec.note}")
    paths, source = select_photos(ph.photos, ph.photo_dir, run, gen_path, ph.num)
    gstep = meta.get("step")
    label = _safe_label(meta["style"]) if meta.get("blend") else gen_path.stem
    if out_dir is None:
        base = run if run is not None else RunDir(gen_path.parent)
        out_dir = check_out_dir(base.test_dir(gstep if isinstance(gstep, int) else None, label),
                                IMAGE_SUBFOLDERS, **inputs)
    names = [f"{i:04d}_{p.stem}" for i, p in enumerate(paths)]
    own = check_own_files(out_dir, planned_files(names))  # before any work, as the folders
    size = int(image_size or meta.get("image_size") or cfg.get("image_size") or 128)
    superpixel = superpixel or cfg.get("superpixel", "fast")
    seg_num = int(seg_num or cfg.get("seg_num", SEG_NUM))
    toon = Cartoonizer(G, dev, eps=config.gf_eps)
    if metrics and analyser is None:
        analyser = dlib_analyser(sc.dlib_detector, sc.dlib_upsample, load=sc.workers <= 1)
    reference = (prepare_reference(sc.cartoon_dir or cfg.get("cartoon_dir"), sc.inception,
                                   gen.checkpoints_dir, dev, sc.max_real, echo) if metrics else None)
    echo(f"evaluating {gen_path} (step {gstep}) on {len(paths)} photos from {source} -> {out_dir}")

    detector = CachedDetector(spec)
    try:
        crops = load_crops(paths, size, cfg.get("load_size") if size == cfg.get("image_size") else None)
        claim_files(out_dir, own)
        pairs, grids = generate_outputs(toon, G, crops, names, paths, out_dir, detector,
                                        config.batch_size, superpixel, seg_num)
        result: dict[str, Any] = {
            "mode": "checkpoint", "run": str(run) if run else None,
            "checkpoint": None if meta.get("blend") else str(gen_path), "style_name": meta.get("style"),
            "step": gstep, "image_size": size, "gf_eps": config.gf_eps, "superpixel": superpixel,
            "seg_num": seg_num, "n": len(paths), "photo_source": source,
            "photos": [str(p) for p in paths], "notes": [],
        }
        if metrics:
            scores = score(pairs, analyser=analyser, landmarks=detector,
                           landmark_detector=spec.key, superpixel=superpixel, seg_num=seg_num,
                           reference=reference, reference_size=size, kid_subsets=sc.kid_subsets,
                           feature_cache=feature_cache, workers=sc.workers, echo=echo)
            result.update(_scores_fields(scores, reference))
            marks, notes = not_independent(cfg)
            result["not_independent"] = marks
            result["notes"] = result["notes"] + notes
        else:
            result["summary"] = {}
            result["per_image"] = [{"name": p.name, "photo": str(p.photo_path),
                                    "output": str(p.output_path)} for p in pairs]
    finally:
        detector.close()
    shown = [{"name": p.name, "photo": p.shown_photo, "output": p.shown_output} for p in pairs]
    curves = None
    if run is not None and run.stats_file.is_file():
        curves = plot_loss_curves(run.stats_file, run.loss_curves)
    files = write_report(out_dir, result, shown, grids, curves)
    if config.record and metrics and not meta.get("blend") and meta.get("format") == "toonface-generator":
        _record_metrics(gen_path, result, source, echo)
    return {"out_dir": out_dir, **files, "metrics": _clean(result), "grids": grids}


def _safe_label(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9=._+-]", "-", text)


def _record_metrics(gen_path: Path, result: dict, source: str, echo: Callable[[str], None]) -> None:
    """The summary into the generator file's metadata (see :func:`evaluate`)."""
    from datetime import datetime, timezone

    # lazy: torch only when this runs
    from models.checkpoint import same_generator, update_generator_meta

    summary = {k: v for k, v in _clean(result.get("summary", {})).items() if v is not None}
    if result.get("not_independent"):
        summary["not_independent"] = sorted(result["not_independent"])
    summary.update(photos=source, image_size=result.get("image_size"),
                   scored_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    targets = [gen_path]
    # The style registry reads a run's generator/latest.pt: a scored step_N.pt with the same
    # weights (the run's last step) is recorded there too, so --list-styles shows it.
    latest = gen_path.with_name("latest.pt")
    if gen_path.name != "latest.pt" and latest.is_file() and same_generator(gen_path, latest):
        targets.append(latest)
    for target in targets:
        try:
            update_generator_meta(target, metrics=summary)
        except (ToonFaceError, OSError) as exc:
            echo(f"notice: metrics not recorded in {target} ({exc})")
            continue
        echo(f"metrics recorded in {target}")


def default_scores_dir(outputs: str | Path) -> Path:
    """Where ``test.py --outputs DIR`` writes by default: ``DIR_scores`` beside ``DIR``."""
    p = Path(outputs).resolve()
    return p.with_name(p.name + "_scores")


def evaluate_outputs(*, outputs: str, photo_dir: str | None, out: str | None = None,
                     num: int | None = None, cartoon_dir: str | None = None,
                     inception: str | None = None, checkpoints_dir: str = "checkpoints",
                     device: str = "auto", superpixel: str | None = None,
                     seg_num: int | None = None, max_real: int = DEFAULT_MAX_REAL,
                     kid_subsets: int = 100, landmark_detector=None,
                     landmark_model: str | None = None,
                     dlib_detector: str = DEFAULT_DLIB_DETECTOR,
                     dlib_upsample: int = DEFAULT_DLIB_UPSAMPLE, analyser=None,
                     workers: int = 0, echo: Callable[[str], None] = _echo) -> dict:
    """Score a folder of outputs against their photos (pairing: ``evaluation.pairs``); returns
    what :func:`evaluate` returns (``grids`` empty).

    Every check that needs no decoding happens before any work (folders, pairing, --out, the
    detectors); unreadable files and outputs of another aspect ratio are skipped per pair and
    counted. ``num``: the first N pairs (by name). ``analyser``, ``workers``: as in
    :func:`evaluate`. Raises ToonFaceError (one line).
    """
    # lazy: cv2, PIL only when this runs
    from faces import resolve_detector
    # lazy: torch only when this runs
    from utils.device import resolve_device

    if not photo_dir:
        raise ToonFaceError("--outputs needs --photo_dir: the photos the outputs were made from")
    pairing = pair_folders(photo_dir, outputs)
    file_pairs = pairing.pairs[:num] if num is not None else pairing.pairs
    out_dir = check_out_dir(out or default_scores_dir(outputs), photo_dir=photo_dir,
                            outputs=outputs, cartoon_dir=cartoon_dir)
    own = check_own_files(out_dir, planned_files([], grids=False))
    spec = resolve_detector(landmark_detector, landmark_model)
    if spec.note:
        echo(f"note: {spec.note}")
    analyser = analyser or dlib_analyser(dlib_detector, dlib_upsample, load=workers <= 1)
    dev = resolve_device(str(device))
    reference = prepare_reference(cartoon_dir, inception, checkpoints_dir, dev, max_real, echo)
    superpixel, seg_num = superpixel or DEFAULT_METHOD, int(seg_num or SEG_NUM)
    notes = []
    for what, files in (("photo(s) without an output", pairing.photos_only),
                        ("output(s) without a photo", pairing.outputs_only)):
        if files:
            notes.append(f"{len(files)} {what}, not scored: "
                         + ", ".join(p.name for p in files[:5]) + (" ..." if len(files) > 5 else ""))
            echo("notice: " + notes[-1])
    claim_files(out_dir, own)
    echo(f"scoring {len(file_pairs)} outputs from {outputs} against photos from {photo_dir} "
         f"-> {out_dir}")
    uses_landmarks = spec.name != "dlib"  # dlib's NME is nme68 already (scoring docstring)
    detector = spec.build() if uses_landmarks else None
    shown: list[dict] = []
    try:
        scores = score(_scored((read_pair(p) for p in file_pairs), shown), analyser=analyser,
                       landmarks=detector, landmark_detector=spec.key, superpixel=superpixel,
                       seg_num=seg_num, reference=reference, kid_subsets=kid_subsets,
                       workers=workers, echo=echo)
    finally:
        if detector is not None:
            detector.close()
    result: dict[str, Any] = {
        "mode": "outputs", "outputs_dir": str(outputs), "photo_dir": str(photo_dir),
        "superpixel": superpixel, "seg_num": seg_num, "n": len(file_pairs),
        "photo_source": str(photo_dir), "photos": [str(p.photo) for p in file_pairs],
        "photos_without_output": [str(p) for p in pairing.photos_only],
        "outputs_without_photo": [str(p) for p in pairing.outputs_only], "notes": notes,
    }
    result.update(_scores_fields(scores, reference))
    result["notes"] = notes + result["notes"]
    files = write_report(out_dir, result, shown)
    return {"out_dir": out_dir, **files, "metrics": _clean(result), "grids": []}


def _scores_fields(scores: dict, reference) -> dict:
    """The metrics.json fields of a score result."""
    return {"summary": scores["summary"], "face": scores["face"], "landmark": scores["landmark"],
            "style": scores["style"], "fid": scores["fid"], "fid_reason": scores["fid_reason"],
            "cartoon_dir": reference.cartoon_dir if reference else None,
            "notes": scores["notes"], "per_image": scores["per_image"]}


def _clean(obj):
    """JSON-safe: NaN/inf -> None, paths -> str, numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
