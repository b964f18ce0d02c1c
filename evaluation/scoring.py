"""The score step of ``test.py``: every metric of (photo, output) pairs, one pair at a time.

A checkpoint's outputs (made by the inference path, ``inference.Cartoonizer``) and a folder of
outputs (``test.py --outputs``: another tool's results too) are scored by this same code, so
their numbers compare directly. Pairs are consumed lazily and no image is kept after its pair
is scored: memory does not grow with the number of pairs (FID keeps 2048 features per image).

Per pair (photo and output of one size):

- dlib, the independent judge (``evaluation.face_metrics``): ``nme68``, ``identity_distance``,
  ``identity_cosine``, ``same_person`` (distance < 0.6), ``face_found_dlib`` (the detector
  finds the photo's face on the output). A pair whose photo has no dlib face is counted
  (``pairs_without_photo_face``) and excluded from these means.
- The training landmark detector (``evaluation.nme``; mediapipe FaceMesh, or the
  FaceLandmarker of ``mediapipe-tasks``): ``nme_mediapipe`` (468 points, outer-eye-corner
  normalisation) and ``face_found_mediapipe``. With ``--landmark-detector dlib`` this NME is
  not computed (it would be a second, weaker nme68) and its keys are None with a note.
- Style statistics of the output (``evaluation.style``) and of the photo.
- FID / KID of the outputs to the photos and to a cartoon set, when an Inception file is there.

Pairs that cannot be scored (unreadable file, another aspect ratio) are skipped, reported per
pair with the reason, and counted in ``pairs_failed``. Style statistics and FID use every pair
whose images were read (faces or not). The dlib judge may run in worker processes
(``workers``): the numbers are the same, in the same order.

The metrics.json contract (:data:`CONTRACT_KEYS`, flat in ``summary`` and at the top level of
metrics.json; a mean over nothing is None, never NaN):

========================== =================================================================
``pairs``                  pairs given (scored + without photo face + failed)
``pairs_scored``           pairs with a dlib face in the photo, scored by dlib
``pairs_without_photo_face`` excluded: dlib finds no face in the photo
``pairs_failed``           skipped: unreadable file, another aspect ratio (reason per pair)
``nme68_mean``/``_median`` dlib 68-point NME, outer eye corners 36/45 (unitless)
``identity_distance_mean`` dlib ResNet descriptor distance (same person below 0.6)
``identity_same_rate``     fraction of scored pairs with distance < 0.6
``identity_cosine_mean``   cosine similarity of the descriptors
``face_found_rate_dlib``   fraction of scored pairs whose output shows the photo's face to dlib
``nme_mediapipe_mean``     mediapipe NME over pairs with a face on both sides
``face_found_rate_mediapipe`` (outputs with a face) / (photos with a face), mediapipe
``distinct_colours`` ...   style statistics of the outputs: ``distinct_colours``,
                           ``edge_density``, ``flatness``, ``smooth_share``
``fid_cartoon`` ...        ``fid_cartoon``, ``kid_cartoon``, ``fid_photo``, ``kid_photo``
                           (None without an Inception file or a cartoon set)
========================== =================================================================
"""
from __future__ import annotations

import contextlib
import functools
import math
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from evaluation.face_metrics import SUMMARY_KEYS as FACE_KEYS
from evaluation.pairs import Pair, load_crops
from evaluation.style import STYLE_KEYS
from utils.errors import ToonFaceError
from faces.dlib_analyser import DlibFaceAnalyser
from evaluation.face_metrics import IdentityBatch, error_record, measure_pair, summarise_face_pairs
from evaluation.fid import InceptionFeatures, fid_kid, find_inception
from evaluation.style import image_style, mean_style
from representations.defaults import DEFAULT_METHOD, SEG_NUM

MEDIAPIPE_KEYS = ("nme_mediapipe_mean", "face_found_rate_mediapipe")
FID_KEYS = ("fid_cartoon", "kid_cartoon", "fid_photo", "kid_photo")
CONTRACT_KEYS = (*FACE_KEYS, *MEDIAPIPE_KEYS, *STYLE_KEYS, *FID_KEYS)
PER_IMAGE_COLUMNS = ("name", "photo", "output", "status", "error", "nme68", "identity_distance",
                     "identity_cosine", "same_person", "face_found_dlib", "dlib_output_box",
                     "nme_mediapipe", "face_found_mediapipe", *STYLE_KEYS)
MEDIAPIPE_DETECTORS = ("mediapipe", "mediapipe-tasks")
DEFAULT_MAX_REAL = 5000  # cartoon images used as the FID reference set
STYLE_CARTOONS_PER_PAIR = 4


