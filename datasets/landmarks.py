"""Facial landmarks: detection, on-disk cache, geometric transforms and the landmark map.

Pipeline (DESIGN.md section 2)::

    prepare.py PHOTO_DIR            # once: mediapipe FaceMesh on every photo -> cache file
    LandmarkCache(PHOTO_DIR).load() # datasets: read-only lookups, never mediapipe
    transform_landmarks(...)        # same resize / crop / flip as the image
    render_landmark_map(...)        # (2, H, W) float32 in [0, 1] for the landmark loss

Why detection is its own pass: mediapipe graphs are not picklable, and a DataLoader worker
forked from a parent that has built a graph crashes (malloc abort / SIGSEGV). So the prepare
step fills the cache before any loader starts, and datasets only *read* it. ``FaceMeshDetector``
refuses to run in a process other than the one that built it.

Coordinates: landmarks are float32 ``(468, 2)`` arrays of pixel ``(x, y)`` in *continuous*
image coordinates, i.e. mediapipe's normalised coordinates times the width / height: pixel
``(i, j)`` covers ``[i, i+1) x [j, j+1)`` and its centre is ``(i + 0.5, j + 0.5)``. In this
convention a resize is an exact multiplication (it matches cv2.resize's half-pixel centres), a
crop a subtraction and a horizontal flip ``x -> width - x``. ``None`` means "no face".

Cache file (one per photo folder): ``<photo_dir>/.toonface_landmarks.npz`` when the folder is
writable (and has a write bit: a folder marked read-only stays untouched, even for root), else ``$XDG_CACHE_HOME/toonface/landmarks/<sha1 of the absolute folder>.npz``
(``~/.cache`` without XDG_CACHE_HOME); ``--cache-file`` / ``cache_file=`` overrides both.
Entries are keyed by the path relative to the folder (POSIX separators) and validated against
the file's size and mtime_ns at every lookup: a changed file is a miss and is detected again.
"No face" and "unreadable" are cached too, so they are not retried until the file changes.
A truncated, corrupt or foreign cache file is ignored (and rebuilt), never trusted.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from datasets.images import list_images, read_image_rgb, to_uint8_rgb  # noqa: F401 (re-exported)
from utils.errors import ToonFaceError
from utils.io import atomic_write_bytes

log = logging.getLogger(__name__)

NUM_LANDMARKS = 468
CACHE_FILE_NAME = ".toonface_landmarks.npz"
CACHE_FORMAT_VERSION = 1
# Outer eye corners (the subject's right eye: 33, left eye: 263): inter-ocular distance.
RIGHT_EYE_OUTER = 33
LEFT_EYE_OUTER = 263


def inter_ocular_distance(points: np.ndarray) -> float:
    """Distance between the outer eye corners of (468, 2) landmarks, in their pixel units."""
    p = np.asarray(points, dtype=np.float64)
    return float(np.linalg.norm(p[RIGHT_EYE_OUTER] - p[LEFT_EYE_OUTER]))

# ---------------------------------------------------------------------------------------------
# Mesh connection sets, copied from mediapipe 0.10.21
# (mediapipe/python/solutions/face_mesh_connections.py) so that rendering never imports
# mediapipe; tests/datasets/test_landmarks.py checks they still equal mediapipe's.
# "LEFT"/"RIGHT" are the subject's sides, as in mediapipe.
# ---------------------------------------------------------------------------------------------
FACEMESH_LEFT_EYE = (
    (249, 390), (263, 249), (263, 466), (373, 374), (374, 380), (380, 381), (381, 382),
    (382, 362), (384, 398), (385, 384), (386, 385), (387, 386), (388, 387), (390, 373),
    (398, 362), (466, 388))
FACEMESH_RIGHT_EYE = (
    (7, 163), (33, 7), (33, 246), (144, 145), (145, 153), (153, 154), (154, 155), (155, 133),
    (157, 173), (158, 157), (159, 158), (160, 159), (161, 160), (163, 144), (173, 133),
    (246, 161))
FACEMESH_LEFT_EYEBROW = (
    (276, 283), (282, 295), (283, 282), (293, 334), (295, 285), (296, 336), (300, 293),
    (334, 296))
FACEMESH_RIGHT_EYEBROW = (
    (46, 53), (52, 65), (53, 52), (63, 105), (65, 55), (66, 107), (70, 63), (105, 66))
FACEMESH_LIPS = (
    (0, 267), (13, 312), (14, 317), (17, 314), (37, 0), (39, 37), (40, 39), (61, 146),
    (61, 185), (78, 95), (78, 191), (80, 81), (81, 82), (82, 13), (84, 17), (87, 14),
    (88, 178), (91, 181), (95, 88), (146, 91), (178, 87), (181, 84), (185, 40), (191, 80),
    (267, 269), (269, 270), (270, 409), (310, 415), (311, 310), (312, 311), (314, 405),
    (317, 402), (318, 324), (321, 375), (324, 308), (375, 291), (402, 318), (405, 321),
    (409, 291), (415, 308))
FACEMESH_NOSE = (
    (1, 19), (2, 326), (4, 1), (4, 45), (5, 4), (6, 197), (19, 94), (45, 220), (48, 64),
    (64, 98), (94, 2), (97, 2), (98, 97), (115, 48), (168, 6), (195, 5), (197, 195),
    (220, 115), (275, 4), (278, 344), (294, 278), (326, 327), (327, 294), (344, 440),
    (440, 275))
FACEMESH_FACE_OVAL = (
    (10, 338), (21, 54), (54, 103), (58, 132), (67, 109), (93, 234), (103, 67), (109, 10),
    (127, 162), (132, 93), (136, 172), (148, 176), (149, 150), (150, 136), (152, 148),
    (162, 21), (172, 58), (176, 149), (234, 127), (251, 389), (284, 251), (288, 397),
    (297, 332), (323, 361), (332, 284), (338, 297), (356, 454), (361, 288), (365, 379),
    (377, 152), (378, 400), (379, 378), (389, 356), (397, 365), (400, 377), (454, 323))

#: Every contour drawn into channel 0 of the landmark map.
CONTOUR_CONNECTIONS = {
    "left_eye": FACEMESH_LEFT_EYE,
    "right_eye": FACEMESH_RIGHT_EYE,
    "left_eyebrow": FACEMESH_LEFT_EYEBROW,
    "right_eyebrow": FACEMESH_RIGHT_EYEBROW,
    "lips": FACEMESH_LIPS,
    "nose": FACEMESH_NOSE,
    "face_oval": FACEMESH_FACE_OVAL,
}


def _indices(connections: Iterable[tuple[int, int]]) -> tuple[int, ...]:
    return tuple(sorted({i for edge in connections for i in edge}))


# Regions filled into channel 1: convex hulls (eyes, mouth = outer lip contour, nose) and
# thick polylines (brows, which are thin arcs whose hull would cover the eyelid).
REGION_HULLS = {
    "left_eye": _indices(FACEMESH_LEFT_EYE),
    "right_eye": _indices(FACEMESH_RIGHT_EYE),
    "mouth": _indices(FACEMESH_LIPS),
    "nose": _indices(FACEMESH_NOSE),
}
REGION_THICK_LINES = {"left_eyebrow": FACEMESH_LEFT_EYEBROW, "right_eyebrow": FACEMESH_RIGHT_EYEBROW}

# Rendering sizes are given for a face whose outer eye corners are REFERENCE_IOD pixels apart
# (the median of aligned FFHQ faces at 256x256) and scale with the face: with the resolution
# for aligned faces, and without blurring a small face in a large photo into a blob.
REFERENCE_IOD = 90.0
CONTOUR_SIGMA = 1.5          # Gaussian softening of the 1-px contour lines, pixels at reference
REGION_SIGMA = 3.0           # softening of the region masks, pixels at reference
BROW_THICKNESS = 5.0         # brows are drawn as lines this thick in channel 1, at reference
_SUBPIXEL_SHIFT = 4          # cv2 drawing with 1/16-pixel precision


# ---------------------------------------------------------------------------------------------
# Image boundary
# ---------------------------------------------------------------------------------------------
# ---------------------------------------------------------------------------------------------
# Detection
# ---------------------------------------------------------------------------------------------
class FaceMeshDetector:
    """mediapipe FaceMesh (468 points) on one image at a time.

    Built in the constructor (``import mediapipe`` pulls in matplotlib.pyplot, so nothing of it
    happens at import time). Use in the process that built it, outside DataLoader workers::

        with FaceMeshDetector() as det:
            pts = det.detect(rgb)       # (468, 2) float32 pixel (x, y), or None: no face
    """

    def __init__(self, max_num_faces: int = 1, min_detection_confidence: float = 0.5,
                 refine_landmarks: bool = False):
        import mediapipe as mp  # heavy: only here

        self._pid = os.getpid()
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=max_num_faces,
            refine_landmarks=refine_landmarks,
            min_detection_confidence=min_detection_confidence)

    def detect(self, image) -> np.ndarray | None:
        """image: any array ``to_uint8_rgb`` accepts. Returns the first face's (468, 2) points."""
        if self._mesh is None:
            raise RuntimeError("FaceMeshDetector is closed")
        if os.getpid() != self._pid:
            raise RuntimeError(
                "FaceMeshDetector was built in another process (a forked worker crashes on "
                "mediapipe graphs): build it in this process, or fill the landmark cache first")
        rgb = to_uint8_rgb(image)
        result = self._mesh.process(rgb)
        if not result.multi_face_landmarks:
            return None
        h, w = rgb.shape[:2]
        lms = result.multi_face_landmarks[0].landmark
        pts = np.array([(lm.x * w, lm.y * h) for lm in lms[:NUM_LANDMARKS]], dtype=np.float32)
        return pts

    def close(self) -> None:
        if self._mesh is not None and os.getpid() == self._pid:
            self._mesh.close()
        self._mesh = None

    def __enter__(self) -> "FaceMeshDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self):
        raise TypeError("FaceMeshDetector (a mediapipe graph) cannot be pickled; "
                        "read landmarks from a LandmarkCache in DataLoader workers")


