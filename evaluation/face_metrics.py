"""Face metrics of (photo, output) pairs judged by dlib: ``nme68`` and identity distance.

Per pair, with the photo's face (largest dlib box) and the output resized to the photo's size:

- ``nme68``: mean over dlib's 68 points k of ||p_photo[k] - p_output[k]|| / d_io, with
  d_io = ||p_photo[36] - p_photo[45]||, the photo's outer-eye-corner distance (0-based
  indices; the 300-W "inter-ocular" normalisation of Sagonas et al. 2016). Unitless; 0 for an
  unchanged geometry, 0.01 is about a pixel per 100 px of eye distance.
- ``identity_distance``: Euclidean distance between the 128-D dlib ResNet descriptors of the
  photo's and the output's face; dlib's convention: the same person below
  :data:`IDENTITY_THRESHOLD` = 0.6. ``identity_cosine``: cosine similarity of the same two
  descriptors (1 = same direction).

dlib detects the faces and places the 68 points; the descriptors come from the PyTorch port of
dlib's ResNet (``faces/dlib_encoder.py``: dlib's chips, descriptors within 1e-6 of dlib's), many
faces per forward (:func:`measure_pair` collects each pair's two aligned chips,
:class:`IdentityBatch` runs them together).

The photo's face is its largest detected box. The output's face is the box the detector
finds on the output that overlaps the photo's box most, if that intersection over union is at
least :data:`MATCH_IOU` = 0.5 (the PASCAL VOC matching rule): a detection elsewhere is another
face, not this one (on a one-face portrait this is simply the output's largest box). When
there is no such box (stylised faces fool HOG more often than photos), the shape predictor and
the descriptor run inside the *photo's* box on the output: the output is in the photo's frame,
so that box holds the face the method was asked to keep, and nme68 / identity still measure it
instead of silently dropping the hardest pairs. The detector's verdict is reported on its own
as ``face_found_rate_dlib``. On the 49 fixture pairs (the white-box authors' cartoons of
ffhq-mini) this gives the reference levels in the README's evaluation section (nme68 about
0.035, same-person rate about 0.98).

Summary keys (metrics.json contract; every mean is over the scored pairs, ``None`` when there
is none, never NaN):

- ``pairs``: pairs given; ``pairs_scored``: pairs with a face in the photo and no error;
  ``pairs_without_photo_face``: pairs excluded because dlib finds no face in the photo;
  ``pairs_failed``: pairs skipped for bad input (unreadable file, other aspect ratio; the
  reason is in the pair's record).
- ``nme68_mean``, ``nme68_median``, ``identity_distance_mean``, ``identity_same_rate``
  (fraction of scored pairs with distance < 0.6), ``identity_cosine_mean``.
- ``face_found_rate_dlib``: fraction of scored pairs where the detector finds the photo's
  face on the output (a box matching it, as above).
"""
from __future__ import annotations

import contextlib
import math
from typing import Iterable, Sequence

import numpy as np

from faces.dlib_analyser import DlibFaceAnalyser, Face, FaceBox
from evaluation.rgb import resize_to
from utils.arrays import check_rgb
from utils.errors import ToonFaceError

IDENTITY_THRESHOLD = 0.6
MATCH_IOU = 0.5
OUTER_EYE_CORNERS_68 = (36, 45)
SUMMARY_KEYS = ("pairs", "pairs_scored", "pairs_without_photo_face", "pairs_failed",
                "nme68_mean", "nme68_median", "identity_distance_mean", "identity_same_rate",
                "identity_cosine_mean", "face_found_rate_dlib")


def identity_distance(descriptor_a: np.ndarray, descriptor_b: np.ndarray) -> float:
    """Euclidean distance of two dlib face descriptors ((128,) each). Same person below 0.6."""
    a, b = np.asarray(descriptor_a, np.float64), np.asarray(descriptor_b, np.float64)
    return float(np.linalg.norm(a - b))


def identity_cosine(descriptor_a: np.ndarray, descriptor_b: np.ndarray) -> float:
    """Cosine similarity of two face descriptors, in [-1, 1]; NaN if either is all zeros."""
    a, b = np.asarray(descriptor_a, np.float64), np.asarray(descriptor_b, np.float64)
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / norm) if norm > 0 else math.nan


def same_person(distance: float, threshold: float = IDENTITY_THRESHOLD) -> bool:
    """dlib's decision rule: the same person when the descriptor distance is below 0.6."""
    return bool(distance < threshold)


def inter_ocular_distance68(points: np.ndarray) -> float:
    """Outer-eye-corner distance ||p[36] - p[45]|| of (68, 2) points, in their pixel units."""
    p = np.asarray(points, np.float64)
    i, j = OUTER_EYE_CORNERS_68
    return float(np.linalg.norm(p[i] - p[j]))


