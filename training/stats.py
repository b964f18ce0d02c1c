"""Per-step numbers -> one stats.jsonl line (and TensorBoard scalars) per log tick.

Values are accumulated as detached tensors and turned into floats only at a tick, so a CUDA
run synchronises with the host once per tick, not once per step. Phase times come from
:class:`PhaseTimer`: wall clock on CPU, CUDA events on the GPU (read at the tick).
"""
from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from utils.io import append_text, atomic_write_text


class NonFiniteLoss(Exception):
    def __init__(self, term: str, step: int, value: float):
        super().__init__(f"loss term {term} became {value} at step {step}")
        self.term, self.step, self.value = term, step, value


class PhaseTimer:
    """``with timer("structure"): ...`` adds that block's duration to the phase's total."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.totals: dict[str, float] = defaultdict(float)
        self._events: list[tuple[str, Any, Any]] = []

    @contextmanager
    def __call__(self, name: str):
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            yield
            end.record()
            self._events.append((name, start, end))
        else:
            t0 = time.perf_counter()
            yield
            self.totals[name] += time.perf_counter() - t0

    def collect(self) -> dict[str, float]:
        """Seconds per phase since the last collect (synchronises CUDA once)."""
        if self._events:
            torch.cuda.synchronize()
            for name, start, end in self._events:
                self.totals[name] += start.elapsed_time(end) / 1000.0
            self._events.clear()
        out, self.totals = dict(self.totals), defaultdict(float)
        return out


class StatsAccumulator:
    """Collects named scalars per step; :meth:`tick` averages them since the last tick."""

    def __init__(self):
        self.steps: list[tuple[int, dict[str, torch.Tensor | float]]] = []

    def add(self, step: int, values: dict[str, torch.Tensor | float]) -> None:
        self.steps.append((step, {k: (v.detach() if torch.is_tensor(v) else v)
                                  for k, v in values.items()}))

    def check_finite(self, names: tuple[str, ...] = ("G/", "D/"), last_only: bool = False) -> None:
        """Raise NonFiniteLoss for the first non-finite loss term (G/... or D/...)."""
        for step, values in (self.steps[-1:] if last_only else self.steps):
            for key, v in values.items():
                if not key.startswith(names):
                    continue
                f = float(v)
                if not math.isfinite(f):
                    raise NonFiniteLoss(key, step, f)

    def tick(self) -> dict[str, float]:
        sums: dict[str, float] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)
        if not self.steps:
            return {}
        keys = {k for _, vals in self.steps for k in vals}
        for key in keys:
            vals = [v for _, d in self.steps for k, v in d.items() if k == key]
            tensors = [v.float().reshape(()) for v in vals if torch.is_tensor(v)]
            floats = [float(v) for v in vals if not torch.is_tensor(v)]
            total = (torch.stack(tensors).sum().item() if tensors else 0.0) + sum(floats)
            sums[key], counts[key] = total, len(vals)
        self.steps.clear()
        return {k: sums[k] / counts[k] for k in sorted(sums)}


class StatsWriter:
    """Appends one JSON object per tick to ``stats.jsonl``; mirrors to TensorBoard if asked."""

    def __init__(self, path: Path, tensorboard_dir: Path | None = None):
        self.path = Path(path)
        self.tb = None
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(tensorboard_dir))
            except Exception:  # noqa: BLE001 - tensorboard is optional
                self.tb = None

    def truncate_after(self, step: int) -> None:
        """Drop lines past ``step`` (a resumed run re-logs the steps after its checkpoint)."""
        if not self.path.exists():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    kept.append(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill
        atomic_write_text(self.path, "".join(k + "\n" for k in kept))

    def write(self, record: dict[str, Any]) -> None:
        append_text(self.path, json.dumps(record) + "\n")
        if self.tb is not None:
            step = int(record.get("step", 0))
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, step)
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