@dataclass
class Reference:
    """What the outputs are compared with besides their photos: a cartoon set and an
    Inception network (either may be missing; ``notes`` say why)."""

    extractor: Any = None                 # evaluation.fid.InceptionFeatures, or None
    fid_reason: str | None = None         # why FID/KID are skipped
    cartoon_dir: str | None = None
    cartoon_paths: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def prepare_reference(cartoon_dir: str | None, inception: str | None, checkpoints_dir: str,
                      device, max_real: int = DEFAULT_MAX_REAL,
                      echo: Callable[[str], None] = lambda m: None) -> Reference:
    """Find the cartoon set (a fixed random subset of ``max_real`` files when larger, the same
    for every evaluation) and the Inception file; notices go to ``echo`` and ``notes``.
    Raises ToonFaceError for an Inception file that is not one."""
    # lazy: torch, cv2 only when this runs
    from datasets.folders import collect_images, resolve_cartoon_dir

    ref = Reference(cartoon_dir=str(cartoon_dir) if cartoon_dir else None)
    if cartoon_dir and Path(cartoon_dir).is_dir():
        try:
            ref.cartoon_paths = collect_images(resolve_cartoon_dir(cartoon_dir), "cartoon")
        except ToonFaceError as exc:
            ref.notes.append(f"no cartoon reference: {exc}")
        if len(ref.cartoon_paths) > max_real:
            rng = np.random.default_rng(0)
            idx = sorted(rng.choice(len(ref.cartoon_paths), max_real, replace=False))
            ref.cartoon_paths = [ref.cartoon_paths[i] for i in idx]
    else:
        note = (f"cartoon folder not found: {cartoon_dir}" if cartoon_dir
                else "no cartoon folder (pass --cartoon_dir)")
        ref.notes.append(note + "; FID/KID to cartoons and cartoon style statistics skipped")
        echo("notice: " + ref.notes[-1])
    path, reason = find_inception(inception, checkpoints_dir)
    if path is None:
        ref.fid_reason = reason
        echo(f"notice: FID/KID skipped: {reason}")
    else:
        ref.extractor = InceptionFeatures(path, device)
    return ref


class _Features:
    """Inception features of a stream of images, extracted in batches of one image size."""

    def __init__(self, extractor, batch: int = 32):
        self.extractor, self.batch = extractor, batch
        self.buffer: list[np.ndarray] = []
        self.parts: list[np.ndarray] = []

    def add(self, image: np.ndarray) -> None:
        if self.buffer and self.buffer[0].shape != image.shape:
            self.flush()
        self.buffer.append(image)
        if len(self.buffer) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.parts.append(self.extractor(self.buffer))
            self.buffer = []

    def result(self) -> np.ndarray:
        self.flush()
        return np.concatenate(self.parts) if self.parts else np.zeros((0, 2048))


class _DlibJudge:
    """``face_metrics.measure_pair`` of each pair (dlib's faces, points and nme68, and the two
    aligned chips), in this process or in ``workers`` processes.

    dlib holds the GIL while it runs, so threads would not help; on 2 cores two worker
    processes score the 49 fixture pairs in about half the time, while this process reads
    the next pairs and measures style and the mediapipe NME. Results come back in order.
    Workers are spawned (a forked child of a process running mediapipe or torch threads can
    deadlock) and load the dlib models once each. The descriptors of the chips are computed
    in this process, many pairs per forward (``face_metrics.IdentityBatch``).
    """

    def __init__(self, analyser, workers: int = 0):
        self.analyser = analyser
        self.settings = (analyser.detector, analyser.upsample, analyser.jitters)
        self.workers = int(workers)
        self.pool = None
        if self.workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(self.workers,
                                            mp_context=multiprocessing.get_context("spawn"))
            for _ in range(self.workers):  # start the workers and their model loading now
                self.pool.submit(_worker_analyser, *self.settings)

    def submit(self, photo: np.ndarray, output: np.ndarray, name) -> Future:
        """A future of ``(record, chips)``."""
        if self.pool is not None:
            return self.pool.submit(_measure_in_worker, self.settings, photo, output, name)

        done: Future = Future()
        done.set_result(measure_pair(photo, output, self.analyser, name=name))
        return done

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


@functools.lru_cache(maxsize=1)
def _worker_analyser(detector: str, upsample: int, jitters: int):
    """The dlib analyser of a worker process, loaded on its first task and kept for the rest
    (its detector and shape predictor: the descriptors are computed by the parent)."""
    import torch


    torch.set_num_threads(1)  # the chip alignment is a few small ops; the cores run dlib
    analyser = DlibFaceAnalyser(detector, upsample, jitters)
    analyser._detect_fn, analyser._predictor  # noqa: B018 (loaded now, cached)
    return analyser