def nme68(photo_points: np.ndarray, output_points: np.ndarray) -> float:
    """Normalised mean error of two (68, 2) point sets in the same pixel frame.

    mean_k ||photo[k] - output[k]|| / ||photo[36] - photo[45]|| (300-W outer-eye-corner
    normalisation). Unitless. NaN when the photo's eye corners coincide. Raises ToonFaceError
    for point sets that are not both (68, 2).
    """
    p = np.asarray(photo_points, np.float64)
    o = np.asarray(output_points, np.float64)
    if p.shape != (68, 2) or o.shape != (68, 2):
        raise ToonFaceError(f"nme68 needs two (68, 2) point sets, got {p.shape} and {o.shape}")
    d_io = inter_ocular_distance68(p)
    if d_io <= 0:
        return math.nan
    return float(np.linalg.norm(p - o, axis=1).mean() / d_io)


def match_box(boxes: Sequence[FaceBox], reference: FaceBox,
              min_iou: float = MATCH_IOU) -> FaceBox | None:
    """The box of ``boxes`` overlapping ``reference`` most, if its IoU is >= ``min_iou``."""
    best = max(boxes, key=reference.iou, default=None)
    return best if best is not None and reference.iou(best) >= min_iou else None


def _record(name) -> dict:
    return {"name": name, "status": "error", "error": None, "photo_faces": None,
            "output_faces": None, "output_face_found": None, "output_box": None,
            "nme68": None, "identity_distance": None, "identity_cosine": None,
            "identity_same": None}


def error_record(name, reason: str) -> dict:
    """The record of a pair that could not be scored (unreadable file, another aspect ratio...):
    status ``"error"`` with the one-line ``reason``; counted in ``pairs_failed``."""
    rec = _record(name)
    rec["error"] = str(reason)
    return rec


def measure_pair(photo: np.ndarray, output: np.ndarray, analyser: DlibFaceAnalyser,
                 name=None, photo_face: tuple[Face | None, int] | None = None
                 ) -> tuple[dict, np.ndarray | None]:
    """:func:`score_pair` but the identity: dlib's detection, 68 points and nme68 of one pair,
    and the two aligned face chips whose descriptors give the identity.

    Returns ``(record, chips)``: the record with ``identity_*`` still None, and (2, 150, 150,
    3) uint8 chips (photo's face, output's face) for :func:`set_identity`, or None when the
    pair is not scored. Never raises for bad input (see :func:`score_pair`).
    """
    rec = _record(name)
    try:
        photo = check_rgb(photo, "photo")
        output = resize_to(check_rgb(output, "output"), photo.shape[:2])
        face_p, n_p = (photo_face if photo_face is not None
                       else analyser.find_face(photo, describe=False))
        rec["photo_faces"] = n_p
        if face_p is None:
            rec["status"] = "no_photo_face"
            return rec, None
        boxes_o = analyser.detect(output)
        box_o = match_box(boxes_o, face_p.box)
        rec["output_faces"] = len(boxes_o)
        rec["output_face_found"] = box_o is not None
        if box_o is not None:
            face_o = analyser.analyse(output, box_o, detected=True, describe=False)
        else:
            face_o = analyser.analyse(output, face_p.box, detected=False, describe=False)
        rec["output_box"] = "detected" if face_o.detected else "photo_box"
    except ToonFaceError as exc:
        rec["error"] = str(exc)
        return rec, None
    v = nme68(face_p.landmarks, face_o.landmarks)
    rec.update(status="scored", nme68=v if math.isfinite(v) else None)
    return rec, np.stack([face_p.chip, face_o.chip])


def set_identity(record: dict, photo_descriptor: np.ndarray, output_descriptor: np.ndarray
                 ) -> dict:
    """Fill a scored record's ``identity_distance``, ``identity_cosine`` and
    ``identity_same`` from the two faces' descriptors; returns the record."""
    dist = identity_distance(photo_descriptor, output_descriptor)
    cos = identity_cosine(photo_descriptor, output_descriptor)
    record.update(identity_distance=dist, identity_cosine=cos if math.isfinite(cos) else None,
                  identity_same=same_person(dist))
    return record


def score_pair(photo: np.ndarray, output: np.ndarray, analyser: DlibFaceAnalyser,
               name=None, photo_face: tuple[Face | None, int] | None = None) -> dict:
    """Score one (photo, output) pair of uint8 RGB arrays; never raises for bad input.

    The output is resized to the photo's size first (same aspect ratio required).
    ``photo_face``: ``analyser.find_face(photo)`` computed before (to score several outputs of
    one photo without detecting it again). Returns the pair's record: ``status`` is
    ``"scored"``, ``"no_photo_face"`` or ``"error"`` (``error``: the one-line reason);
    ``photo_faces`` / ``output_faces``: faces detected; ``output_face_found``: the detector
    found the photo's face on the output (a box with IoU >= 0.5); ``output_box``:
    ``"detected"`` or ``"photo_box"`` (the fallback, see the module docstring); ``nme68``,
    ``identity_distance``, ``identity_cosine`` (floats) and ``identity_same`` (bool) when
    scored. Many pairs: :class:`IdentityBatch` computes their descriptors together.
    """
    rec, chips = measure_pair(photo, output, analyser, name=name, photo_face=photo_face)
    if chips is not None:
        set_identity(rec, *analyser.describe_chips(chips))
    return rec


