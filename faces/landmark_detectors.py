"""Landmark detectors: one interface, three backends, chosen by name.

==================  =========================================================  ==========
name                backend                                                    topology
==================  =========================================================  ==========
``mediapipe``       mediapipe FaceMesh, legacy ``mp.solutions`` API; its        468 points
                    models ship inside the mediapipe 0.10.21 wheel (offline).
                    The API was removed in mediapipe 0.10.30; 0.10.21 needs
                    numpy<2 and has no wheels for Python 3.13.
``mediapipe-tasks`` mediapipe Tasks FaceLandmarker (any mediapipe >= 0.10.x),   468 points
                    from a local ``face_landmarker.task`` file (``--landmark-    (first 468
                    model``); the first 468 of its 478 points are the FaceMesh  of 478)
                    points, the last 10 (irises) are dropped.
``dlib``            dlib HOG face detector + the 68-point shape predictor       68 points
                    of face-recognition-models (weights inside the package).    (iBUG 300-W)
==================  =========================================================  ==========

Default: ``mediapipe`` where its legacy API is installed, else ``dlib`` (logged once, by
:func:`resolve_detector`).

Interface (every backend)::

    spec = resolve_detector("dlib")        # validates, one-line ToonFaceError if unusable
    with spec.build() as det:
        pts = det.detect(rgb)              # (N, 2) float32 continuous pixel (x, y), or None
        faces = det.detect_faces(rgb)      # every face, most confident first (portrait mode)

``detect`` takes any array ``media.colour.to_uint8_rgb`` accepts. Coordinates are
continuous: pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)`` (mediapipe's normalised coordinates
times width / height; dlib's integer pixel-index parts plus 0.5). ``spec.key`` names the
detector *and* its model (the Tasks model file's SHA-256), so a landmark cache never mixes the
points of two detectors.

Why detection runs in its own pass: mediapipe graphs are not picklable, and a DataLoader worker
forked from a parent that has built a graph crashes (malloc abort / SIGSEGV). The mediapipe
detectors refuse to run in a process other than the one that built them; datasets only read
the landmark cache (faces/cache.py), which prepare.py or the trainer fills first.

Nothing heavy happens at import: mediapipe (which imports matplotlib.pyplot) and dlib are
imported when a detector is built, and availability checks look at installed files only.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

import numpy as np

from media.colour import to_uint8_rgb
from faces.topology import IBUG_68, MEDIAPIPE_468, Topology
from utils.errors import ToonFaceError
from faces.reference_face import reference_image, reference_points
from utils.native_logs import quiet_native_stderr

log = logging.getLogger(__name__)

DETECTOR_NAMES = ("mediapipe", "mediapipe-tasks", "dlib")
TOPOLOGY_OF_DETECTOR = MappingProxyType(
    {"mediapipe": MEDIAPIPE_468, "mediapipe-tasks": MEDIAPIPE_468, "dlib": IBUG_68})
LEGACY_MEDIAPIPE = "mediapipe==0.10.21"
DLIB_REQUIREMENT = "dlib-bin==20.0.1.post1 face-recognition-models==0.3.0"
DLIB_PREDICTOR_68 = "shape_predictor_68_face_landmarks.dat"
TASKS_MODEL_NAME = "face_landmarker.task"
TASKS_MODEL_URL = ("https://storage.googleapis.com/mediapipe-models/face_landmarker/"
                   "face_landmarker/float16/1/face_landmarker.task")
# The two models a FaceLandmarker bundle (a zip) must hold; the blendshape model is optional.
TASKS_BUNDLE_MEMBERS = ("face_detector.tflite", "face_landmarks_detector.tflite")
TFLITE_MAGIC = b"TFL3"            # flatbuffer file identifier at byte 4 of a .tflite model
# dlib's HOG window is 80x80, so a face smaller than that is found only in an upsampled image.
# Images are doubled until their shorter side reaches DLIB_MIN_WORK_SIDE (at most twice: a face
# in a 64-px training crop is found at 256 px), and once more up to DLIB_UPSAMPLE_MAX_SIDE
# (faces down to ~40 px in larger photos); above that the 4x cost is not worth it.
DLIB_MIN_WORK_SIDE = 256
DLIB_UPSAMPLE_MAX_SIDE = 1024


class DetectorUnavailable(ToonFaceError, ImportError):
    """A detector's library (or its bundled model) is not installed here: a one-line user error
    (exit 2) that is also an ImportError, so callers that can do without landmarks (training
    with ``--w5 0``) catch it as the missing import it is."""


# ---------------------------------------------------------------------------------------------
# What is installed (file checks only: nothing is imported)
# ---------------------------------------------------------------------------------------------
def _package_dir(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(spec.origin).parent if spec.origin else None


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "(unknown version)"


def mediapipe_legacy_problem() -> str | None:
    """``None`` if mediapipe with the legacy FaceMesh API (``mp.solutions``) is installed,
    else why not, in a few words."""
    root = _package_dir("mediapipe")
    if root is None:
        return "mediapipe is not installed"
    if not (root / "python" / "solutions" / "face_mesh.py").is_file():
        return (f"mediapipe {_version('mediapipe')} has no legacy FaceMesh API "
                "(mp.solutions was removed in mediapipe 0.10.30)")
    return None


def mediapipe_tasks_problem() -> str | None:
    """``None`` if mediapipe with the Tasks FaceLandmarker is installed, else why not."""
    root = _package_dir("mediapipe")
    if root is None:
        return "mediapipe is not installed"
    if not (root / "tasks" / "python" / "vision" / "face_landmarker.py").is_file():
        return f"mediapipe {_version('mediapipe')} has no Tasks FaceLandmarker"
    return None


def dlib_model_file(name: str) -> Path:
    """Path of a model file shipped in face-recognition-models (e.g. the 68-point predictor).

    The package's ``__init__`` imports pkg_resources (gone from current setuptools), so the
    folder is found from the import spec without importing it. Raises ToonFaceError (one
    line) when the package or the file is missing.
    """
    root = _package_dir("face_recognition_models")
    if root is None:
        raise DetectorUnavailable(f"dlib landmarks need face-recognition-models (pip install {DLIB_REQUIREMENT})")
    path = root / "models" / name
    if not path.is_file():
        raise DetectorUnavailable(f"{path} is missing: reinstall face-recognition-models==0.3.0")
    return path


def dlib_problem() -> str | None:
    """``None`` if dlib and the 68-point predictor are installed, else why not."""
    if _package_dir("dlib") is None:
        return "dlib is not installed"
    try:
        dlib_model_file(DLIB_PREDICTOR_68)
    except ToonFaceError as exc:
        return str(exc)
    return None


def check_tasks_model(path: str | os.PathLike) -> str:
    """Validate a FaceLandmarker model file; returns its SHA-256 (hex).

    A ``.task`` file is a zip bundle holding ``face_detector.tflite`` and
    ``face_landmarks_detector.tflite`` (TFLite flatbuffers, identifier ``TFL3``), stored
    uncompressed and unencrypted (all that mediapipe reads). Raises ToonFaceError (one line
    naming the file to download) when the file is missing, is a folder, or is not such a
    bundle. Whether its model gives the right points is checked when it is built
    (:func:`check_reference_face`).
    """
    p = Path(path)
    fetch = f"download {TASKS_MODEL_NAME} from {TASKS_MODEL_URL}"
    if not p.exists():
        raise ToonFaceError(f"landmark model not found: {p} ({fetch})")
    if not p.is_file():
        raise ToonFaceError(f"landmark model {p} is not a file ({fetch})")
    not_model = f"{p} is not a mediapipe face landmarker model ({fetch})"
    try:
        with zipfile.ZipFile(p) as z:
            names = set(z.namelist())
            if not set(TASKS_BUNDLE_MEMBERS) <= names:
                raise ToonFaceError(not_model)
            for member in TASKS_BUNDLE_MEMBERS:
                # mediapipe maps the bundle's members in place: it reads neither encrypted nor
                # compressed ones (and zipfile would raise RuntimeError / NotImplementedError)
                info = z.getinfo(member)
                if info.flag_bits & 0x1:
                    raise ToonFaceError(f"{p}: its {member} is encrypted; mediapipe reads only plain, "
                                        f"uncompressed bundles ({fetch})")
                if info.compress_type != zipfile.ZIP_STORED:
                    raise ToonFaceError(f"{p}: its {member} is compressed (zip method "
                                        f"{info.compress_type}); mediapipe reads only uncompressed "
                                        f"bundles ({fetch})")
                with z.open(member) as f:
                    if f.read(8)[4:8] != TFLITE_MAGIC:
                        raise ToonFaceError(not_model)
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError, ValueError):
        raise ToonFaceError(not_model) from None
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# The choice of detector
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DetectorSpec:
    """A detector chosen and validated, not yet built (cheap, picklable, hashable).

    name: one of ``DETECTOR_NAMES``; model: the Tasks model file (``mediapipe-tasks`` only);
    model_sha256: its hash (set by :func:`resolve_detector`); note: the line logged when the
    name was chosen by default (so a CLI can show it once).
    """

    name: str
    model: Path | None = None
    model_sha256: str | None = None
    note: str | None = field(default=None, compare=False)

    def __post_init__(self):
        if self.name not in DETECTOR_NAMES:
            raise ToonFaceError(f"unknown landmark detector {self.name!r} "
                                f"(choose {', '.join(DETECTOR_NAMES[:-1])} or {DETECTOR_NAMES[-1]})")

    @property
    def topology(self) -> Topology:
        return TOPOLOGY_OF_DETECTOR[self.name]

    @property
    def key(self) -> str:
        """What a landmark cache records: the detector and, for Tasks, its model's hash."""
        if self.name == "mediapipe-tasks":
            return f"mediapipe-tasks:sha256={(self.model_sha256 or '?')[:16]}"
        return self.name

    def build(self, **kwargs) -> "LandmarkDetector":
        """Build the detector (imports its library). kwargs go to the backend's constructor.
        Raises ToonFaceError (one line) when the backend cannot be built here."""
        if self.name == "mediapipe":
            return FaceMeshDetector(**kwargs)
        if self.name == "mediapipe-tasks":
            if self.model is None:
                raise ToonFaceError("--landmark-detector mediapipe-tasks needs --landmark-model "
                                    f"PATH (download {TASKS_MODEL_NAME} from {TASKS_MODEL_URL})")
            return FaceLandmarkerDetector(self.model, **kwargs)
        return DlibLandmarkDetector(**kwargs)