# ---------------------------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------------------------
class _Missing:
    """Sentinel: no valid cache entry (never detected, or the file changed since)."""

    def __repr__(self) -> str:
        return "MISSING"

    def __reduce__(self):
        return "MISSING"


MISSING = _Missing()

FOUND, NO_FACE, UNREADABLE = 0, 1, 2
_STATUS_NAMES = {FOUND: "found", NO_FACE: "no_face", UNREADABLE: "unreadable"}


def default_cache_file(photo_dir: str | os.PathLike) -> Path:
    """``<photo_dir>/.toonface_landmarks.npz`` if the folder is writable, else
    ``$XDG_CACHE_HOME/toonface/landmarks/<sha1(abs folder)>.npz`` (default ``~/.cache``)."""
    root = Path(photo_dir).resolve()
    # A folder without any write bit is read-only by intent, even for root (for whom
    # os.access says yes): shared datasets and fixtures must not gain a cache file.
    if os.access(root, os.W_OK) and root.is_dir() and root.stat().st_mode & 0o222:
        return root / CACHE_FILE_NAME
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha1(str(root).encode("utf-8")).hexdigest()
    return base / "toonface" / "landmarks" / f"{digest}.npz"


class LandmarkCache:
    """Landmarks of every image of one photo folder, stored in one ``.npz`` file.

    Datasets: ``cache = LandmarkCache(root).load()`` then ``cache.lookup(relpath)`` -> points,
    ``None`` (no face / unreadable) or ``MISSING`` (not cached or stale: run prepare.py).
    The prepare step: ``cache.load(); cache.fill()`` (detects what is missing, then saves).
    """

    def __init__(self, photo_dir: str | os.PathLike, cache_file: str | os.PathLike | None = None):
        self.photo_dir = Path(photo_dir)
        self.cache_file = Path(cache_file) if cache_file is not None else default_cache_file(photo_dir)
        # relpath -> (size, mtime_ns, status, points (468, 2) float32 or None)
        self._entries: dict[str, tuple[int, int, int, np.ndarray | None]] = {}
        self.load_error: str | None = None   # why an existing cache file was discarded
        self._dirty = False

    def __len__(self) -> int:
        return len(self._entries)

    # -- keys ----------------------------------------------------------------------------
    def relpath(self, path: str | os.PathLike) -> str:
        """Key of ``path``: relative to the photo folder, POSIX separators."""
        p = Path(path)
        if p.is_absolute():
            rel = os.path.relpath(p, self.photo_dir.absolute())
            if rel.startswith(".."):               # e.g. one side reached through a symlink
                rel = os.path.relpath(p.resolve(), self.photo_dir.resolve())
            p = Path(rel)
        return p.as_posix()

    def _stat(self, rel: str) -> tuple[int, int] | None:
        try:
            st = os.stat(self.photo_dir / rel)
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns

    # -- reading -------------------------------------------------------------------------
    def status(self, path: str | os.PathLike) -> str:
        """'found' | 'no_face' | 'unreadable' | 'missing' (not cached, stale or file gone)."""
        rel = self.relpath(path)
        entry = self._entries.get(rel)
        if entry is None or self._stat(rel) != entry[:2]:
            return "missing"
        return _STATUS_NAMES[entry[2]]

    def lookup(self, path: str | os.PathLike):
        """Points ``(468, 2)`` float32 (a copy), ``None`` (no face or unreadable) or ``MISSING``."""
        rel = self.relpath(path)
        entry = self._entries.get(rel)
        if entry is None or self._stat(rel) != entry[:2]:
            return MISSING
        return None if entry[3] is None else entry[3].copy()

    # -- persistence ---------------------------------------------------------------------
    def load(self) -> "LandmarkCache":
        """Read the cache file if there is one; a corrupt or foreign file is ignored."""
        self._entries = {}
        self.load_error = None
        if not self.cache_file.exists():
            return self
        try:
            with np.load(self.cache_file, allow_pickle=False) as z:
                version = int(z["format_version"])
                if version != CACHE_FORMAT_VERSION:
                    raise ValueError(f"format version {version}, expected {CACHE_FORMAT_VERSION}")
                paths, sizes, mtimes = z["paths"], z["sizes"], z["mtimes"]
                status, points = z["status"], z["points"]
            n = len(paths)
            if not (len(sizes) == len(mtimes) == len(status) == len(points) == n) or \
                    points.shape[1:] != (NUM_LANDMARKS, 2):
                raise ValueError("inconsistent array shapes")
            entries = {}
            for i in range(n):
                st = int(status[i])
                if st not in _STATUS_NAMES:
                    raise ValueError(f"bad status {st}")
                pts = None
                if st == FOUND:
                    pts = np.asarray(points[i], dtype=np.float32)
                    if not np.isfinite(pts).all():
                        raise ValueError("non-finite landmarks")
                entries[str(paths[i])] = (int(sizes[i]), int(mtimes[i]), st, pts)
        except Exception as e:  # truncated zip, bad arrays, anything: rebuild, never trust
            self.load_error = f"{type(e).__name__}: {e}"
            log.warning("landmark cache %s is unreadable (%s); it will be rebuilt",
                        self.cache_file, self.load_error)
            self._dirty = True
            return self
        self._entries = entries
        self._dirty = False
        return self

    def save(self) -> None:
        """Write the cache file atomically."""
        keys = sorted(self._entries)
        n = len(keys)
        points = np.full((n, NUM_LANDMARKS, 2), np.nan, dtype=np.float32)
        for i, k in enumerate(keys):
            if self._entries[k][3] is not None:
                points[i] = self._entries[k][3]
        buf = io.BytesIO()
        np.savez(buf,
                 format_version=np.int64(CACHE_FORMAT_VERSION),
                 paths=np.array(keys, dtype=np.str_) if n else np.zeros(0, dtype="<U1"),
                 sizes=np.array([self._entries[k][0] for k in keys], dtype=np.int64),
                 mtimes=np.array([self._entries[k][1] for k in keys], dtype=np.int64),
                 status=np.array([self._entries[k][2] for k in keys], dtype=np.int8),
                 points=points)
        try:
            atomic_write_bytes(self.cache_file, buf.getvalue())
        except OSError as e:
            raise ToonFaceError(f"cannot write the landmark cache {self.cache_file}: {e} "
                                "(choose another place with --cache-file)") from e
        self._dirty = False

    # -- filling (the prepare step; never inside DataLoader workers) ---------------------
    def fill(self, detector=None, paths: Sequence[str | os.PathLike] | None = None,
             progress: bool = True, recursive: bool = True, save_every: int = 2000) -> dict:
        """Detect landmarks of every image that has no valid entry, then save.

        detector: anything with ``detect(rgb) -> (468, 2) | None``; default: a
            ``FaceMeshDetector`` built only if something needs detecting, closed afterwards.
        paths: images to cover (absolute or relative to the folder); default: every image of
            the folder (``list_images``). Entries of files that no longer exist are dropped.
        Returns ``{"total", "found", "not_found", "unreadable": [relpaths], "cached",
        "detected"}``: found / not_found / unreadable count every image covered; ``cached``
        of them came from the cache and ``detected`` were (re)computed now.
        """
        if not self.photo_dir.is_dir():
            raise ToonFaceError(f"photo folder not found: {self.photo_dir}")
        if paths is None:
            paths = list_images(self.photo_dir, recursive=recursive)
        rels = [self.relpath(p) for p in paths]
        gone = [rel for rel in self._entries if self._stat(rel) is None]
        for rel in gone:                           # files deleted since they were cached
            del self._entries[rel]
        self._dirty |= bool(gone)

        summary = {"total": len(rels), "found": 0, "not_found": 0, "unreadable": [],
                   "cached": 0, "detected": 0}
        own_detector = detector is None
        since_save = 0
        try:
            it = rels
            if progress:
                from tqdm import tqdm
                it = tqdm(rels, desc="landmarks", unit="img", dynamic_ncols=True)
            for rel in it:
                key = self._stat(rel)
                entry = self._entries.get(rel)
                if entry is not None and key is not None and key == entry[:2]:
                    summary["cached"] += 1
                    st = entry[2]
                else:
                    if detector is None:
                        detector = FaceMeshDetector()
                    st = self._detect_one(rel, key, detector)
                    summary["detected"] += 1
                    since_save += 1
                    if since_save >= save_every:   # a crash loses at most save_every images
                        self.save()
                        since_save = 0
                if st == FOUND:
                    summary["found"] += 1
                elif st == NO_FACE:
                    summary["not_found"] += 1
                else:
                    summary["unreadable"].append(rel)
        finally:
            if own_detector and detector is not None:
                detector.close()
        if self._dirty or not self.cache_file.exists():
            self.save()
        return summary

    def _detect_one(self, rel: str, key: tuple[int, int] | None, detector) -> int:
        self._dirty = True
        try:
            rgb = read_image_rgb(self.photo_dir / rel)
        except OSError as e:
            log.info("unreadable image %s", e)
            if key is not None:                    # a vanished file is simply not cached
                self._entries[rel] = (key[0], key[1], UNREADABLE, None)
            return UNREADABLE
        pts = detector.detect(rgb)
        if pts is None:
            entry = (key[0], key[1], NO_FACE, None)
        else:
            pts = np.asarray(pts, dtype=np.float32)
            if pts.shape != (NUM_LANDMARKS, 2):
                raise ValueError(f"detector returned shape {pts.shape}, expected ({NUM_LANDMARKS}, 2)")
            entry = (key[0], key[1], FOUND, pts.copy())
        self._entries[rel] = entry
        return entry[2]


