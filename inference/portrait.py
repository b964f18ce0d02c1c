"""Portrait mode: stylize faces at the scale the generator was trained at (DCT-Net style).

The generator learned faces of one size: the checkpoint's ``face_size``, the median
inter-ocular distance (mediapipe FaceMesh outer eye corners, points 33 and 263) of its training
photos at the training crop size. A face much larger or smaller than that comes out with the
wrong amount of abstraction, so:

1. faces are found by the detector ``--landmark-detector`` names (:func:`face_detector_for`):
   ``mediapipe``: mediapipe FaceDetection, full-range model (``model_selection=1``: finds
   small and group faces; the short-range model is tried when it finds none); ``dlib``: dlib's
   HOG detector and 68-point predictor (the default where mediapipe's legacy API is missing);
   ``mediapipe-tasks``: the Tasks FaceLandmarker of a local ``face_landmarker.task``;
2. the image is scaled so the *largest* face matches ``face_size``, stylized, scaled back;
3. every other face whose own scale differs by more than ``SCALE_TOLERANCE`` (several faces,
   or a scale limit hit in step 2) is cropped with context, stylized at its own training scale,
   scaled back and blended over the full result with a feathered mask;
4. no face: the whole image at its own scale, with a notice.

Inter-ocular measure. FaceDetection gives eye *centres*; the checkpoint's face size uses outer
*corners*. We scale the eye-centre distance by ``EYE_CENTRES_TO_OUTER_CORNERS``, measured rather
than running FaceMesh per face (one detector pass for any number of faces; FaceMesh needs a face
crop each). Both constants below were measured on the 49 aligned FFHQ photos of
``shared/fixtures/ffhq-mini/photos`` (256x256) with mediapipe 0.10.21:
FaceMesh(static_image_mode=True) outer-corner distance / FaceDetection(model_selection=1)
eye-keypoint distance, median over the 46 faces it found = 1.39 (10th-90th percentile
1.28-1.51; the short-range model gives 1.43), so the face scale is known to about +-8%.
The landmark backends measure outer corners directly: mediapipe-tasks the same points 33/263;
dlib its points 36/45, which lie a little inside FaceMesh's: FaceMesh 33-263 / dlib 36-45
distance on the same 49 photos, median 1.033 (10th-90th percentile 0.996-1.077), applied by
``Topology.face_size`` (datasets/landmarks/topology.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from utils.errors import ToonFaceError


class Stylizer(Protocol):
    """What portrait mode needs of a cartoonizer (inference.cartoonizer.Cartoonizer is one).

    An optional ``context`` attribute (px the stylizer looks at around an image) makes face
    crops take that much real context from the surrounding image.
    """

    def stylize(self, rgb: np.ndarray) -> np.ndarray: ...

    def notice(self, message: str) -> Any: ...

# Median FaceMesh outer-eye-corner distance / image width of the aligned FFHQ faces in
# shared/fixtures/ffhq-mini/photos (49 of 49 found; 10th-90th percentile 0.334-0.370). Times the
# checkpoint's image_size, it stands in for face_size in checkpoints that lack it (FFHQ training).
FFHQ_INTEROCULAR_PER_WIDTH = 0.3525
EYE_CENTRES_TO_OUTER_CORNERS = 1.39  # see the module docstring
SCALE_TOLERANCE = 1.15   # a face within 15% of the scale already used is not re-done
FACE_CONTEXT = 2.2       # face crop side / detected face box side
MIN_SCALE, MAX_SCALE = 1 / 8, 4.0
MAX_WORK_PIXELS = 16_000_000  # cap on the scaled image (tiles keep memory bounded anyway)
MIN_CONFIDENCE = 0.5
WINDOW_MIN_CONFIDENCE = 0.7


@dataclass
class Face:
    """One detected face, in pixels of the image it was found in."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    interocular: float                       # estimated outer-corner distance, px
    score: float


def default_face_size(image_size: int | None) -> float:
    """The FFHQ face size at ``image_size`` (for checkpoints whose ``face_size`` is None)."""
    return FFHQ_INTEROCULAR_PER_WIDTH * float(image_size or 256)