def default_detector_name() -> str:
    """``mediapipe`` where its legacy API is installed, else ``dlib``."""
    return "mediapipe" if mediapipe_legacy_problem() is None else "dlib"


def resolve_detector(name: str | DetectorSpec | None = None,
                     model: str | os.PathLike | None = None) -> DetectorSpec:
    """Check a detector choice before any work; returns the validated :class:`DetectorSpec`.

    name: ``mediapipe``, ``mediapipe-tasks``, ``dlib``, a spec (returned as is), or ``None``
        for the default (``mediapipe`` where its legacy API is installed, else ``dlib``; the
        fallback is logged, and kept in ``spec.note``).
    model: the FaceLandmarker ``.task`` file; only with ``mediapipe-tasks``, which needs it.
    Raises ToonFaceError with one line for: an unknown name, a backend that is not installed
    (:class:`DetectorUnavailable`, also an ImportError), a model given to a backend that takes
    none, a model file that is missing or not a model.
    """
    if isinstance(name, DetectorSpec):
        return name
    note = None
    if name is None:
        problem = mediapipe_legacy_problem()
        name = "mediapipe" if problem is None else "dlib"
        if problem is not None and model is None:
            note = (f"landmarks: {problem}, so dlib's 68-point detector is used "
                    "(--landmark-detector mediapipe|mediapipe-tasks|dlib to choose)")
        elif model is not None:
            name = "mediapipe-tasks"      # a model file alone says which backend reads it
    spec = DetectorSpec(name)             # validates the name
    if model is not None and name != "mediapipe-tasks":
        raise ToonFaceError(f"--landmark-model is read only by --landmark-detector mediapipe-tasks "
                            f"(not {name})")
    if name == "mediapipe":
        problem = mediapipe_legacy_problem()
        if problem:
            raise DetectorUnavailable(f"--landmark-detector mediapipe needs {LEGACY_MEDIAPIPE} (Python "
                                f"3.9-3.12, numpy<2) but {problem}: pip install {LEGACY_MEDIAPIPE} "
                                "'numpy<2', or use --landmark-detector dlib")
        spec = DetectorSpec(name, note=note)
    elif name == "mediapipe-tasks":
        problem = mediapipe_tasks_problem()
        if problem:
            raise DetectorUnavailable(f"--landmark-detector mediapipe-tasks needs mediapipe but {problem}: "
                                "pip install mediapipe, or use --landmark-detector dlib")
        if model is None:
            raise ToonFaceError("--landmark-detector mediapipe-tasks needs --landmark-model PATH "
                                f"(download {TASKS_MODEL_NAME} from {TASKS_MODEL_URL})")
        path = Path(model).expanduser()
        spec = DetectorSpec(name, path.resolve(), check_tasks_model(path))
    else:
        problem = dlib_problem()
        if problem:
            raise DetectorUnavailable(f"--landmark-detector dlib needs {DLIB_REQUIREMENT} but {problem}: "
                                f"pip install {DLIB_REQUIREMENT}")
        spec = DetectorSpec(name, note=note)
    if note:
        log.info("%s", note)
    return spec