# ---------------------------------------------------------------------------------------------
# Transforms (pure numpy; new arrays, inputs untouched; None passes through)
# ---------------------------------------------------------------------------------------------
def resize_landmarks(points: np.ndarray | None, sx: float, sy: float) -> np.ndarray | None:
    """Image resized by factors (sx, sy) (new_w / old_w, new_h / old_h)."""
    if points is None:
        return None
    return (np.asarray(points, dtype=np.float32) * np.array([sx, sy], dtype=np.float32))


def crop_landmarks(points: np.ndarray | None, x0: float, y0: float) -> np.ndarray | None:
    """Image cropped to ``img[y0:, x0:]`` (top-left corner at (x0, y0))."""
    if points is None:
        return None
    return np.asarray(points, dtype=np.float32) - np.array([x0, y0], dtype=np.float32)


def flip_landmarks(points: np.ndarray | None, width: float) -> np.ndarray | None:
    """Image of this width flipped left-right (``img[:, ::-1]``). Indices are not swapped:
    point 33 stays point 33, now on the other side (the map draws both sides alike)."""
    if points is None:
        return None
    out = np.array(points, dtype=np.float32, copy=True)
    out[:, 0] = width - out[:, 0]
    return out


def transform_landmarks(points: np.ndarray | None, scale_xy: tuple[float, float] = (1.0, 1.0),
                        crop_xy: tuple[float, float] = (0.0, 0.0), flip: bool = False,
                        out_width: float | None = None) -> np.ndarray | None:
    """The image pipeline resize (by scale_xy) -> crop (at crop_xy) -> optional flip of the
    cropped image of width ``out_width``, applied to landmarks."""
    pts = resize_landmarks(points, *scale_xy)
    pts = crop_landmarks(pts, *crop_xy)
    if flip and pts is not None:
        if out_width is None:
            raise ValueError("flip=True needs out_width (the width of the cropped image)")
        pts = flip_landmarks(pts, out_width)
    return pts