class FaceDetector:
    """mediapipe FaceDetection (full range first, then short range); mediapipe imported here.

    Raises ToonFaceError (one line) where mediapipe or its legacy ``mp.solutions`` API
    (removed in mediapipe 0.10.30) is missing.
    """

    def __init__(self, min_confidence: float = MIN_CONFIDENCE):
        from datasets.landmarks.detectors import (LEGACY_MEDIAPIPE, DetectorUnavailable,
                                                  mediapipe_legacy_problem)

        problem = mediapipe_legacy_problem()
        if problem:
            raise DetectorUnavailable(f"--portrait with --landmark-detector mediapipe needs "
                                      f"{LEGACY_MEDIAPIPE} but {problem}: use --landmark-detector dlib")
        import mediapipe as mp

        solutions = getattr(mp, "solutions", None)
        if solutions is None:
            raise DetectorUnavailable(f"--portrait with --landmark-detector mediapipe needs "
                                      f"{LEGACY_MEDIAPIPE}: this mediapipe has no mp.solutions")
        self._fd = solutions.face_detection
        self.min_confidence = min_confidence
        self._models = {1: self._fd.FaceDetection(model_selection=1, min_detection_confidence=min_confidence)}

    def _model(self, selection: int):
        if selection not in self._models:
            self._models[selection] = self._fd.FaceDetection(
                model_selection=selection, min_detection_confidence=self.min_confidence)
        return self._models[selection]

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Faces in an (H, W, 3) uint8 RGB image, largest first.

        The detector sees a 192x192 (full range) or 128x128 (short range) resize of its input,
        so faces in a group photo get too small: it also runs on overlapping square windows of
        side min(H, W) and min(H, W) / 2 (stride half a side), and overlapping boxes are merged
        (IoU > 0.3, highest score kept). Window detections need a higher score
        (``WINDOW_MIN_CONFIDENCE``): many windows mean more chances for false faces (on the
        scenes fixtures every window detection under 0.7 was a false one).
        """
        h, w = rgb.shape[:2]
        found: list[Face] = []
        for x0, y0, side_w, side_h in _windows(w, h):
            crop = np.ascontiguousarray(rgb[y0:y0 + side_h, x0:x0 + side_w])
            for selection in ((1, 0) if (side_w, side_h) == (w, h) else (1,)):
                result = self._model(selection).process(crop)
                whole = (side_w, side_h) == (w, h)
                for d in result.detections or []:
                    f = self._face(d, side_w, side_h)
                    if f.interocular > 0 and (whole or f.score >= WINDOW_MIN_CONFIDENCE):
                        b = f.box
                        found.append(Face((b[0] + x0, b[1] + y0, b[2] + x0, b[3] + y0), f.interocular, f.score))
        return sorted(_merge(found), key=lambda f: -f.interocular)

    @staticmethod
    def _face(det, w: int, h: int) -> Face:
        loc = det.location_data
        bb = loc.relative_bounding_box
        x0, y0 = bb.xmin * w, bb.ymin * h
        box = (x0, y0, x0 + bb.width * w, y0 + bb.height * h)
        right, left = loc.relative_keypoints[0], loc.relative_keypoints[1]
        eyes = math.hypot((right.x - left.x) * w, (right.y - left.y) * h)
        return Face(box, eyes * EYE_CENTRES_TO_OUTER_CORNERS, float(det.score[0]) if det.score else 0.0)

    def close(self) -> None:
        for m in self._models.values():
            m.close()
        self._models.clear()


class LandmarkFaceDetector:
    """Faces from a landmark detector of datasets/landmarks (dlib or mediapipe-tasks).

    dlib: the HOG box and its score; the inter-ocular distance is that of points 36/45 in
    FaceMesh units (``Topology.face_size``). mediapipe-tasks: the box around the 468 mesh points, score 1
    (the landmarker has already dropped faces below its presence threshold), the inter-ocular
    distance of points 33/263. Its built-in detector is the short-range one: faces smaller
    than about a tenth of the image may be missed.
    """

    MAX_FACES = 16

    def __init__(self, spec):
        self.spec = spec
        if spec.name == "dlib":
            self._det = spec.build()
        else:
            self._det = spec.build(num_faces=self.MAX_FACES)

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Faces in an (H, W, 3) uint8 RGB image, largest first."""
        faces = []
        if self.spec.name == "dlib":
            for box, score in self._det.face_boxes(rgb):
                pts = self._det.points_in_box(rgb, box)
                iod = self._det.topology.face_size(pts)
                faces.append(Face(box, iod, score))
        else:
            for pts in self._det.detect_faces(rgb):
                x0, y0 = pts.min(axis=0)
                x1, y1 = pts.max(axis=0)
                faces.append(Face((float(x0), float(y0), float(x1), float(y1)),
                                  self._det.topology.inter_ocular_distance(pts), 1.0))
        return sorted((f for f in faces if f.interocular > 0), key=lambda f: -f.interocular)

    def close(self) -> None:
        self._det.close()


def face_detector_for(landmark_detector=None, landmark_model=None):
    """The portrait face detector of a landmark detector choice (a name, a DetectorSpec or None
    for the default, see ``datasets.landmarks.resolve_detector``). Raises ToonFaceError (one
    line) for a choice that cannot work here."""
    from datasets.landmarks import resolve_detector

    spec = resolve_detector(landmark_detector, landmark_model)
    if spec.name == "mediapipe":
        return FaceDetector()
    return LandmarkFaceDetector(spec)