# ---------------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------------
class LandmarkDetector(Protocol):
    """What every backend offers (see the module docstring)."""

    name: str
    topology: Topology

    def detect(self, image) -> np.ndarray | None: ...
    def detect_faces(self, image) -> list[np.ndarray]: ...
    def close(self) -> None: ...


class _ProcessBound:
    """Shared behaviour: context manager, refuses pickling and use in another process."""

    name = ""
    topology = MEDIAPIPE_468

    def _bind(self) -> None:
        self._pid = os.getpid()
        self._quiet_until_face = True

    def _quietly(self):
        """mediapipe's C++ core logs start-up chatter (absl W0000 lines) when a graph starts
        and on its first face: hold it back (utils/native_logs.py) until a face was found."""
        from contextlib import nullcontext


        return quiet_native_stderr() if getattr(self, "_quiet_until_face", False) else nullcontext()

    def _check_usable(self, handle) -> None:
        if handle is None:
            raise RuntimeError(f"{type(self).__name__} is closed")
        if os.getpid() != self._pid:
            raise RuntimeError(
                f"{type(self).__name__} was built in another process (a forked worker crashes on "
                "mediapipe graphs): build it in this process, or fill the landmark cache first")

    def detect(self, image) -> np.ndarray | None:
        """The first (most confident) face's ``(N, 2)`` points, or None: no face."""
        faces = self.detect_faces(image)
        return faces[0] if faces else None

    def detect_faces(self, image) -> list[np.ndarray]:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self):
        raise TypeError(f"{type(self).__name__} cannot be pickled; "
                        "read landmarks from a LandmarkCache in DataLoader workers")