class IdentityBatch:
    """The identity of many measured pairs from one descriptor forward per ``pairs`` pairs.

    ``add(record, chips)`` the results of :func:`measure_pair` (records without chips are
    complete already); the records are filled in place when ``pairs`` are waiting and at
    :meth:`flush`, which the caller runs before reading them. ``context``: a callable giving
    a context manager around each forward (e.g. one torch thread beside dlib workers).
    """

    def __init__(self, analyser: DlibFaceAnalyser, pairs: int = 32, context=None):
        self.analyser, self.pairs = analyser, int(pairs)
        self.context = context or contextlib.nullcontext
        self.waiting: list[tuple[dict, np.ndarray]] = []

    def add(self, record: dict, chips: np.ndarray | None) -> None:
        if chips is None:
            return
        self.waiting.append((record, chips))
        if len(self.waiting) >= self.pairs:
            self.flush()

    def flush(self) -> None:
        if not self.waiting:
            return
        with self.context():
            desc = self.analyser.describe_chips(np.concatenate([c for _, c in self.waiting]))
        for i, (rec, _) in enumerate(self.waiting):
            set_identity(rec, desc[2 * i], desc[2 * i + 1])
        self.waiting = []


def summarise_face_pairs(records: Sequence[dict]) -> dict:
    """The summary dict (keys: :data:`SUMMARY_KEYS`) of per-pair records from
    :func:`score_pair`. Means are over scored pairs; ``None`` where there is none."""
    scored = [r for r in records if r["status"] == "scored"]

    def mean(key):
        vals = [r[key] for r in scored if r[key] is not None]
        return float(np.mean(vals)) if vals else None

    nmes = [r["nme68"] for r in scored if r["nme68"] is not None]
    return {
        "pairs": len(records),
        "pairs_scored": len(scored),
        "pairs_without_photo_face": sum(r["status"] == "no_photo_face" for r in records),
        "pairs_failed": sum(r["status"] == "error" for r in records),
        "nme68_mean": float(np.mean(nmes)) if nmes else None,
        "nme68_median": float(np.median(nmes)) if nmes else None,
        "identity_distance_mean": mean("identity_distance"),
        "identity_same_rate": (float(np.mean([r["identity_same"] for r in scored]))
                               if scored else None),
        "identity_cosine_mean": mean("identity_cosine"),
        "face_found_rate_dlib": (float(np.mean([r["output_face_found"] for r in scored]))
                                 if scored else None),
    }


def _settings(analyser: DlibFaceAnalyser) -> dict:
    return {"detector": analyser.detector, "upsample": analyser.upsample,
            "jitters": analyser.jitters, "identity_threshold": IDENTITY_THRESHOLD}


def _pairs(photos: Iterable, outputs: Iterable, names: Iterable | None):
    """Zip lazily (a generator of images is never held in memory); one line on a length mismatch."""
    if hasattr(photos, "__len__") and hasattr(outputs, "__len__") and len(photos) != len(outputs):
        raise ToonFaceError(f"{len(photos)} photos but {len(outputs)} outputs")
    end = object()
    it_p, it_o = iter(photos), iter(outputs)
    it_n = iter(names) if names is not None else None
    i = 0
    while True:
        p, o = next(it_p, end), next(it_o, end)
        if p is end and o is end:
            return
        if p is end or o is end:
            raise ToonFaceError(f"photos and outputs differ in number (one ran out after {i})")
        name = next(it_n, end) if it_n is not None else i
        if name is end:
            raise ToonFaceError(f"fewer names than pairs (names ran out after {i})")
        yield p, o, name
        i += 1


def score_face_pairs(photos: Iterable[np.ndarray], outputs: Iterable[np.ndarray],
                     analyser: DlibFaceAnalyser | None = None,
                     names: Iterable | None = None) -> dict:
    """nme68 and identity metrics of (photo, output) uint8 RGB pairs, with the summary.

    photos, outputs: equally long iterables of uint8 (H, W, 3) RGB arrays, consumed one pair at
    a time (generators are fine). analyser: a :class:`DlibFaceAnalyser` (default: HOG,
    upsample 1, built here; pass one to reuse loaded models). names: per-pair labels for the
    records (default: the index).

    Returns ``{"summary": {...}, "per_pair": [record, ...], "settings": {...}}`` (see
    :func:`score_pair` and the module docstring). Bad pairs are skipped and counted in
    ``pairs_failed``. Raises ToonFaceError when there are no pairs at all or the iterables
    differ in length.
    """
    analyser = analyser or DlibFaceAnalyser()
    identity, records = IdentityBatch(analyser), []
    for p, o, n in _pairs(photos, outputs, names):
        rec, chips = measure_pair(p, o, analyser, name=n)
        records.append(rec)
        identity.add(rec, chips)
    identity.flush()
    if not records:
        raise ToonFaceError("no (photo, output) pairs to score")
    return {"summary": summarise_face_pairs(records), "per_pair": records,
            "settings": _settings(analyser)}
