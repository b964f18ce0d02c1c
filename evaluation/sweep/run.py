"""Running a planned sweep: pretrain.py / train.py one after another (finished runs skipped,
interrupted ones resumed), then every finished run evaluated on the same photos."""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Callable

import click

from utils.errors import ToonFaceError
from utils.io import atomic_write_text

from evaluation.sweep.plan import SweepPlan, heldout_identity, plan_sweep, run_state

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = {"train": ROOT / "train.py", "pretrain": ROOT / "pretrain.py"}


def _echo(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def command(run: dict, state: str) -> list[str]:
    script = SCRIPTS[run.get("kind", "train")]
    return [sys.executable, str(script), *run["args"], *(["--resume"] if state == "resume" else [])]


# -------------------------------------------------------------------------------- the sweep
def sweep(name: str, grid: list[str] | tuple[str, ...] = (), configs: str | None = None,
          base_args: list[str] | tuple[str, ...] = (), dry_run: bool = False,
          train_runs: bool = True, only: list[str] | tuple[str, ...] = (), evaluate_runs: bool = True, eval_photo_dir: str | None = None,
          num: int | None = None, inception: str | None = None, device: str = "auto",
          echo: Callable[[str], None] = _echo) -> dict:
    """Plan, run, evaluate and summarise a sweep; returns paths of what it wrote.

    ``train_runs=False`` re-scores what exists (no pretrain.py / train.py is started; runs
    that have no generator yet are reported as such). ``only``: glob patterns of run ids;
    only those runs (and their pretrainings) are trained, so a study can run in parts, also
    side by side (a run's lock keeps two sweeps off the same run); every run is still
    evaluated and summarised."""
    # cycle: evaluation.sweep.report imports this module
    from evaluation.sweep.report import summarise

    # cycle: evaluation.sweep.evaluate_runs imports this module
    from evaluation.sweep.evaluate_runs import check_evaluate_section
    # cycle: evaluation.sweep.report imports this module
    from evaluation.sweep.report import compare_spec

    sp = plan_sweep(name, list(grid), configs, list(base_args))
    runs = sp.runs
    if evaluate_runs:  # a typo in what to score stops the sweep now, not after hours of training
        check_evaluate_section(sp)
        compare_spec(sp)
    if evaluate_runs and not eval_photo_dir and len({heldout_identity(r["cfg"]) for r in runs}) > 1:
        raise ToonFaceError("the runs of this sweep hold out different photos (they differ in seed, "
                            "holdout or photo_dir without --heldout_people): pass --eval-photo-dir "
                            "with the evaluation faces")
    sweep_dir = sp.sweep_dir
    _in_order(sp, list(only))  # a pattern that selects nothing stops the sweep now
    by_id = {p["id"]: p for p in sp.pretrains}
    if dry_run:
        for r in _in_order(sp, list(only)):
            state = run_state(r["cfg"])
            echo(f"# {r['id']} ({state})")
            click.echo(shlex.join(command(r, state)))
        return {"sweep_dir": sweep_dir, "runs": [r["id"] for r in runs],
                "pretrains": [p["id"] for p in sp.pretrains], "dry_run": True}

    sweep_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(sweep_dir / "sweep.json", json.dumps(
        {"name": name, "grid": list(grid), "configs": configs, "base_args": list(base_args),
         "pretrains": [{"id": p["id"], "options": p["options"], "args": p["args"]} for p in sp.pretrains],
         "runs": [{"id": r["id"], "options": r["options"], "args": r["args"], "pretrain": r["pretrain"]}
                  for r in runs]},
        indent=2, default=str) + "\n")
    failed: list[str] = []
    if train_runs:
        order = _in_order(sp, list(only))
        for i, r in enumerate(order):
            tag = f"[{i + 1}/{len(order)}] {r['id']}"
            if r.get("pretrain") in failed:
                echo(f"{tag}: skipped, its pretraining {r['pretrain']} failed")
                failed.append(r["id"])
                continue
            state = run_state(r["cfg"])
            if state == "done":
                echo(f"{tag}: finished, skipped")
                continue
            cmd = command(r, state)
            echo(f"{tag}: {'resuming' if state == 'resume' else 'training'}\n  " + shlex.join(cmd))
            rc = subprocess.run(cmd).returncode
            if rc != 0:
                echo(f"{tag}: {Path(cmd[1]).name} exited with {rc}")
                failed.append(r["id"])
                if rc == 130:  # interrupted by the user: stop the sweep, it resumes next time
                    raise KeyboardInterrupt

    results: list[dict | None] = []
    extra: dict = {}
    if evaluate_runs:
        # cycle: evaluation.sweep.evaluate_runs imports this module
        from evaluation.sweep.evaluate_runs import evaluate_sweep

        extra = evaluate_sweep(sp, failed, eval_photo_dir, num, inception, device, echo)
        results = extra["runs"]
    out = summarise(sp, results, failed, extra)
    window = extra.get("window")
    if window:  # evaluate.last_saves: the same tables over each run's last saves
        suffix = f"_last{window['last_saves']}"
        out["window"] = summarise(sp, window["runs"], failed,
                                  {**extra, "portrait": window["portrait"]}, suffix=suffix)
    out["failed"] = failed
    out["pretrains"] = [p["id"] for p in sp.pretrains if p["id"] in by_id]
    return out


def _in_order(sp: SweepPlan, only: list[str] | None = None) -> list[dict]:
    """The train runs in file order (those matching a glob of ``only``, when given), each
    seed's pretraining right before its first run (so a sweep stopped part-way has whole
    configurations, not all pretrainings first)."""
    import fnmatch

    by_id = {p["id"]: p for p in sp.pretrains}
    runs = sp.runs
    if only:
        for pat in only:
            if not any(fnmatch.fnmatchcase(r["id"], pat) for r in runs):
                raise ToonFaceError(f"--only {pat}: no run of the sweep matches (runs: "
                                    f"{', '.join(r['id'] for r in runs)})")
        runs = [r for r in runs if any(fnmatch.fnmatchcase(r["id"], pat) for pat in only)]
    out, placed = [], set()
    for r in runs:
        pid = r.get("pretrain")
        if pid and pid not in placed:
            out.append(by_id[pid])
            placed.add(pid)
        out.append(r)
    return out