class FaceMeshDetector(_ProcessBound):
    """mediapipe FaceMesh (legacy API, 468 points) on one image at a time::

        with FaceMeshDetector() as det:
            pts = det.detect(rgb)       # (468, 2) float32 pixel (x, y), or None: no face

    ``static_image_mode=True`` (every image on its own, no tracking). Raises ToonFaceError
    (one line) where mediapipe or its legacy API is missing.
    """

    name = "mediapipe"
    topology = MEDIAPIPE_468
    _UNBUILT = object()  # the graph is built at the first image

    def __init__(self, max_num_faces: int = 1, min_detection_confidence: float = 0.5,
                 refine_landmarks: bool = False):
        problem = mediapipe_legacy_problem()
        if problem:
            raise DetectorUnavailable(f"the mediapipe landmark detector needs {LEGACY_MEDIAPIPE} but "
                                f"{problem}: use --landmark-detector dlib")
        import mediapipe as mp  # heavy (imports matplotlib.pyplot): only here

        self._bind()
        self._mesh = None
        solutions = getattr(mp, "solutions", None)
        if solutions is None:   # files present but the API gone: a broken or newer install
            raise DetectorUnavailable(f"mediapipe {_version('mediapipe')} has no mp.solutions "
                                      f"(the legacy FaceMesh API): install {LEGACY_MEDIAPIPE} or "
                                      "use --landmark-detector dlib")
        # built at the first image, in the same quiet window as its first run: the graph's
        # calculators open on worker threads, and their chatter must not fall between two
        self._make = lambda: solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=max_num_faces,
            refine_landmarks=refine_landmarks,
            min_detection_confidence=min_detection_confidence)
        self._mesh = self._UNBUILT

    def detect_faces(self, image) -> list[np.ndarray]:
        """Every face found (at most ``max_num_faces``) as ``(468, 2)`` float32, in mediapipe's
        order (most confident first)."""
        self._check_usable(self._mesh)
        rgb = to_uint8_rgb(image)
        with self._quietly():
            if self._mesh is self._UNBUILT:
                self._mesh = self._make()
            result = self._mesh.process(rgb)
        self._quiet_until_face = self._quiet_until_face and not result.multi_face_landmarks
        h, w = rgb.shape[:2]
        return [np.array([(lm.x * w, lm.y * h) for lm in face.landmark[:MEDIAPIPE_468.num_points]],
                         dtype=np.float32)
                for face in result.multi_face_landmarks or []]

    def close(self) -> None:
        mesh = getattr(self, "_mesh", None)
        if mesh is not None and mesh is not self._UNBUILT and os.getpid() == self._pid:
            mesh.close()
        self._mesh = None


