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
2. the picture is stylized at its own resolution, exactly as without portrait mode (large
   pictures run in tiles, so memory stays bounded; no cap on the resolution is needed);
3. each face whose scale (``face_size`` / its inter-ocular distance) differs from 1 by more
   than ``SCALE_TOLERANCE`` is cropped with context (``FACE_CONTEXT`` x its box, plus the
   stylizer's own context taken from the picture), scaled to the training face size, stylized,
   scaled back and pasted over the picture's cartoon with a feathered elliptical mask
   (:func:`face_mask`: 1 over the face box, a smooth ramp to 0 at the crop's edge). This is
   DCT-Net's design (Men et al., SIGGRAPH 2022: the aligned face is stylized at its training
   scale, the rest of the picture at its own, the face blended back), so the background keeps
   the sharpness of the plain result and only the face carries the training scale's look;
4. a face that had to be rendered much smaller than it is (scaled back up more than
   ``UPSCALE_NOTICE`` x: a style trained on small faces, e.g. the demo's 64 px crops) comes
   out soft, and a notice says so (videos: once, with the largest factor);
5. no face: the whole picture at its own scale, with a notice.

Before, step 2 scaled the *whole* picture so that the largest face matched ``face_size``:
with a style trained at 64 px the entire picture became a 64 px-face render scaled up, blurred
everywhere, not only in the face.

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
from utils.native_logs import quiet_native_stderr


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
SCALE_TOLERANCE = 1.15   # a face within 15% of the picture's own scale is not re-done
FACE_CONTEXT = 2.2       # face crop side / detected face box side
FACE_MASK_INNER = 1.2    # the paste-back mask is 1 over the face box grown by this (chin, hairline)
UPSCALE_NOTICE = 2.0     # a face rendered this many times smaller than it is gets a notice
MIN_SCALE, MAX_SCALE = 1 / 8, 4.0
MAX_WORK_PIXELS = 16_000_000  # cap on a scaled face crop (the picture itself runs in tiles)
MIN_CONFIDENCE = 0.5
WINDOW_MIN_CONFIDENCE = 0.7


@dataclass
class Face:
    """One detected face, in pixels of the image it was found in."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    interocular: float                       # estimated outer-corner distance, px
    score: float
    track: int | None = None                 # FaceTracker's id of the face in a video


def default_face_size(image_size: int | None) -> float:
    """The FFHQ face size at ``image_size`` (for checkpoints whose ``face_size`` is None)."""
    return FFHQ_INTEROCULAR_PER_WIDTH * float(image_size or 256)


class FaceDetector:
    """mediapipe FaceDetection (full range first, then short range); mediapipe imported here.

    Raises ToonFaceError (one line) where mediapipe or its legacy ``mp.solutions`` API
    (removed in mediapipe 0.10.30) is missing.
    """

    def __init__(self, min_confidence: float = MIN_CONFIDENCE):
        # lazy: cv2, PIL only when this runs
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
    # lazy: cv2, PIL only when this runs
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


def face_mask(crop: tuple[int, int, int, int], box: tuple[float, float, float, float],
              outer: float) -> np.ndarray:
    """(h, w) float32 paste-back weights of a face crop ``crop`` = (x0, y0, x1, y1) (image px).

    1 inside the ellipse around the face ``box`` grown by ``FACE_MASK_INNER``, then a smoothstep
    ramp to 0 where the same ellipse, grown, reaches ``outer`` px (half the unclipped crop side)
    from the box centre: the crop's corners and edges weigh 0, so no square seam shows, and a
    crop cut off by the picture's border is simply cut (the picture ends there).
    """
    x0, y0, x1, y1 = crop
    bx0, by0, bx1, by1 = box
    cx, cy = (bx0 + bx1) / 2, (by0 + by1) / 2
    ax = max(FACE_MASK_INNER * (bx1 - bx0) / 2, 1.0)
    ay = max(FACE_MASK_INNER * (by1 - by0) / 2, 1.0)
    ys = (np.arange(y0, y1, dtype=np.float32) + 0.5 - cy) / ay
    xs = (np.arange(x0, x1, dtype=np.float32) + 0.5 - cx) / ax
    d = np.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)       # 1 on the inner ellipse
    d_out = max((outer - 1.0) / max(ax, ay), 1.0 + 1e-3)   # the ramp is 0 on the edge pixels
    m = np.clip((d_out - d) / (d_out - 1.0), 0.0, 1.0)
    return m * m * (3 - 2 * m)  # smoothstep: no visible kink where the ramp starts


class PortraitProcessor:
    """Face-scale stylization around a :class:`Stylizer` (the Cartoonizer).

    detector: anything with ``detect(rgb) -> list[Face]``; default: :func:`face_detector_for`
    of ``landmark_detector`` / ``landmark_model``. After each call, ``last_faces`` holds the
    faces found and ``last_renders`` the (face, scale) of each face re-done in its crop.
    """

    def __init__(self, cartoonizer: Stylizer, face_size: float | None = None,
                 image_size: int | None = None, detector=None, landmark_detector=None,
                 landmark_model=None):
        self.toon = cartoonizer
        self.image_size = image_size
        self.face_size = float(face_size) if face_size else default_face_size(image_size)
        if not face_size:
            cartoonizer.notice(f"the checkpoint records no face_size; using {self.face_size:.1f} px "
                               "(aligned FFHQ faces at its image_size)")
        self.detector = detector or face_detector_for(landmark_detector, landmark_model)
        self.last_faces: list[Face] = []
        self.last_renders: list[tuple[Face, float]] = []

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
        faces = self.last_faces = self.detector.detect(rgb)
        if not faces:
            self.last_renders = []
            self.toon.notice("no face found; cartoonized the whole image at its own scale")
            return self.toon.stylize(rgb)
        out = self.render(rgb, faces, [self.face_size / f.interocular for f in faces])
        soft = [(f, s) for f, s in self.last_renders if 1.0 / s > UPSCALE_NOTICE]
        if soft:
            what = "the face was" if len(soft) == 1 else f"{len(soft)} faces were"
            self.toon.notice(self.soft_notice(max(1.0 / s for _, s in soft), what,
                                              "" if len(soft) == 1 else " (at most)"))
        return out

    def soft_notice(self, upscale: float, what: str = "the face was", where: str = "") -> str:
        """The notice for faces rendered ``upscale`` times smaller than they are."""
        trained = f", trained on {self.image_size} px crops" if self.image_size else ""
        return (f"{what} stylized at this style's face size ({self.face_size:.0f} px between the "
                f"outer eye corners{trained}) and scaled back up {upscale:.1f}x{where}, so "
                f"{'it looks' if what.endswith(' was') else 'they look'} soft (the rest of the "
                "picture keeps its resolution); a style trained on larger crops (train.py "
                "--image_size) keeps more of a large face's detail")

    def video(self, tracker: "FaceTracker | None" = None) -> "PortraitVideo":
        """A portrait session for the consecutive frames of one video (see :class:`PortraitVideo`)."""
        return PortraitVideo(self, tracker)

    def render(self, rgb: np.ndarray, faces: list[Face], scales: list[float]) -> np.ndarray:
        """The cartoon of ``rgb`` at its own resolution with each face of ``faces`` whose
        ``scales`` entry (``face_size`` / its inter-ocular distance, limited to [MIN_SCALE,
        MAX_SCALE] and MAX_WORK_PIXELS) differs from 1 by more than SCALE_TOLERANCE re-done in
        its crop at that scale and pasted back (largest first, so a smaller face in a larger
        one's crop is pasted last). Sets ``last_renders``."""
        out = self.toon.stylize(rgb)
        self.last_renders = []
        for face, want in zip(faces, scales):
            if abs(math.log(want)) < math.log(SCALE_TOLERANCE):
                continue
            out, used = self._blend_face(rgb, out, face, want, with_scale=True)
            if used is not None:
                self.last_renders.append((face, used))
        return out

    def _blend_face(self, rgb: np.ndarray, out: np.ndarray, face: Face, scale: float,
                    with_scale: bool = False):
        """``out`` with ``face`` re-done at ``scale`` in its crop (a new array); with
        ``with_scale`` also the scale used (None: the crop was too small to do)."""
        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = face.box
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        half = FACE_CONTEXT * max(x1 - x0, y1 - y0) / 2
        bx0, by0 = max(0, int(cx - half)), max(0, int(cy - half))
        bx1, by1 = min(w, int(math.ceil(cx + half))), min(h, int(math.ceil(cy + half)))
        if bx1 - bx0 < 8 or by1 - by0 < 8:
            return (out, None) if with_scale else out
        ch, cw = by1 - by0, bx1 - bx0
        scale = self._limit(scale, ch, cw)
        # the stylizer's context around the crop comes from the image where it has some
        pad = math.ceil(getattr(self.toon, "context", 0) / scale)
        cy0, cx0, cy1, cx1 = max(0, by0 - pad), max(0, bx0 - pad), min(h, by1 + pad), min(w, bx1 + pad)
        styl = self._stylize_scaled(rgb[cy0:cy1, cx0:cx1], scale)[by0 - cy0:by1 - cy0, bx0 - cx0:bx1 - cx0]
        mask = face_mask((bx0, by0, bx1, by1), face.box, half)[..., None]
        region = out[by0:by1, bx0:bx1].astype(np.float32)
        mixed = region * (1.0 - mask) + styl.astype(np.float32) * mask
        out = out.copy()
        out[by0:by1, bx0:bx1] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
        return (out, scale) if with_scale else out


# ------------------------------------------------------------------------------------ video

# Tracking constants (frame units: a video's frames are the time axis, whatever its fps).
TRACK_IOU = 0.3          # a detection continues a track when their boxes overlap this much
TRACK_MAX_MISSED = 5     # frames a confirmed track is kept without a detection (detector misses)
TRACK_MIN_HITS = 2       # detections in a row before a face entering mid-video is used
# One-Euro filter (Casiez, Roussel and Vogel, CHI 2012, "1 Euro filter: a simple speed-based
# low-pass filter for noisy input in interactive systems"), in cycles per frame. At rest the
# cutoff 0.03 is an exponential average of weight 0.16 (noise std x 0.29); it rises by 0.5 per
# face side (or log-size unit) per frame of speed: detector noise of 4% of the side leaves
# about a third of it, and a face moving a tenth of its side per frame is followed about two
# frames behind, which the crop's context (FACE_CONTEXT) absorbs.
ONE_EURO_MIN_CUTOFF = 0.03
ONE_EURO_BETA = 0.5
ONE_EURO_D_CUTOFF = 0.2
# The scale a face is stylized at is held while the wanted one (face_size / smoothed
# inter-ocular distance) stays within 5% of it: every change of scale re-renders the face
# crop at another size, which is what flickers; the inter-ocular estimate itself is only good
# to about +-8% (see the module docstring).
SCALE_HOLD = 1.05


def _smoothing_factor(cutoff: np.ndarray | float) -> np.ndarray | float:
    """Exponential smoothing weight of a first-order low-pass at ``cutoff`` cycles per sample
    (Casiez et al. 2012: alpha = 1 / (1 + tau / T_e), tau = 1 / (2 pi f_c), T_e = 1 sample)."""
    return 1.0 / (1.0 + 1.0 / (2.0 * math.pi * cutoff))


class OneEuroFilter:
    """The 1 Euro filter (Casiez, Roussel and Vogel 2012) on a vector, one sample per frame.

    x_hat = a(f_c) x + (1 - a(f_c)) x_hat_prev with f_c = min_cutoff + beta |dx_hat| / unit,
    dx_hat the low-passed (``d_cutoff``) change per frame: slow changes (noise on a face at rest)
    are smoothed hard, fast ones (a moving face) followed closely. ``unit`` (per call) gives
    the speed of each component in comparable units (here: pixels per face side).
    """

    def __init__(self, x0: np.ndarray, min_cutoff: float = ONE_EURO_MIN_CUTOFF,
                 beta: float = ONE_EURO_BETA, d_cutoff: float = ONE_EURO_D_CUTOFF):
        self.x = np.asarray(x0, np.float64).copy()
        self.dx = np.zeros_like(self.x)
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff

    def __call__(self, x: np.ndarray, unit: np.ndarray | float = 1.0) -> np.ndarray:
        x = np.asarray(x, np.float64)
        a_d = _smoothing_factor(self.d_cutoff)
        self.dx = a_d * (x - self.x) + (1.0 - a_d) * self.dx
        a = _smoothing_factor(self.min_cutoff + self.beta * np.abs(self.dx) / unit)
        self.x = a * x + (1.0 - a) * self.x
        return self.x.copy()


@dataclass
class _Track:
    id: int
    filter: OneEuroFilter
    score: float
    hits: int = 1
    missed: int = 0
    confirmed: bool = False

    def face(self) -> Face:
        cx, cy, log_w, log_h, log_iod = self.filter.x
        w, h = math.exp(log_w), math.exp(log_h)
        return Face((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), math.exp(log_iod),
                    self.score, self.id)


def _state(face: Face) -> np.ndarray:
    """[centre x, centre y, log width, log height, log inter-ocular] of a detection."""
    x0, y0, x1, y1 = face.box
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2, math.log(max(x1 - x0, 1e-3)),
                     math.log(max(y1 - y0, 1e-3)), math.log(face.interocular)])


class FaceTracker:
    """Faces across the consecutive frames of a video: detections matched to tracks, smoothed.

    Each frame's detections are matched to the tracks greedily by box IoU (highest first,
    at least ``iou``), as SORT does (Bewley et al. 2016, "Simple online and realtime
    tracking") without its motion model; a matched track's box centre, log size and log
    inter-ocular distance go through a :class:`OneEuroFilter`. A track without a detection
    keeps its last smoothed face for up to ``max_missed`` frames (a detector miss must not
    flip the frame's scale), then ends. An unmatched detection starts a track, used after
    ``min_hits`` detections in a row (a one-frame false detection changes nothing) or at
    once on the video's first frame.
    """

    def __init__(self, iou: float = TRACK_IOU, max_missed: int = TRACK_MAX_MISSED,
                 min_hits: int = TRACK_MIN_HITS, min_cutoff: float = ONE_EURO_MIN_CUTOFF,
                 beta: float = ONE_EURO_BETA, d_cutoff: float = ONE_EURO_D_CUTOFF):
        self.iou, self.max_missed, self.min_hits = iou, max_missed, min_hits
        self._filter_args = (min_cutoff, beta, d_cutoff)
        self.tracks: list[_Track] = []
        self.frames = 0
        self._next_id = 0

    def update(self, detections: list[Face]) -> list[Face]:
        """The faces to use for the next frame, given its ``detections``: confirmed tracks
        (smoothed, ``Face.track`` set), largest inter-ocular distance first."""
        pairs = sorted(((_iou(t.face().box, d.box), ti, di) for ti, t in enumerate(self.tracks)
                        for di, d in enumerate(detections)), reverse=True)
        used_t, used_d = set(), set()
        for overlap, ti, di in pairs:
            if overlap < self.iou:
                break
            if ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            t, d = self.tracks[ti], detections[di]
            side = math.exp(0.5 * (t.filter.x[2] + t.filter.x[3]))
            t.filter(_state(d), np.array([side, side, 1.0, 1.0, 1.0]))
            t.score, t.hits, t.missed = d.score, t.hits + 1, 0
            t.confirmed = t.confirmed or t.hits >= self.min_hits
        kept = []
        for ti, t in enumerate(self.tracks):
            if ti not in used_t:
                t.missed += 1
                t.hits = 0
                if not t.confirmed or t.missed > self.max_missed:
                    continue
            kept.append(t)
        for di, d in enumerate(detections):
            if di not in used_d:
                kept.append(_Track(self._next_id, OneEuroFilter(_state(d), *self._filter_args),
                                   d.score, confirmed=self.frames == 0 or self.min_hits <= 1))
                self._next_id += 1
        self.tracks = kept
        self.frames += 1
        faces = [t.face() for t in self.tracks if t.confirmed]
        return sorted(faces, key=lambda f: -f.interocular)


class PortraitVideo:
    """Portrait mode over the consecutive frames of one video (``PortraitProcessor.video()``).

    Per frame: the detector's faces go through a :class:`FaceTracker` (smoothed boxes and
    scales, short detector misses bridged, faces entering and leaving handled); each track
    keeps the scale it is stylized at while the wanted scale stays within ``SCALE_HOLD`` of it;
    as for a still picture (:meth:`PortraitProcessor.render`), the frame is stylized at its
    own resolution and each tracked face in its crop at its scale, pasted back; frames without
    a tracked face are stylized whole at their own scale. Instead of a notice per frame,
    :meth:`notices` says once how many frames had no face and how far faces were scaled back up.
    """

    def __init__(self, processor: PortraitProcessor, tracker: FaceTracker | None = None):
        self.proc = processor
        self.tracker = tracker or FaceTracker()
        self.frames = 0
        self.faceless = 0
        self._scales: dict[int, float] = {}  # track id -> scale in use
        self.last_faces: list[Face] = []
        self.soft_frames = 0      # frames with a face scaled back up more than UPSCALE_NOTICE x
        self.max_upscale = 0.0

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """The next (H, W, 3) uint8 frame -> its (H, W, 3) uint8 cartoon (strength not applied)."""
        faces = self.last_faces = self.tracker.update(self.proc.detector.detect(rgb))
        self.frames += 1
        if not faces:
            self.faceless += 1
            self._scales = {}
            self.proc.last_renders = []
            return self.proc.toon.stylize(rgb)
        scales: dict[int, float] = {}
        for f in faces:
            want = self.proc.face_size / f.interocular
            held = self._scales.get(f.track)
            scales[f.track] = (want if held is None or abs(math.log(want / held)) > math.log(SCALE_HOLD)
                               else held)
        self._scales = scales
        out = self.proc.render(rgb, faces, [scales[f.track] for f in faces])
        upscale = max((1.0 / s for _, s in self.proc.last_renders), default=1.0)
        if upscale > UPSCALE_NOTICE:
            self.soft_frames += 1
            self.max_upscale = max(self.max_upscale, upscale)
        return out

    def notices(self) -> list[str]:
        """One-line remarks about the video so far (frames without a face; faces that had to
        be scaled back up a lot), each once."""
        out = []
        if self.faceless == self.frames and self.frames:
            out.append(f"no face found in any of the {self.frames} frames; cartoonized them "
                       "whole at their own scale")
        elif self.faceless:
            out.append(f"no face in {self.faceless} of {self.frames} frames; those were "
                       "cartoonized whole at their own scale")
        if self.soft_frames:
            out.append(self.proc.soft_notice(self.max_upscale, "faces were",
                                             f" (at most; in {self.soft_frames} of "
                                             f"{self.frames} frames)"))
        return out