def _windows(w: int, h: int) -> list[tuple[int, int, int, int]]:
    """(x0, y0, width, height): the whole image, then square windows of two sizes."""
    out = [(0, 0, w, h)]
    short = min(w, h)
    for side in (short, short // 2):
        if side < 64:
            continue
        step = max(side // 2, 1)
        xs = sorted(set(list(range(0, w - side, step)) + [w - side]))
        ys = sorted(set(list(range(0, h - side, step)) + [h - side]))
        out += [(x, y, side, side) for y in ys for x in xs if (side, side) != (w, h)]
    return out


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _merge(faces: list[Face], iou: float = 0.3) -> list[Face]:
    """Non-maximum suppression: the best-scoring of each group of overlapping boxes."""
    kept: list[Face] = []
    for f in sorted(faces, key=lambda f: -f.score):
        if all(_iou(f.box, k.box) <= iou for k in kept):
            kept.append(f)
    return kept


def resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    if (width, height) == (rgb.shape[1], rgb.shape[0]):
        return rgb
    shrink = width * height < rgb.shape[0] * rgb.shape[1]
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def soft_mask(h: int, w: int, ramp: float, edges: tuple[bool, bool, bool, bool]) -> np.ndarray:
    """(h, w) float32 weights: 1 inside, linear ramps to 0 over ``ramp`` px at the edges flagged
    (top, bottom, left, right); edges on the image border are not feathered."""
    ys = np.arange(h, dtype=np.float32) + 0.5
    xs = np.arange(w, dtype=np.float32) + 0.5
    my = np.ones(h, np.float32)
    mx = np.ones(w, np.float32)
    ramp = max(float(ramp), 1.0)
    if edges[0]:
        my = np.minimum(my, ys / ramp)
    if edges[1]:
        my = np.minimum(my, (h - ys) / ramp)
    if edges[2]:
        mx = np.minimum(mx, xs / ramp)
    if edges[3]:
        mx = np.minimum(mx, (w - xs) / ramp)
    m = np.clip(my[:, None] * mx[None, :], 0.0, 1.0)
    return m * m * (3 - 2 * m)  # smoothstep: no visible kink where the ramp starts


class PortraitProcessor:
    """Face-scale stylization around a :class:`Stylizer` (the Cartoonizer).

    detector: anything with ``detect(rgb) -> list[Face]``; default: :func:`face_detector_for`
    of ``landmark_detector`` / ``landmark_model``.
    """

    def __init__(self, cartoonizer: Stylizer, face_size: float | None = None,
                 image_size: int | None = None, detector=None, landmark_detector=None,
                 landmark_model=None):
        self.toon = cartoonizer
        self.face_size = float(face_size) if face_size else default_face_size(image_size)
        if not face_size:
            cartoonizer.notice(f"the checkpoint records no face_size; using {self.face_size:.1f} px "
                               "(aligned FFHQ faces at its image_size)")
        self.detector = detector or face_detector_for(landmark_detector, landmark_model)
        self.last_faces: list[Face] = []

    def _stylize_scaled(self, rgb: np.ndarray, scale: float) -> np.ndarray:
        h, w = rgb.shape[:2]
        if abs(math.log(scale)) < math.log(1.02):
            return self.toon.stylize(rgb)
        sw, sh = max(4, round(w * scale)), max(4, round(h * scale))
        return resize(self.toon.stylize(resize(rgb, sw, sh)), w, h)

    def _limit(self, scale: float, h: int, w: int) -> float:
        scale = min(max(scale, MIN_SCALE), MAX_SCALE)
        return min(scale, math.sqrt(MAX_WORK_PIXELS / float(h * w)))

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> (H, W, 3) uint8 cartoon (strength not applied)."""
        h, w = rgb.shape[:2]
        faces = self.last_faces = self.detector.detect(rgb)
        if not faces:
            self.toon.notice("no face found; cartoonized the whole image at its own scale")
            return self.toon.stylize(rgb)
        scale = self._limit(self.face_size / faces[0].interocular, h, w)
        out = self._stylize_scaled(rgb, scale)
        for face in faces:
            want = self.face_size / face.interocular
            if abs(math.log(want / scale)) < math.log(SCALE_TOLERANCE):
                continue
            out = self._blend_face(rgb, out, face, want)
        return out

    def _blend_face(self, rgb: np.ndarray, out: np.ndarray, face: Face, scale: float) -> np.ndarray:
        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = face.box
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        half = FACE_CONTEXT * max(x1 - x0, y1 - y0) / 2
        bx0, by0 = max(0, int(cx - half)), max(0, int(cy - half))
        bx1, by1 = min(w, int(math.ceil(cx + half))), min(h, int(math.ceil(cy + half)))
        if bx1 - bx0 < 8 or by1 - by0 < 8:
            return out
        ch, cw = by1 - by0, bx1 - bx0
        scale = self._limit(scale, ch, cw)
        # the stylizer's context around the crop comes from the image where it has some
        pad = math.ceil(getattr(self.toon, "context", 0) / scale)
        cy0, cx0, cy1, cx1 = max(0, by0 - pad), max(0, bx0 - pad), min(h, by1 + pad), min(w, bx1 + pad)
        styl = self._stylize_scaled(rgb[cy0:cy1, cx0:cx1], scale)[by0 - cy0:by1 - cy0, bx0 - cx0:bx1 - cx0]
        mask = soft_mask(ch, cw, 0.25 * min(ch, cw), (by0 > 0, by1 < h, bx0 > 0, bx1 < w))[..., None]
        region = out[by0:by1, bx0:bx1].astype(np.float32)
        mixed = region * (1.0 - mask) + styl.astype(np.float32) * mask
        out = out.copy()
        out[by0:by1, bx0:bx1] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
        return out