class FaceLandmarkerDetector(_ProcessBound):
    """mediapipe Tasks FaceLandmarker from a local ``face_landmarker.task`` file.

    Returns the first 468 of its 478 points (the FaceMesh points; the 10 iris points are
    dropped), so its maps use the same topology as ``FaceMeshDetector``. ``num_faces``: how
    many faces at most (1 for the landmark cache, more for portrait mode). Raises ToonFaceError
    (one line) when the file is missing or mediapipe cannot load it.
    """

    name = "mediapipe-tasks"
    topology = MEDIAPIPE_468

    def __init__(self, model: str | os.PathLike, num_faces: int = 1,
                 min_detection_confidence: float = 0.5):
        sha256 = check_tasks_model(model)
        problem = mediapipe_tasks_problem()
        if problem:
            raise DetectorUnavailable(f"the mediapipe-tasks landmark detector needs mediapipe but {problem}")
        import mediapipe as mp  # heavy: only here
        from mediapipe.tasks.python.core.base_options import BaseOptions
        from mediapipe.tasks.python.vision import face_landmarker as fl
        from mediapipe.tasks.python.vision.core.vision_task_running_mode import VisionTaskRunningMode

        self._bind()
        self._mp = mp
        options = fl.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(Path(model))),
            running_mode=VisionTaskRunningMode.IMAGE, num_faces=num_faces,
            min_face_detection_confidence=min_detection_confidence,
            min_face_presence_confidence=min_detection_confidence)
        self._landmarker = None
        try:
            with self._quietly():
                self._landmarker = fl.FaceLandmarker.create_from_options(options)
        except (RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ToonFaceError(f"mediapipe cannot load the landmark model {model}: {first} "
                                f"(download {TASKS_MODEL_NAME} from {TASKS_MODEL_URL})") from None
        try:
            check_reference_face(self, sha256, model)
        except BaseException:
            self.close()
            raise

    def detect_faces(self, image) -> list[np.ndarray]:
        """Every face found (at most ``num_faces``) as ``(468, 2)`` float32, in mediapipe's order."""
        self._check_usable(self._landmarker)
        rgb = to_uint8_rgb(image)
        h, w = rgb.shape[:2]
        with self._quietly():
            result = self._landmarker.detect(self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb))
        self._quiet_until_face = self._quiet_until_face and not result.face_landmarks
        return [np.array([(lm.x * w, lm.y * h) for lm in face[:MEDIAPIPE_468.num_points]],
                         dtype=np.float32)
                for face in result.face_landmarks or []]

    def close(self) -> None:
        if getattr(self, "_landmarker", None) is not None and os.getpid() == self._pid:
            self._landmarker.close()
        self._landmarker = None


# A landmark model is used only if it finds the reference face (faces/
# reference_face.py) with its points, on average, within this share of the eye distance of
# FaceMesh's (the raw FaceMesh model bundled without the 478-point head: about 1.0).
REFERENCE_MAX_NME = 0.25
_PLAUSIBLE_MODELS: set[str] = set()  # SHA-256 of the models that passed, in this process


