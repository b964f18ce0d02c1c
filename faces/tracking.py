"""Faces across the consecutive frames of a clip: the One-Euro filter and the face tracker.

Frame units throughout: a clip's frames are the time axis, whatever its fps. The tracker's
faces are :class:`faces.boxes.Face` with ``track`` set; portrait mode on a clip
(inference/portrait.py ``PortraitVideo``) stylizes each tracked face at a held scale.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from faces.boxes import Face, box_iou

# Tracking constants.
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
        pairs = sorted(((box_iou(t.face().box, d.box), ti, di) for ti, t in enumerate(self.tracks)
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
