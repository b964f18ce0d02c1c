"""Scoring a sweep's runs: each finished run's generator evaluated (test.py's evaluate) on the
same photos; an evaluation whose ``metrics.json`` covers the same photos and step is reused."""
from __future__ import annotations

import json
from pathlib import Path

from utils.errors import ToonFaceError

from evaluation.sweep.plan import run_dir


def evaluate_all(runs: list[dict], failed: list[str], eval_photo_dir: str | None, num: int | None,
                 inception: str | None, device: str, echo) -> list[dict | None]:
    """Each finished run evaluated on the same photos; None for runs that did not finish."""
    from datasets.folders import collect_images
    from evaluation.evaluate import evaluate, heldout_photos

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
    photos = photos[:num] if num else photos
    cache: dict = {}
    results: list[dict | None] = []
    seen: set[str] = set()

    def echo_once(msg: str) -> None:  # the same notice (no Inception file...) once per sweep
        if msg.startswith("notice:"):
            if msg in seen:
                return
            seen.add(msg)
        echo(msg)

    for r, f in zip(runs, folders):
        if r["id"] in failed or not f.latest_generator.is_file():
            results.append(None)
            continue
        from models.checkpoint import load_checkpoint_file

        step = int(load_checkpoint_file(f.latest_generator).get("step", 0))
        out = f.test_dir(step)
        mfile = out / "metrics.json"
        if mfile.is_file():
            try:
                m = json.loads(mfile.read_text())
                if m.get("photos") == [str(p) for p in photos] and m.get("step") == step:
                    echo(f"{r['id']}: evaluation of step {step} already there")
                    results.append({"metrics": m, "out_dir": out, "index": out / "index.html"})
                    continue
            except (OSError, json.JSONDecodeError):
                pass
        results.append(evaluate(checkpoint=str(f.latest_generator), photos=photos, out=str(out),
                                inception=inception, device=device, feature_cache=cache,
                                checkpoints_dir=r["cfg"].run.checkpoints_dir, echo=echo_once))
    return results