def check_reference_face(detector, sha256: str, model) -> None:
    """Refuse (ToonFaceError, one line) a landmark model whose points on the reference face
    are not FaceMesh's: a bundle mediapipe loads can still be the wrong model (e.g. the raw
    FaceMesh model without the 478-point head gives points a whole eye distance off). Checked
    once per model file and process."""
    if sha256 in _PLAUSIBLE_MODELS:
        return
    want = reference_points()
    faces = detector.detect_faces(reference_image())
    where = f"landmark model {model}"
    if not faces:
        raise ToonFaceError(f"{where} finds no face in the reference photo (scikit-image's "
                            f"astronaut): not a usable face landmarker (download {TASKS_MODEL_NAME} "
                            f"from {TASKS_MODEL_URL})")
    got = faces[0]
    if got.shape != want.shape or not np.isfinite(got).all():
        raise ToonFaceError(f"{where} gives {got.shape[0]} points on the reference face, not "
                            f"{want.shape[0]} (download {TASKS_MODEL_NAME} from {TASKS_MODEL_URL})")
    nme = float(np.linalg.norm(got - want, axis=1).mean()) / MEDIAPIPE_468.inter_ocular_distance(want)
    if nme > REFERENCE_MAX_NME:
        raise ToonFaceError(f"{where} puts the reference face's landmarks {nme:.2f} eye distances "
                            f"from where they are (at most {REFERENCE_MAX_NME} allowed): not a "
                            f"478-point FaceLandmarker model (download {TASKS_MODEL_NAME} from "
                            f"{TASKS_MODEL_URL})")
    _PLAUSIBLE_MODELS.add(sha256)


def dlib_upsample(short_side: int) -> int:
    """How many times dlib doubles an image whose shorter side is ``short_side`` before HOG."""
    if short_side > DLIB_UPSAMPLE_MAX_SIDE:
        return 0
    up = 1
    while up < 2 and short_side * 2 ** up < DLIB_MIN_WORK_SIDE:
        up += 1
    return up


class DlibLandmarkDetector(_ProcessBound):
    """dlib: HOG face detector (``get_frontal_face_detector``) + the iBUG 68-point shape
    predictor of face-recognition-models (Kazemi & Sullivan, "One Millisecond Face Alignment
    with an Ensemble of Regression Trees", CVPR 2014).

    ``upsample``: times the image is doubled before HOG (default: :func:`dlib_upsample`).
    Faces are returned most confident first (HOG score); ``detect`` gives that one, as
    mediapipe does. dlib's part coordinates are
    pixel indices (centre of pixel i is i), so 0.5 is added to make them continuous. Raises
    ToonFaceError (one line) when dlib or the predictor file is missing.
    """

    name = "dlib"
    topology = IBUG_68

    def __init__(self, upsample: int | None = None, min_score: float = 0.0):
        problem = dlib_problem()
        if problem:
            raise DetectorUnavailable(f"the dlib landmark detector needs {DLIB_REQUIREMENT} but {problem}")
        import dlib  # only here

        self._bind()
        self.upsample = upsample
        self.min_score = float(min_score)
        self._dlib = dlib
        self._hog = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(dlib_model_file(DLIB_PREDICTOR_68)))

    def face_boxes(self, rgb: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        """HOG detections of a uint8 RGB image: ``((x0, y0, x1, y1), score)``, most confident
        first. Box corners are continuous pixel coordinates."""
        self._check_usable(self._hog)
        up = self.upsample
        if up is None:
            up = dlib_upsample(min(rgb.shape[:2]))
        rects, scores, _ = self._hog.run(rgb, up, self.min_score)
        boxes = [((float(r.left()), float(r.top()), float(r.right() + 1), float(r.bottom() + 1)), float(s))
                 for r, s in zip(rects, scores)]
        return sorted(boxes, key=lambda b: -b[1])

    def points_in_box(self, rgb: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """The 68 points of the face in ``box`` (continuous coordinates), ``(68, 2)`` float32."""
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        shape = self._predictor(rgb, self._dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
        return np.array([(shape.part(i).x + 0.5, shape.part(i).y + 0.5)
                         for i in range(IBUG_68.num_points)], dtype=np.float32)

    def detect_faces(self, image) -> list[np.ndarray]:
        """Every face HOG finds, as ``(68, 2)`` float32 points, most confident first."""
        rgb = to_uint8_rgb(image)
        return [self.points_in_box(rgb, box) for box, _ in self.face_boxes(rgb)]

    def close(self) -> None:
        self._hog = None
        self._predictor = None
