"""Scoring a sweep's runs with the evaluation kit (``evaluation.evaluate``): every finished run
on the same held-out photos (test.py's ``evaluate``), and, when the sweep file asks for them:

- ``evaluate.reference``: a folder of reference outputs (e.g. the authors' own cartoons),
  paired with the held-out photos by file stem and scored exactly like a run (both cropped to
  the runs' training size the way test.py crops photos; ``test.py --outputs``'s
  ``evaluate_outputs``), a baseline row;
- ``evaluate.pretrained: true``: the pretrained generators the runs start from, scored like
  the runs (what the faces look like before any cartoon training: no stylisation);
- ``evaluate.portrait``: scenes (``photo_dir`` and the ``photos`` stems in it) cartoonized at
  full size in portrait mode (``inference.Cartoonizer(portrait=True)``, what cartoonize.py
  --portrait delivers) and scored by ``evaluate_outputs``: nme68 / identity of the largest
  face of each scene, found rates over all of them.

- ``evaluate.last_saves: N`` (default 1: the final generator only, no further tables): each
  run is also scored at its last N saved generators (``generator/step_XXXXXX.pt``, the final
  one included), on the held-out photos and the portrait scenes, and the report adds tables
  of their means (``window_metrics``; a face dlib lost at some saves is averaged over the
  others; a run with fewer saves over those it has, with a notice): a
  GAN's faces and style swing from one saved generator to the next (the landmark study's
  nme68 of one run moved 0.021 -> 0.035 between two saves 250 steps apart), so one save
  decides a paired count by chance where N saves measure the run.

Every evaluation is reused when its ``metrics.json`` covers the same photos (and step).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

from utils.errors import ToonFaceError

from evaluation.sweep.plan import SweepPlan, run_dir
from evaluation.sweep.schema import EVALUATE_KEYS
from evaluation.config import EvalConfig, GeneratorChoice, PhotoChoice, Scoring
from datasets.folders import collect_images
from evaluation.evaluate import (check_out_dir, dlib_analyser, evaluate, evaluate_outputs,
                                 heldout_photos, load_crops)
from inference.cartoonizer import Cartoonizer
from media.decode import read_image_rgb
from media.folders import list_images
from models.checkpoint import load_checkpoint_file
from training.visuals import save_png

REFERENCE_DIR = "reference"   # <sweep>/reference/{photos,outputs}/ and its metrics.json
PORTRAIT_DIR = "portrait"     # <run>/test/step_XXXXXX/portrait/{outputs/, metrics.json}


class Notices:
    """An echo that prints each 'notice:' line once per sweep (no Inception file...)."""

    def __init__(self, echo: Callable[[str], None]):
        self.echo, self.seen = echo, set()

    def __call__(self, msg: str) -> None:
        if msg.startswith("notice:"):
            if msg in self.seen:
                return
            self.seen.add(msg)
        self.echo(msg)


def _read_metrics(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None


def evaluation_photos(runs: list[dict], eval_photo_dir: str | None, num: int | None) -> list[Path]:
    """The photos every run is scored on: ``eval_photo_dir``, else the held-out photos the
    runs share (their ``heldout.txt``). Raises ToonFaceError when the runs disagree."""
    folders = [run_dir(r["cfg"]) for r in runs]
    if eval_photo_dir:
        photos = collect_images(eval_photo_dir, "evaluation photo")
    else:
        lists = {r["id"]: f.read_heldout() for r, f in zip(runs, folders) if f.heldout_file.is_file()}
        if len({tuple(v) for v in lists.values()}) > 1:
            raise ToonFaceError("runs of this sweep hold out different photos (heldout.txt differs): "
                                "pass --eval-photo-dir")
        first = next((f for f in folders if f.heldout_file.is_file()), None)
        if first is None:
            raise ToonFaceError(f"no run of the sweep wrote a heldout.txt under {folders[0].checkpoints_dir}")
        photos = heldout_photos(first)
    return photos[:num] if num else photos


def evaluate_all(runs: list[dict], failed: list[str], photos: list[Path], inception: str | None,
                 device: str, echo, analyser=None, cache: dict | None = None) -> list[dict | None]:
    """Each run with a generator evaluated on ``photos``; None for runs without one. A run that
    has not reached its total_iter is evaluated at its latest step (the summary says so).
    ``cache``: FID features shared between calls (the reference cartoons' among them)."""
    cache = {} if cache is None else cache
    results: list[dict | None] = []
    for r in runs:
        f = run_dir(r["cfg"])
        if r["id"] in failed or not f.latest_generator.is_file():
            results.append(None)
            continue
        step = int(load_checkpoint_file(f.latest_generator).get("step", 0))
        results.append(evaluate_generator(r, f.latest_generator, step, photos, inception, device,
                                          echo, analyser, cache))
    return results


def evaluate_generator(run: dict, generator: Path, step: int, photos: list[Path],
                       inception: str | None, device: str, echo, analyser=None,
                       cache: dict | None = None) -> dict:
    """One generator file of ``run`` (of training step ``step``) evaluated on ``photos`` into
    the run's ``test/step_XXXXXX/`` (reused when its metrics.json covers the same photos and
    step). Returns evaluation.evaluate's ``{"metrics", "out_dir", "index"}`` and
    ``"generator"``, the file scored (a cached metrics.json may name ``generator/latest.pt``
    of the time it was written)."""
    out = run_dir(run["cfg"]).test_dir(step)
    return evaluate_step(generator, step, photos, out, device, echo, analyser, cache,
                         inception=inception, checkpoints_dir=run["cfg"].run.checkpoints_dir,
                         what=run["id"])


def evaluate_step(generator: Path, step: int, photos: list[Path], out: Path, device: str, echo,
                  analyser=None, cache: dict | None = None, *, inception: str | None = None,
                  checkpoints_dir: str = "checkpoints", record: bool = True,
                  what: str | None = None) -> dict:
    """``generator`` (of training step ``step``) evaluated on ``photos`` into ``out``, reused
    when ``out/metrics.json`` covers the same photos and step. ``record``: the summary into the
    generator file (evaluation.evaluate). Returns evaluate's ``{"metrics", "out_dir", "index"}``
    and ``"generator"``."""
    m = _read_metrics(out / "metrics.json")
    if m and m.get("photos") == [str(p) for p in photos] and m.get("step") == step:
        echo(f"{what or generator}: evaluation of step {step} already there")
        return {"metrics": m, "out_dir": out, "index": out / "index.html", "generator": generator}
    config = EvalConfig(GeneratorChoice(checkpoint=str(generator), checkpoints_dir=checkpoints_dir),
                        PhotoChoice(photos=photos), Scoring(inception=inception),
                        out=str(out), device=device, record=record)
    res = evaluate(config, feature_cache=cache if cache is not None else {}, analyser=analyser,
                   echo=echo)
    return {**res, "generator": generator}


def evaluate_windows(runs: list[dict], results: list[dict | None], last: int,
                     photos: list[Path], inception: str | None, device: str, echo,
                     analyser=None, cache: dict | None = None) -> list[list[dict] | None]:
    """Per run with a final evaluation (``results``): the evaluations of its last ``last``
    saved generators, oldest first, ending with the final one (``results``' own); fewer, with
    a notice, when the run saved fewer before its final step. None where ``results`` has
    None."""
    cache = {} if cache is None else cache
    out: list[list[dict] | None] = []
    for r, res in zip(runs, results):
        if res is None:
            out.append(None)
            continue
        final = int(res["metrics"].get("step") or 0)
        earlier = [(s, p) for s, p in run_dir(r["cfg"]).steps("generator") if s < final]
        earlier = earlier[-(last - 1):] if last > 1 else []
        if len(earlier) + 1 < last:
            echo(f"notice: {r['id']}: {len(earlier) + 1} saved generator(s) up to step {final}, "
                 f"not {last}: its means cover those")
        out.append([evaluate_generator(r, p, s, photos, inception, device, echo, analyser, cache)
                    for s, p in earlier] + [res])
    return out


def _mean(values: list[Any]) -> float | None:
    xs = [float(v) for v in values if _is_number(v)]
    return sum(xs) / len(xs) if xs else None


def window_metrics(evaluations: list[dict]) -> dict:
    """The metrics of several evaluations of one run (its last saved generators) as one, for
    the report: every summary number is the mean over the evaluations that have it; every
    photo's number (``per_image``, by name) the mean over the evaluations where it has one (a
    face dlib lost at one save is scored by the others); True/False values average to a rate.
    The summary's numbers are also set at the top level, where metrics.json repeats them;
    ``steps`` lists the steps averaged; everything else (``step``, ``checkpoint``,
    ``not_independent``...) is the last evaluation's. ``evaluations``: ``{"metrics"}`` dicts,
    oldest first. Raises ValueError for an empty list."""
    if not evaluations:
        raise ValueError("window_metrics needs at least one evaluation")
    ms = [e["metrics"] for e in evaluations]
    out = dict(ms[-1])
    out["steps"] = [m.get("step") for m in ms]
    out["summary"] = _merge([m.get("summary") or {} for m in ms])
    out.update({k: v for k, v in out["summary"].items() if k in out})  # metrics.json repeats them
    by_name: dict[str, list[dict]] = {}
    for m in ms:
        for rec in m.get("per_image") or []:
            if isinstance(rec, dict):
                by_name.setdefault(str(rec.get("name")), []).append(rec)
    per_image = []
    for name, recs in by_name.items():
        per_image.append({**_merge(recs), "name": name, "saves": len(recs)})
    out["per_image"] = per_image
    return out


def _merge(records: list[dict]) -> dict:
    """Key by key (in first-seen order): the mean of the records' numbers where any has one,
    else the last record's value."""
    keys = list(dict.fromkeys(k for rec in records for k in rec))
    return {k: (_mean([rec.get(k) for rec in records])
                if any(_is_number(rec.get(k)) for rec in records) else records[-1].get(k))
            for k in keys}


def _is_number(v: Any) -> bool:
    return isinstance(v, (bool, int, float)) and not (isinstance(v, float) and not math.isfinite(v))


def evaluate_reference(sp: SweepPlan, photos: list[Path], device: str, echo, analyser=None) -> dict | None:
    """The ``evaluate.reference`` folder scored as if it were a run's outputs on ``photos``
    (:func:`score_reference` at the runs' image size); None when the sweep file has no
    reference. Writes ``<sweep>/reference/``."""
    spec = sp.file.evaluate.get("reference")
    if not spec:
        return None
    res = score_reference(Path(spec["dir"]), photos, sp.runs[0]["cfg"].data.image_size,
                          sp.sweep_dir / REFERENCE_DIR, device, echo, analyser,
                          name=str(spec.get("label", spec["dir"])))
    return {**res, "label": label_of(spec)}


def score_reference(ref_dir: Path, photos: list[Path], size: int, root: Path, device: str, echo,
                    analyser=None, name: str | None = None) -> dict:
    """A folder of reference outputs (e.g. the white-box authors' cartoons) scored as if it
    were a run's outputs on ``photos``: pairs by stem, both sides centre-cropped to ``size`` px
    like test.py's photos (:func:`evaluation.pairs.load_crops`), written to
    ``root/{photos,outputs}/NNNN_<stem>.png`` and scored by ``evaluate_outputs`` into ``root``
    (reused when its metrics.json was made from the same files at the same size). Photos
    without a reference image are left out with a notice. Returns evaluate_outputs'
    ``{"metrics", "out_dir", "index"}``. Raises ToonFaceError when no photo has one."""
    by_stem = {p.stem: p for p in list_images(ref_dir)}
    pairs = [(i, p, by_stem.get(p.stem)) for i, p in enumerate(photos)]
    missing = [p.stem for _, p, c in pairs if c is None]
    if missing:
        echo(f"notice: reference {ref_dir} has no image for {len(missing)} photo(s): {', '.join(missing[:5])}")
    pairs = [(i, p, c) for i, p, c in pairs if c is not None]
    if not pairs:
        raise ToonFaceError(f"reference folder {ref_dir}: no image has the stem of an evaluation photo")
    stamp = {"photos": [str(p) for _, p, _ in pairs], "reference": [str(c) for _, _, c in pairs],
             "image_size": size}
    m = _read_metrics(root / "metrics.json")
    if m and m.get("source") == stamp:
        echo(f"reference ({name or ref_dir}): evaluation already there")
        return {"metrics": m, "out_dir": root, "index": root / "index.html"}
    names = [f"{i:04d}_{p.stem}" for i, p, _ in pairs]
    for sub, files in (("photos", [p for _, p, _ in pairs]), ("outputs", [c for _, _, c in pairs])):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for stem, crop in zip(names, load_crops(files, size)):
            save_png(root / sub / f"{stem}.png", crop)
    res = evaluate_outputs(outputs=str(root / "outputs"), photo_dir=str(root / "photos"), out=str(root),
                           device=device, analyser=analyser, echo=echo)
    # the stamp says which files the crops came from, so a rerun reuses the scores
    m = dict(res["metrics"])
    m["source"] = stamp
    (root / "metrics.json").write_text(json.dumps(m, indent=2) + "\n")
    return {"metrics": m, "out_dir": root, "index": res["index"]}


def label_of(spec: dict) -> str:
    return str(spec.get("label") or Path(spec["dir"]).name)


def portrait_scenes(sp: SweepPlan) -> list[Path]:
    """The scene files of ``evaluate.portrait`` (each stem must name exactly one image)."""
    spec = sp.file.evaluate.get("portrait")
    if not spec:
        return []

    folder = Path(spec["photo_dir"])
    files = list_images(folder) if folder.is_dir() else []
    out = []
    for stem in spec["photos"]:
        found = [p for p in files if p.stem == str(stem)]
        if len(found) != 1:
            raise ToonFaceError(f"{sp.file.path}: evaluate.portrait: {'no' if not found else len(found)} "
                                f"image(s) named {stem}.* in {folder}")
        out.append(found[0])
    return out


def evaluate_portraits(sp: SweepPlan, results: list[dict | None], device: str, echo,
                       analyser=None) -> list[dict | None]:
    """Per run with a held-out evaluation: its generator on the ``evaluate.portrait`` scenes in
    portrait mode, scored by the kit; None where a run has no evaluation or the file no scenes."""
    scenes = portrait_scenes(sp)
    if not scenes:
        return [None] * len(sp.runs)

    spec = sp.file.evaluate["portrait"]
    out: list[dict | None] = []
    for r, res in zip(sp.runs, results):
        if res is None:
            out.append(None)
            continue
        root = Path(res["out_dir"]) / PORTRAIT_DIR
        m = _read_metrics(root / "metrics.json")
        step = res["metrics"].get("step")
        if (m and m.get("portrait_scenes") == [str(p) for p in scenes]
                and m.get("portrait_step", step) == step):
            echo(f"{r['id']}: portrait evaluation already there")
            out.append({"metrics": m, "out_dir": root})
            continue
        gen = str(res.get("generator") or res["metrics"].get("checkpoint")
                  or run_dir(r["cfg"]).latest_generator)
        toon = Cartoonizer.from_checkpoint(gen, device, portrait=True,
                                           landmark_detector=r["cfg"].data.landmark_detector,
                                           landmark_model=r["cfg"].data.landmark_model,
                                           notice=lambda msg, rid=r["id"]: echo(f"notice: {rid}: {msg}"))
        (root / "outputs").mkdir(parents=True, exist_ok=True)
        echo(f"{r['id']}: portrait mode on {len(scenes)} scenes")
        for scene in scenes:
            save_png(root / "outputs" / f"{scene.stem}.png", toon(read_image_rgb(scene)))
        res_p = evaluate_outputs(outputs=str(root / "outputs"), photo_dir=str(spec["photo_dir"]),
                                 out=str(root), device=device, analyser=analyser, echo=echo)
        m = dict(res_p["metrics"])
        m["portrait_scenes"] = [str(p) for p in scenes]
        m["portrait_step"] = step  # the generator's step (files before this key: the folder's)
        (root / "metrics.json").write_text(json.dumps(m, indent=2) + "\n")
        out.append({"metrics": m, "out_dir": root})
    return out


def check_evaluate_section(sp: SweepPlan) -> None:
    """The sweep file's ``evaluate`` section, checked before anything runs: ``reference``
    ({dir, label}) names a folder, ``portrait`` ({photo_dir, photos}) names scenes that exist,
    ``pretrained`` is true or false and ``last_saves`` a whole number of at least 1."""
    ev = sp.file.evaluate
    where = f"{sp.file.path}: evaluate"
    unknown = sorted(set(ev) - set(EVALUATE_KEYS))
    if unknown:
        raise ToonFaceError(f"{where}: unknown key(s) {', '.join(unknown)} (expected "
                            f"{', '.join(EVALUATE_KEYS)})")
    if not isinstance(ev.get("pretrained", False), bool):
        raise ToonFaceError(f"{where}: pretrained: expected true or false")
    last = ev.get("last_saves", 1)
    if isinstance(last, bool) or not isinstance(last, int) or last < 1:
        raise ToonFaceError(f"{where}: last_saves: expected a whole number of at least 1")
    ref = ev.get("reference")
    if ref is not None:
        if not isinstance(ref, dict) or "dir" not in ref:
            raise ToonFaceError(f"{where}: reference: expected {{dir: FOLDER, label: TEXT}}")
        if not Path(ref["dir"]).is_dir():
            raise ToonFaceError(f"{where}: reference folder not found: {ref['dir']}")
        # the sweep writes the reference's crops into <sweep>/reference/{photos,outputs}/
        check_out_dir(sp.sweep_dir / REFERENCE_DIR, ("photos", "outputs"), what="the sweep's "
                      "reference folder", probe=False, **{"evaluate.reference.dir": ref["dir"]})
    por = ev.get("portrait")
    if por is not None:
        if not isinstance(por, dict) or "photo_dir" not in por or not isinstance(por.get("photos"), list):
            raise ToonFaceError(f"{where}: portrait: expected {{photo_dir: FOLDER, photos: [stems]}}")
        portrait_scenes(sp)
        for r in sp.runs:  # the portrait outputs go to <run>/test/step_XXXXXX/portrait/outputs/
            check_out_dir(run_dir(r["cfg"]).path / "test", what=f"run {r['id']}'s test folder",
                          probe=False, **{"evaluate.portrait.photo_dir": por["photo_dir"]})


def evaluate_sweep(sp: SweepPlan, failed: list[str], eval_photo_dir: str | None, num: int | None,
                   inception: str | None, device: str, echo) -> dict:
    """Everything the sweep file asks to score: ``{"photos", "runs" (per run, or None),
    "reference" (or None), "portrait" (per run, or None), "pretrained" (per pretraining, or
    None; with ``evaluate.pretrained: true``: the starting generators, a no-stylisation row),
    "window" (None, or with ``evaluate.last_saves`` N > 1: ``{"last_saves": N, "runs",
    "portrait"}``, per run the :func:`window_metrics` of its last N saves as an evaluation, or
    None)}``. The reference and the pretrained generators are scored once either way."""
    echo = Notices(echo)
    photos = evaluation_photos(sp.runs, eval_photo_dir, num)
    analyser = dlib_analyser()  # its models load once for the whole sweep
    cache: dict = {}
    results = evaluate_all(sp.runs, failed, photos, inception, device, echo, analyser, cache)
    pretrained = None
    if sp.file.evaluate.get("pretrained") and sp.pretrains:
        pretrained = evaluate_all(sp.pretrains, failed, photos, inception, device, echo, analyser,
                                  cache)
    portrait = evaluate_portraits(sp, results, device, echo, analyser)
    window = None
    last = int(sp.file.evaluate.get("last_saves", 1))
    if last > 1:
        windows = evaluate_windows(sp.runs, results, last, photos, inception, device, echo,
                                   analyser, cache)
        # portrait mode at each earlier save: position k from the end, across the runs
        depth = max((len(w) for w in windows if w), default=0)
        por_by_run: list[list[dict]] = [[] for _ in sp.runs]
        for k in range(depth - 1, 0, -1):
            at_k = [w[-1 - k] if w and len(w) > k else None for w in windows]
            for i, p in enumerate(evaluate_portraits(sp, at_k, device, echo, analyser)):
                if p is not None:
                    por_by_run[i].append(p)
        for i, p in enumerate(portrait):
            if p is not None:
                por_by_run[i].append(p)
        window = {"last_saves": last,
                  "runs": [None if w is None else {**w[-1], "metrics": window_metrics(w)}
                           for w in windows],
                  "portrait": [{**p[-1], "metrics": window_metrics(p)} if p else None
                               for p in por_by_run]}
    return {"photos": photos, "runs": results,
            "reference": evaluate_reference(sp, photos, device, echo, analyser),
            "portrait": portrait, "pretrained": pretrained, "window": window}
