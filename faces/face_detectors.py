"""Face boxes for portrait mode: where the faces are and how large (inter-ocular distance).

:func:`face_detector_for` picks the detector of a ``--landmark-detector`` choice:
``mediapipe``: mediapipe FaceDetection, full-range model (``model_selection=1``: finds small
and group faces; the short-range model is tried when it finds none), :class:`FaceDetector`;
``dlib`` and ``mediapipe-tasks``: the landmark detector's faces, :class:`LandmarkFaceDetector`.
Every detector has ``detect(rgb) -> list[Face]`` (faces.boxes.Face), largest first.

Inter-ocular measure. FaceDetection gives eye *centres*; the checkpoint's face size uses outer
*corners*. We scale the eye-centre distance by ``EYE_CENTRES_TO_OUTER_CORNERS``, measured rather
than running FaceMesh per face (one detector pass for any number of faces; FaceMesh needs a face
crop each). EYE_CENTRES_TO_OUTER_CORNERS was measured on the 49 aligned FFHQ photos of
``shared/fixtures/ffhq-mini/photos`` (256x256) with mediapipe 0.10.21:
FaceMesh(static_image_mode=True) outer-corner distance / FaceDetection(model_selection=1)
eye-keypoint distance, median over the 46 faces it found = 1.39 (10th-90th percentile
1.28-1.51; the short-range model gives 1.43), so the face scale is known to about +-8%.
The landmark backends measure outer corners directly: mediapipe-tasks the same points 33/263;
dlib its points 36/45, which lie a little inside FaceMesh's: FaceMesh 33-263 / dlib 36-45
distance on the same 49 photos, median 1.033 (10th-90th percentile 0.996-1.077), applied by
``Topology.face_size`` (faces/topology.py).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from faces.boxes import Face, suppress_overlaps
from faces.landmark_detectors import (LEGACY_MEDIAPIPE, DetectorUnavailable,
                                      mediapipe_legacy_problem, resolve_detector)
from utils.native_logs import quiet_native_stderr

EYE_CENTRES_TO_OUTER_CORNERS = 1.39  # see the module docstring
MIN_CONFIDENCE = 0.5
WINDOW_MIN_CONFIDENCE = 0.7
MERGE_IOU = 0.3          # window detections overlapping more than this are one face


class FaceDetector:
    """mediapipe FaceDetection (full range first, then short range); mediapipe imported here.

    Raises ToonFaceError (one line) where mediapipe or its legacy ``mp.solutions`` API
    (removed in mediapipe 0.10.30) is missing.
    """

    def __init__(self, min_confidence: float = MIN_CONFIDENCE):
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
        self._models: dict[int, Any] = {}

    def _process(self, selection: int, rgb: np.ndarray):
        """FaceDetection ``selection`` on ``rgb``. A model is built at its first image, and
        built and run in one quiet window: mediapipe's C++ core logs start-up chatter (absl
        W0000 lines, utils/native_logs.py) from worker threads while the graph opens."""
        model = self._models.get(selection)
        if model is not None:
            return model.process(rgb)
        with quiet_native_stderr():
            model = self._models[selection] = self._fd.FaceDetection(
                model_selection=selection, min_detection_confidence=self.min_confidence)
            return model.process(rgb)

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
                result = self._process(selection, crop)
                whole = (side_w, side_h) == (w, h)
                for d in result.detections or []:
                    f = self._face(d, side_w, side_h)
                    if f.interocular > 0 and (whole or f.score >= WINDOW_MIN_CONFIDENCE):
                        b = f.box
                        found.append(Face((b[0] + x0, b[1] + y0, b[2] + x0, b[3] + y0), f.interocular, f.score))
        return sorted(suppress_overlaps(found, MERGE_IOU), key=lambda f: -f.interocular)

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
    """Faces from a landmark detector of faces (dlib or mediapipe-tasks).

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
    for the default, see ``faces.resolve_detector``). Raises ToonFaceError (one
    line) for a choice that cannot work here."""
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
