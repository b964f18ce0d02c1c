"""Portrait mode: stylize faces at the scale the generator was trained at (DCT-Net style).

The generator learned faces of one size: the checkpoint's ``face_size``, the median
inter-ocular distance (mediapipe FaceMesh outer eye corners, points 33 and 263) of its training
photos at the training crop size. A face much larger or smaller than that comes out with the
wrong amount of abstraction, so:

1. faces are found by the detector ``--landmark-detector`` names
   (:func:`faces.face_detectors.face_detector_for`: mediapipe FaceDetection, dlib's HOG
   detector and 68-point predictor, or the Tasks FaceLandmarker), with their inter-ocular
   distances (how they are measured: faces/face_detectors.py);
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

Clips: :class:`PortraitVideo` stylizes the faces that :class:`faces.tracking.FaceTracker`
follows across frames, each at a held scale.
"""
from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np

from faces.boxes import Face
from faces.face_detectors import face_detector_for
from faces.tracking import FaceTracker


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
SCALE_TOLERANCE = 1.15   # a face within 15% of the picture's own scale is not re-done
FACE_CONTEXT = 2.2       # face crop side / detected face box side
FACE_MASK_INNER = 1.2    # the paste-back mask is 1 over the face box grown by this (chin, hairline)
UPSCALE_NOTICE = 2.0     # a face rendered this many times smaller than it is gets a notice
MIN_SCALE, MAX_SCALE = 1 / 8, 4.0
MAX_WORK_PIXELS = 16_000_000  # cap on a scaled face crop (the picture itself runs in tiles)


def default_face_size(image_size: int | None) -> float:
    """The FFHQ face size at ``image_size`` (for checkpoints whose ``face_size`` is None)."""
    return FFHQ_INTEROCULAR_PER_WIDTH * float(image_size or 256)


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

# The scale a face is stylized at is held while the wanted one (face_size / smoothed
# inter-ocular distance) stays within 5% of it: every change of scale re-renders the face
# crop at another size, which is what flickers; the inter-ocular estimate itself is only good
# to about +-8% (faces/face_detectors.py).
SCALE_HOLD = 1.05


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