def _measure_in_worker(settings: tuple, photo: np.ndarray, output: np.ndarray, name) -> tuple:
    return measure_pair(photo, output, _worker_analyser(*settings), name=name)


@contextlib.contextmanager
def _one_torch_thread():
    """torch on one thread inside the block (the previous count restored after).

    The style statistics of one image are a few small torch ops (the superpixel fill of
    flatness): a second thread gains nothing there, and unless OMP_WAIT_POLICY=PASSIVE its
    OpenMP threads spin between ops, taking the cores the dlib workers need (measured on the
    49 fixture pairs: 39 s of CPU in the main process instead of 6).
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _mean(values) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def score(pairs: Iterable[Pair], *, analyser, landmarks=None, landmark_detector: str | None = None,
          superpixel: str = DEFAULT_METHOD, seg_num: int = SEG_NUM, reference: Reference | None = None,
          reference_size: int | None = None, kid_subsets: int = 100,
          feature_cache: dict | None = None, workers: int = 0,
          echo: Callable[[str], None] = lambda m: None) -> dict:
    """Score (photo, output) pairs.

    pairs: :class:`~evaluation.pairs.Pair` s (a generator is fine: each is dropped once scored).
    analyser: a ``DlibFaceAnalyser`` (models loaded once, reused). landmarks: the training
    landmark detector (``detect(rgb) -> (N, 2) | None``) for the mediapipe NME, built by the
    caller; landmark_detector: its name (``DetectorSpec.key``); the NME is computed only for a
    mediapipe backend. reference: cartoon set and Inception network (:func:`prepare_reference`;
    None: no FID, no cartoon style). reference_size: side of the cartoon crops (default: the
    first photo's shorter side). feature_cache: {key: features} reused across calls (a sweep
    scores many runs against one cartoon set). workers: processes for the dlib judge (0 or 1:
    this process, with ``analyser``; more: each worker loads its own models with the
    analyser's settings, and ``analyser`` need not be loaded).

    Returns ``{"summary": {CONTRACT_KEYS}, "per_image": [row (PER_IMAGE_COLUMNS)], "face":
    {"settings", "summary"}, "landmark": {...}, "style": {"output", "photo"[, "cartoon"]},
    "fid": {...} | None, "fid_reason", "notes": [...]}``. Raises ToonFaceError when there is no
    pair at all.
    """
    # lazy: cv2, PIL only when this runs
    from evaluation.nme import pair_nme

    reference = reference or Reference()
    notes = list(reference.notes)
    use_nme = landmarks is not None and (landmark_detector or "").split(":")[0] in MEDIAPIPE_DETECTORS
    if not use_nme:
        notes.append(f"landmark detector {landmark_detector or 'none'}: nme_mediapipe_mean and "
                     "face_found_rate_mediapipe not computed (dlib's NME is nme68)")
    fake = _Features(reference.extractor) if reference.extractor is not None else None
    real_photo = _Features(reference.extractor) if reference.extractor is not None else None
    records, rows, style_out, style_photo = [], [], [], []
    photo_found = both_found = 0
    first_size = None
    # The descriptor forward keeps to one thread, beside the dlib workers as the style does;
    # also without workers, so that both give the same bits (oneDNN's sums may be split by
    # thread count).
    identity = IdentityBatch(analyser, context=_one_torch_thread)

    def finish(row: dict, done) -> None:
        rec, chips = done.result() if isinstance(done, Future) else (done, None)
        records.append(rec)
        rows.append(row)
        identity.add(rec, chips)  # fills rec's identity now or at the last flush

    judge = _DlibJudge(analyser, workers)
    pending: deque = deque()  # pairs whose dlib record is being computed, in order
    try:
        for pair in pairs:
            row = dict.fromkeys(PER_IMAGE_COLUMNS)
            row.update(name=pair.name, photo=str(pair.photo_path) if pair.photo_path else None,
                       output=str(pair.output_path) if pair.output_path else None)
            if pair.error is not None:
                pending.append((row, error_record(pair.name, pair.error)))
            else:
                photo, output = pair.photo, pair.output
                first_size = first_size or min(photo.shape[:2])
                pending.append((row, judge.submit(photo, output, pair.name)))
                if use_nme:
                    found_p, found_o, v = pair_nme(photo, output, landmarks)
                    photo_found += found_p
                    both_found += bool(found_o)
                    row.update(nme_mediapipe=v, face_found_mediapipe=found_o)
                with _one_torch_thread():
                    s_out = image_style(output, superpixel, seg_num)
                    style_photo.append(image_style(photo, superpixel, seg_num))
                style_out.append(s_out)
                row.update(s_out)
                if fake is not None:
                    fake.add(output)
                    real_photo.add(photo)
            while len(pending) > 2 * max(judge.workers, 1):  # bounded memory: a few pairs in flight
                finish(*pending.popleft())
        while pending:
            finish(*pending.popleft())
        identity.flush()
    finally:
        judge.close()
    for row, rec in zip(rows, records):
        row.update(status=rec["status"], error=rec["error"], nme68=rec["nme68"],
                   identity_distance=rec["identity_distance"],
                   identity_cosine=rec["identity_cosine"], same_person=rec["identity_same"],
                   face_found_dlib=rec["output_face_found"], dlib_output_box=rec["output_box"])
    if not records:
        raise ToonFaceError("no (photo, output) pairs to score")
    failed = [r for r in rows if r["status"] == "error"]
    if failed:
        notes.append(f"{len(failed)} pair(s) skipped: " + "; ".join(
            f"{r['name']} ({r['error']})" for r in failed[:5]) + (" ..." if len(failed) > 5 else ""))
        echo("notice: " + notes[-1])

    no_face = [r["name"] for r in rows if r["status"] == "no_photo_face"]
    if no_face:
        notes.append(f"{len(no_face)} pair(s) not in the face metrics: dlib finds no face in the "
                     "photo (small, turned or covered faces; --dlib-upsample 2 or --dlib-detector "
                     "cnn find more): " + ", ".join(no_face[:5]) + (" ..." if len(no_face) > 5 else ""))
        echo("notice: " + notes[-1])
    face = summarise_face_pairs(records)
    summary: dict[str, Any] = {k: face[k] for k in FACE_KEYS}
    nmes = [r["nme_mediapipe"] for r in rows]
    summary["nme_mediapipe_mean"] = _mean(nmes) if use_nme else None
    summary["face_found_rate_mediapipe"] = (both_found / photo_found if use_nme and photo_found
                                            else None)
    style = {"output": mean_style(style_out), "photo": mean_style(style_photo)}
    size = int(reference_size or first_size or 0)
    if reference.cartoon_paths and size:
        n = max(len(style_out), 1) * STYLE_CARTOONS_PER_PAIR
        style["cartoon"] = mean_style([image_style(im, superpixel, seg_num)
                                       for im in load_crops(reference.cartoon_paths[:n], size)])
    summary.update({k: style["output"][k] for k in STYLE_KEYS})

    fid = None
    summary.update(dict.fromkeys(FID_KEYS))
    if fake is not None:
        fake_f = fake.result()
        fid = {"inception": str(reference.extractor.path),
               "photo": fid_kid(fake_f, real_photo.result(), kid_subsets)}
        if reference.cartoon_paths:
            fid["cartoon"] = fid_kid(fake_f, _cartoon_features(reference, size, feature_cache),
                                     kid_subsets)
        if len(fake_f) < 2:
            notes.append("FID/KID need at least 2 images")
        else:
            notes += sorted({fid[ref]["note"] for ref in ("cartoon", "photo")
                             if ref in fid and fid[ref].get("note")})
        for ref in ("cartoon", "photo"):
            if ref in fid:
                summary[f"fid_{ref}"] = fid[ref]["fid"]
                summary[f"kid_{ref}"] = fid[ref]["kid"]
    landmark = {"detector": landmark_detector, "computed": use_nme,
                "nme": summary["nme_mediapipe_mean"],
                "found_rate": summary["face_found_rate_mediapipe"],
                "photo_found": photo_found if use_nme else None,
                "both_found": both_found if use_nme else None}
    return {"summary": {k: _finite(summary[k]) for k in CONTRACT_KEYS},
            "per_image": [{k: _finite(v) for k, v in r.items()} for r in rows],
            "face": {"settings": {"detector": analyser.detector, "upsample": analyser.upsample,
                                  "jitters": analyser.jitters},
                     "summary": face},
            "landmark": landmark, "style": style, "fid": fid,
            "fid_reason": reference.fid_reason, "notes": notes}


def _cartoon_features(reference: Reference, size: int, cache: dict | None) -> np.ndarray:
    ex = reference.extractor
    key = (str(ex.path), size, tuple(str(p) for p in reference.cartoon_paths))
    if cache is not None and key in cache:
        return cache[key]
    feats = ex(load_crops(reference.cartoon_paths, size))
    if cache is not None:
        cache[key] = feats
    return feats


def _finite(v):
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
