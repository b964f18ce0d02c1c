"""What ``test.py`` runs: a generator on held-out photos -> grids, per-image outputs,
``metrics.json`` and ``index.html``.

Output folder (default ``<run>/test/step_XXXXXX``)::

    grids/grid_NN.png          side-by-side rows (training/visuals.py columns), 8 faces each
    photos/NNNN_<stem>.png     the centre crop the generator saw
    outputs/NNNN_<stem>.png    the cartoon (guided-filtered output)
    metrics.json               landmark NME / found rate, FID / KID (when an Inception file is
                               found), style statistics; "summary" holds the flat numbers
    index.html

The generator's output is passed through the guided filter with ``gf_eps`` (default: the
inference value 5e-3, what ``cartoonize.py`` delivers; ``--gf_eps`` sets another).
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from utils.errors import ToonFaceError
from utils.run_dir import RunDir, resolve_generator

INFERENCE_GF_EPS = 5e-3
GRID_ROWS = 8
DEFAULT_MAX_REAL = 5000  # cartoon images used as the FID reference set


def _echo(msg: str) -> None:
    print(msg, file=sys.stderr)


# --------------------------------------------------------------------------- locating things
def locate_generator(checkpoints_dir: str = "checkpoints", name: str | None = None,
                     model_version: int | None = None, step: int | None = None,
                     checkpoint: str | None = None) -> tuple[Path, RunDir | None]:
    """(generator file, its run or None). Raises ToonFaceError naming what it looked for."""
    if checkpoint:
        return resolve_generator(checkpoint), RunDir.containing(checkpoint)
    if name is None and model_version is not None:
        name = f"v{model_version}"
    if name is None:
        raise ToonFaceError("which generator? pass --model_version N, --name NAME or --checkpoint PATH")
    run = RunDir.of(checkpoints_dir, name)
    if not run.is_run():
        raise ToonFaceError(f"run '{name}' not found: no run folder {run} (under --checkpoints_dir "
                            f"{checkpoints_dir})")
    return run.find_generator(step), run


def read_run_config(run: RunDir | None) -> dict:
    return (run.read_config() or {}) if run is not None else {}


def heldout_photos(run: RunDir) -> list[Path]:
    """The photos a run held out of training (``heldout.txt``)."""
    f = run.heldout_file
    paths = run.read_heldout()
    if paths is None:
        raise ToonFaceError(f"run {run} has no heldout.txt (it records the held-out photos): "
                            "pass --photo_dir")
    if not paths:
        raise ToonFaceError(f"run {run} held out no photos ({f} is empty: its photo set was too "
                            "small for a split): pass --photo_dir")
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise ToonFaceError(f"{len(missing)} held-out photo(s) listed in {f} are gone, e.g. "
                            f"{missing[0]}: pass --photo_dir")
    return paths


def load_crops(paths: list[Path], image_size: int, load_size: int | None = None) -> list[np.ndarray]:
    """Centre crops (the training evaluation view), uint8 (S, S, 3) RGB."""
    from datasets.folders import resize_crop_flip
    from datasets.images import UnreadableImage, read_image_rgb

    out = []
    for p in paths:
        try:
            raw = read_image_rgb(p)
        except UnreadableImage as exc:
            raise ToonFaceError(f"unreadable image {p}: {exc}") from None
        out.append(resize_crop_flip(raw, image_size, max(load_size or image_size, image_size), None)[0])
    return out


class CachedDetector:
    """A landmark detector with a memory of images it has seen (photos are detected once, for
    the landmark map column and for the NME). ``spec``: a validated DetectorSpec (default: the
    default detector)."""

    def __init__(self, spec=None):
        from datasets.landmarks import resolve_detector

        self.detector = resolve_detector(spec).build()
        self.cache: dict[bytes, Any] = {}

    def detect(self, image: np.ndarray):
        import hashlib

        key = hashlib.sha1(np.ascontiguousarray(image).tobytes()).digest() + bytes(str(image.shape), "ascii")
        if key not in self.cache:
            self.cache[key] = self.detector.detect(image)
        return self.cache[key]

    def close(self) -> None:
        self.detector.close()


# ------------------------------------------------------------------------------- evaluation
def real_features(extractor, paths: list[Path], image_size: int, cache: dict | None) -> np.ndarray:
    key = (str(extractor.path), image_size, tuple(str(p) for p in paths))
    if cache is not None and key in cache:
        return cache[key]
    feats = extractor(load_crops(paths, image_size))
    if cache is not None:
        cache[key] = feats
    return feats


def evaluate(*, checkpoint: str | None = None, name: str | None = None,
             model_version: int | None = None, step: int | None = None,
             checkpoints_dir: str = "checkpoints", photo_dir: str | None = None,
             photos: list[Path] | None = None, cartoon_dir: str | None = None,
             num: int | None = None, out: str | None = None, inception: str | None = None,
             device: str = "auto", batch_size: int = 8, image_size: int | None = None,
             superpixel: str | None = None, seg_num: int | None = None,
             gf_eps: float = INFERENCE_GF_EPS, metrics: bool = True,
             max_real: int = DEFAULT_MAX_REAL, kid_subsets: int = 100,
             feature_cache: dict | None = None, landmark_detector=None,
             landmark_model: str | None = None, echo: Callable[[str], None] = _echo) -> dict:
    """Evaluate one generator; returns ``{"out_dir", "index", "metrics_path", "metrics", "grids"}``.

    Photos: ``photos`` (a list), else ``photo_dir``, else the run's ``heldout.txt``; the first
    ``num``. landmark_detector / landmark_model: the detector of the landmark map column and
    the NME (a name or DetectorSpec; default: the run's, else the default detector). Raises
    ToonFaceError for anything the user can fix.
    """
    import torch

    from datasets.folders import collect_images
    from datasets.images import to_tensor, to_uint8
    from datasets.landmarks import render_landmark_map
    from evaluation.report import write_test_index
    from models.checkpoint import load_generator
    from utils.device import resolve_device
    from training.visuals import COLUMNS, make_grid, representations, save_png
    from utils.io import atomic_write_bytes

    from datasets.landmarks import resolve_detector
    from utils.io import check_writable, make_folder

    if image_size is not None and image_size % 4:
        raise ToonFaceError(f"--image_size {image_size}: must be a multiple of 4 (the generator "
                            "halves the size twice)")
    gen_path, run = locate_generator(checkpoints_dir, name, model_version, step, checkpoint)
    cfg = read_run_config(run)
    if landmark_detector is None and landmark_model is None:
        landmark_detector, landmark_model = cfg.get("landmark_detector"), cfg.get("landmark_model")
    spec = resolve_detector(landmark_detector, landmark_model)
    if spec.note:
        echo(f"note: {spec.note}")
    dev = resolve_device(str(device))
    G, meta = load_generator(gen_path, dev)
    gstep = meta.get("step")
    if out is None:
        base = run if run is not None else RunDir(gen_path.parent)
        out = base.test_dir(gstep if isinstance(gstep, int) else None, gen_path.stem)
    out_dir = Path(out)
    check_writable(out_dir, "--out", folder=True)  # before the photos are read
    size = int(image_size or meta.get("image_size") or cfg.get("image_size") or 128)
    superpixel = superpixel or cfg.get("superpixel", "fast")
    seg_num = int(seg_num or cfg.get("seg_num", 200))

    if photos is not None:
        paths, source = [Path(p) for p in photos], "a given list"
    elif photo_dir:
        paths, source = collect_images(photo_dir, "photo"), str(photo_dir)
    elif run is not None:
        paths, source = heldout_photos(run), str(run.heldout_file)
    else:
        raise ToonFaceError(f"{gen_path} is not inside a run folder, so there is no held-out "
                            "list: pass --photo_dir")
    if num is not None:
        paths = paths[:num]
    if not paths:
        raise ToonFaceError("no photos to evaluate")

    for sub in ("grids", "photos", "outputs"):
        make_folder(out_dir / sub, "--out")
    echo(f"evaluating {gen_path} (step {gstep}) on {len(paths)} photos from {source} -> {out_dir}")

    detector = CachedDetector(spec)
    try:
        photo_u8 = load_crops(paths, size, cfg.get("load_size") if size == cfg.get("image_size") else None)
        names = [f"{i:04d}_{p.stem}" for i, p in enumerate(paths)]
        output_u8: list[np.ndarray] = []
        rows: list[dict] = []
        grids: list[Path] = []
        grid_cols: dict[str, list] = {c: [] for c in COLUMNS}
        grid_labels: list[str] = []
        for i in range(0, len(paths), batch_size):
            chunk = photo_u8[i:i + batch_size]
            x = torch.stack([to_tensor(im) for im in chunk]).to(dev)
            lmaps = torch.from_numpy(np.stack([render_landmark_map(detector.detect(im), size, size)
                                               for im in chunk]))
            cols = representations(G, x, lmaps, gf_eps, superpixel, seg_num, COLUMNS)
            for j in range(len(chunk)):
                k = i + j
                out_img = to_uint8(cols["output"][j])
                output_u8.append(out_img)
                r = {"name": names[k], "source": str(paths[k]),
                     "photo": out_dir / "photos" / f"{names[k]}.png",
                     "output": out_dir / "outputs" / f"{names[k]}.png"}
                save_png(r["photo"], chunk[j])
                save_png(r["output"], out_img)
                rows.append(r)
                for c in COLUMNS:
                    grid_cols[c].append(cols[c][j])
                grid_labels.append(paths[k].stem)
                if len(grid_labels) == GRID_ROWS or k == len(paths) - 1:
                    g = out_dir / "grids" / f"grid_{len(grids):02d}.png"
                    save_png(g, make_grid({c: torch.stack(v) for c, v in grid_cols.items()}, grid_labels))
                    grids.append(g)
                    grid_cols = {c: [] for c in COLUMNS}
                    grid_labels = []

        result: dict[str, Any] = {
            "run": str(run) if run else None, "checkpoint": str(gen_path), "step": gstep,
            "image_size": size, "gf_eps": gf_eps, "superpixel": superpixel, "seg_num": seg_num,
            "n": len(paths), "photo_source": source, "photos": [str(p) for p in paths],
            "notes": [],
        }
        summary: dict[str, Any] = {}
        if metrics:
            from evaluation.nme import landmark_nme

            lm = landmark_nme(photo_u8, output_u8, detector=detector)
            result["landmark"] = {k: v for k, v in lm.items() if k != "per_image"}
            result["landmark"]["detector"] = spec.key
            for r, v in zip(rows, lm["per_image"]):
                r["nme"] = v
            summary.update(nme=lm["nme"], found_rate=lm["found_rate"])
            summary.update(_fid_metrics(result, output_u8, photo_u8, cfg, cartoon_dir, inception,
                                        checkpoints_dir, dev, size, max_real, kid_subsets,
                                        feature_cache, echo))
            from evaluation.style import style_stats

            style = {"output": style_stats(output_u8, superpixel, seg_num),
                     "photo": style_stats(photo_u8, superpixel, seg_num)}
            cart = result.get("cartoon_paths_used")
            if cart:
                style["cartoon"] = style_stats(load_crops([Path(p) for p in cart[:len(paths) * 4]], size),
                                               superpixel, seg_num)
            result["style"] = style
            summary.update({k: v for k, v in style["output"].items() if k != "n"})
        result["summary"] = summary
        result["per_image"] = [{"name": r["name"], "photo": r["source"],
                                "output": str(r["output"]), "nme": r.get("nme")} for r in rows]
        result.pop("cartoon_paths_used", None)
    finally:
        detector.close()

    metrics_path = out_dir / "metrics.json"
    atomic_write_bytes(metrics_path, (json.dumps(_clean(result), indent=2) + "\n").encode())
    curves = None
    if run is not None and run.stats_file.is_file():
        from training.curves import plot_loss_curves

        curves = plot_loss_curves(run.stats_file, run.loss_curves)
    index = write_test_index(out_dir, result, grids, rows, curves)
    return {"out_dir": out_dir, "index": index, "metrics_path": metrics_path,
            "metrics": result, "grids": grids}


def _fid_metrics(result: dict, output_u8, photo_u8, cfg: dict, cartoon_dir, inception,
                 checkpoints_dir, dev, size: int, max_real: int, kid_subsets: int,
                 feature_cache, echo) -> dict:
    """FID / KID of the outputs to the cartoon set and to the photos; records why when skipped."""
    from datasets.folders import collect_images, resolve_cartoon_dir
    from evaluation.fid import InceptionFeatures, fid_kid, find_inception

    keys = ("fid_cartoon", "kid_cartoon", "fid_photo", "kid_photo")
    summary = dict.fromkeys(keys)
    cart_paths: list[Path] = []
    cdir = cartoon_dir or cfg.get("cartoon_dir")
    if cdir and Path(cdir).is_dir():
        try:
            cart_paths = collect_images(resolve_cartoon_dir(cdir), "cartoon")
        except ToonFaceError as exc:
            result["notes"].append(f"no cartoon reference: {exc}")
        if len(cart_paths) > max_real:  # a fixed random subset, the same for every evaluation
            rng = np.random.default_rng(0)
            cart_paths = [cart_paths[i] for i in sorted(rng.choice(len(cart_paths), max_real, replace=False))]
    else:
        note = (f"cartoon folder not found: {cdir}" if cdir else "no cartoon folder (pass --cartoon_dir)")
        result["notes"].append(note + "; FID/KID to cartoons and cartoon style statistics skipped")
        echo("notice: " + result["notes"][-1])
    result["cartoon_paths_used"] = [str(p) for p in cart_paths]
    result["cartoon_dir"] = str(cdir) if cdir else None

    path, reason = find_inception(inception, checkpoints_dir)
    if path is None:
        result["fid"] = None
        result["fid_reason"] = reason
        echo(f"notice: FID/KID skipped: {reason}")
        return summary
    extractor = InceptionFeatures(path, dev)
    fake = extractor(output_u8)
    fid: dict[str, Any] = {"inception": str(path)}
    fid["photo"] = fid_kid(fake, extractor(photo_u8), kid_subsets)
    if cart_paths:
        fid["cartoon"] = fid_kid(fake, real_features(extractor, cart_paths, size, feature_cache), kid_subsets)
    result["fid"] = fid
    if len(fake) < 2:
        result["notes"].append("FID/KID need at least 2 images")
    for ref in ("cartoon", "photo"):
        if ref in fid:
            summary[f"fid_{ref}"] = fid[ref]["fid"]
            summary[f"kid_{ref}"] = fid[ref]["kid"]
    return summary


def _clean(obj):
    """JSON-safe: NaN/inf -> None, paths -> str, numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
