"""What :func:`evaluation.evaluate.evaluate` is asked to do, as one typed object.

``EvalConfig`` groups test.py's options by what they choose: the generator
(:class:`GeneratorChoice`), the photos (:class:`PhotoChoice`), the scoring (:class:`Scoring`),
and at the top level where the outputs go and how the generator runs. Objects that are not
settings (a loaded dlib analyser, a feature cache shared across a sweep, the message sink) stay
arguments of ``evaluate``.

``EvalConfig.of(**flat)`` builds one from test.py's flat option names (``model_version=3,
num=8, metrics=False``); an unknown name is a TypeError.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from evaluation.scoring import DEFAULT_MAX_REAL

INFERENCE_GF_EPS = 5e-3     # guided-filter eps after G at inference (cartoonize.py's)
DEFAULT_DLIB_DETECTOR = "hog"
DEFAULT_DLIB_UPSAMPLE = 1


@dataclass
class GeneratorChoice:
    """Which generator: a run (``name`` or ``model_version``, + ``step``; default the newest
    step) under ``checkpoints_dir``, a ``checkpoint`` (a generator file or a run folder), or a
    ``style`` (a name or a blend ``a=0.7,b=0.3`` found in ``styles_dir``), not both."""

    checkpoint: str | None = None
    name: str | None = None
    model_version: int | None = None
    step: int | None = None                 # test.py --batch / --step
    checkpoints_dir: str = "checkpoints"    # run folders (and the Inception file's first place)
    style: str | None = None
    styles_dir: str = "checkpoints"


@dataclass
class PhotoChoice:
    """The photos: ``photos`` (a list), else ``photo_dir``, else the run's ``heldout.txt``; the
    first ``num``, centre-cropped to ``image_size`` px (a multiple of 4; default: the run's
    training size)."""

    photo_dir: str | None = None
    photos: list[Path] | None = None
    num: int | None = None
    image_size: int | None = None


@dataclass
class Scoring:
    """The measurements (``metrics=False``: grids and images only). ``cartoon_dir`` and
    ``inception``: FID/KID against ``max_real`` cartoons, ``kid_subsets`` subsets;
    ``superpixel`` / ``seg_num``: the structure backend (default: the run's);
    ``landmark_detector`` / ``landmark_model``: the map column's detector and the mediapipe
    NME (a name or a DetectorSpec; default: the run's); ``dlib_detector`` / ``dlib_upsample``:
    the judge of nme68 and identity; ``workers``: its processes (0: this one)."""

    metrics: bool = True
    cartoon_dir: str | None = None
    inception: str | None = None
    max_real: int = DEFAULT_MAX_REAL
    kid_subsets: int = 100
    superpixel: str | None = None
    seg_num: int | None = None
    landmark_detector: Any = None
    landmark_model: str | None = None
    dlib_detector: str = DEFAULT_DLIB_DETECTOR
    dlib_upsample: int = DEFAULT_DLIB_UPSAMPLE
    workers: int = 0


@dataclass
class EvalConfig:
    """One evaluation. ``out``: the report's folder (default ``<run>/test/step_XXXXXX``);
    ``device``: auto, cpu, cuda or cuda:N; ``batch_size``: photos per generator forward;
    ``gf_eps`` (> 0): the guided filter after G; ``record``: write the summary into the scored
    generator file's metadata."""

    generator: GeneratorChoice = field(default_factory=GeneratorChoice)
    photos: PhotoChoice = field(default_factory=PhotoChoice)
    scoring: Scoring = field(default_factory=Scoring)
    out: str | None = None
    device: str = "auto"
    batch_size: int = 8
    gf_eps: float = INFERENCE_GF_EPS
    record: bool = True

    @classmethod
    def of(cls, **flat: Any) -> "EvalConfig":
        """From flat option names (test.py's); TypeError naming an unknown one."""
        groups = {"generator": GeneratorChoice, "photos": PhotoChoice, "scoring": Scoring}
        parts: dict[str, dict[str, Any]] = {g: {} for g in groups}
        top: dict[str, Any] = {}
        owner = {f.name: g for g, kind in groups.items() for f in fields(kind)}
        own = {f.name for f in fields(cls)} - set(groups)
        for key, value in flat.items():
            if key in owner:
                parts[owner[key]][key] = value
            elif key in own:
                top[key] = value
            else:
                raise TypeError(f"EvalConfig has no option {key!r}")
        return cls(**{g: kind(**parts[g]) for g, kind in groups.items()}, **top)