# ---------------------------------------------------------------------------------------------
# Landmark map
# ---------------------------------------------------------------------------------------------
def _to_cv_fixed(points: np.ndarray) -> np.ndarray:
    # continuous coordinates -> pixel-index coordinates (centre of pixel i is i), fixed point
    return np.rint((points - 0.5) * (1 << _SUBPIXEL_SHIFT)).astype(np.int32)


def _soften(img: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return img
    return cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_CONSTANT)


def render_landmark_map(points: np.ndarray | None, height: int, width: int) -> np.ndarray:
    """Landmark map ``(2, height, width)`` float32 in [0, 1].

    Channel 0: thin soft contours of eyes, brows, lips, nose and face oval (anti-aliased 1-px
    lines, Gaussian sigma ``CONTOUR_SIGMA * s``, peak scaled to 1). Channel 1: soft region
    masks (filled eyes, mouth, nose; thick brows; sigma ``REGION_SIGMA * s``). The scale
    ``s = inter-ocular distance / REFERENCE_IOD`` follows the face (and so the resolution).
    ``points`` in continuous pixel coordinates of an image of this size (points outside it are
    fine: lines are clipped); ``None`` (no face) gives zeros.
    """
    out = np.zeros((2, height, width), dtype=np.float32)
    if points is None:
        return out
    pts = np.asarray(points, dtype=np.float32)
    if pts.shape != (NUM_LANDMARKS, 2):
        raise ValueError(f"expected points of shape ({NUM_LANDMARKS}, 2), got {pts.shape}")
    if not np.isfinite(pts).all():
        return out
    scale = inter_ocular_distance(pts) / REFERENCE_IOD
    fixed = _to_cv_fixed(pts)

    contours = np.zeros((height, width), dtype=np.uint8)
    lines = [np.stack([fixed[a], fixed[b]]) for conns in CONTOUR_CONNECTIONS.values()
             for a, b in conns]
    cv2.polylines(contours, lines, isClosed=False, color=255, thickness=1,
                  lineType=cv2.LINE_AA, shift=_SUBPIXEL_SHIFT)
    c = _soften(contours.astype(np.float32) / 255.0, CONTOUR_SIGMA * scale)
    peak = float(c.max())
    if peak > 0:
        out[0] = np.clip(c / peak, 0.0, 1.0)

    regions = np.zeros((height, width), dtype=np.uint8)
    for idx in REGION_HULLS.values():
        hull = cv2.convexHull(fixed[list(idx)])
        cv2.fillConvexPoly(regions, hull, 255, lineType=cv2.LINE_AA, shift=_SUBPIXEL_SHIFT)
    brow = max(1, int(round(BROW_THICKNESS * scale)))
    for conns in REGION_THICK_LINES.values():
        cv2.polylines(regions, [np.stack([fixed[a], fixed[b]]) for a, b in conns],
                      isClosed=False, color=255, thickness=brow, lineType=cv2.LINE_AA,
                      shift=_SUBPIXEL_SHIFT)
    out[1] = np.clip(_soften(regions.astype(np.float32) / 255.0, REGION_SIGMA * scale), 0.0, 1.0)
    return out


# Colours of the map in the side-by-side grids (RGB in [0, 1]).
MAP_REGION_RGB = (0.15, 0.35, 0.85)
MAP_CONTOUR_RGB = (1.0, 0.9, 0.2)


def landmark_map_to_rgb(maps):
    """Landmark maps ``(B, 2, H, W)`` in [0, 1] -> ``(B, 3, H, W)`` in [-1, 1] for image grids:
    regions in blue, contours in yellow on top, black background."""
    import torch

    if maps.ndim != 4 or maps.shape[1] != 2:
        raise ValueError(f"expected landmark maps (B, 2, H, W), got {tuple(maps.shape)}")
    m = maps.detach().float().clamp(0, 1)
    contour, region = m[:, 0:1], m[:, 1:2]
    c_reg = torch.tensor(MAP_REGION_RGB, dtype=m.dtype, device=m.device).view(1, 3, 1, 1)
    c_con = torch.tensor(MAP_CONTOUR_RGB, dtype=m.dtype, device=m.device).view(1, 3, 1, 1)
    rgb = region * c_reg * (1 - contour) + contour * c_con
    return rgb * 2 - 1
