"""Named styles: a registry of trained generators by style name, and blends between styles.

A style is a generator file whose metadata names it (``style``, written by train.py: the
``--style`` option, or the cartoon folder's name, e.g. ``Hayao`` for ``<root>/Hayao/style``).
The registry looks in a styles folder (``--styles-dir``, default ``checkpoints/``) at

- every run folder directly inside it (``<run>/generator/latest.pt``, utils/run_dir.py), and
- every generator ``.pt`` file directly inside it (e.g. exported or downloaded styles).

A generator file that records no style name (written before named styles existed) is still
a style, named by its run folder (``<run>/generator/latest.pt``) or else its file stem; a
pretraining generator (``kind`` "pretrain": it reconstructs photos) is not a style.

Names are matched without regard to case. When two generators carry the same name, the newest
(its ``saved_at`` metadata, else the file's modification time) wins and the listing says which
one it shadows. A file that is not a ToonFace generator (broken, foreign, a full training
state without a style) is skipped with one warning line.

Blends: ``hayao=0.7,shinkai=0.3`` is the generator whose weights are the weighted mean of the
styles' weights (weights >= 0, normalised to sum 1). Generators fine-tuned from one pretrained
parent stay close in weight space, so their mean is a generator in between; this is only
allowed when every style records the same pretrained parent (``pretrained_hash``, the content
hash of the pretrained weights at the root of its lineage), the same architecture and the
same training image size.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import torch

from models.checkpoint import load_checkpoint_file, load_generator
from models.generator import Generator
from utils.errors import ToonFaceError
from utils.run_dir import RunDir

log = logging.getLogger("toonface")

DEFAULT_STYLES_DIR = "checkpoints"
BLEND_PART = re.compile(r"^\s*([^=,\s][^=,]*?)\s*=\s*([^,]*?)\s*$")


@dataclass
class Style:
    """One named generator found in a styles folder."""

    name: str
    path: Path
    step: int | None
    image_size: int | None
    metrics: dict[str, Any] | None
    pretrained_hash: str | None
    generator_config: dict[str, Any]
    saved: float                      # POSIX time: the metadata's saved_at, else the mtime
    shadows: list[Path] = field(default_factory=list)  # older generators of the same name

    @property
    def key(self) -> str:
        return self.name.casefold()


def _saved_time(meta: dict[str, Any], path: Path) -> float:
    stamp = meta.get("saved_at")
    if isinstance(stamp, str):
        try:
            return datetime.fromisoformat(stamp).timestamp()
        except ValueError:
            pass
    return path.stat().st_mtime


def unnamed_style_name(path: Path) -> str:
    """The name of a generator that records none: its run (``<run>/generator/latest.pt``), else
    its file stem."""
    path = Path(path)
    if path.parent.name == "generator" and path.parent.parent.name:
        return path.parent.parent.name
    return path.stem


def read_style(path: Path) -> Style | None:
    """The style of a generator file: the name it records, else :func:`unnamed_style_name`;
    None for a pretraining generator. Raises ToonFaceError for a file that is not a ToonFace
    generator."""
    obj = load_checkpoint_file(path)
    if obj.get("format") != "toonface-generator":
        raise ToonFaceError(f"{path}: not a ToonFace generator file")
    name = obj.get("style")
    if not name:
        if obj.get("kind") == "pretrain":
            return None
        name = unnamed_style_name(path)
    return Style(str(name), path, obj.get("step"), obj.get("image_size"),
                 obj.get("metrics"), obj.get("pretrained_hash"), obj.get("generator_config") or {},
                 _saved_time(obj, path))


def candidate_files(styles_dir: str | os.PathLike) -> list[Path]:
    """Generator files a styles folder offers: each run's latest generator, then loose .pt files."""
    root = Path(styles_dir)
    if not root.is_dir():
        raise ToonFaceError(f"styles folder not found: {root} (--styles-dir)")
    files = [r.latest_generator for r in RunDir.runs_in(root) if r.latest_generator.is_file()]
    files += sorted(p for p in root.glob("*.pt") if p.is_file())
    return files


def scan_styles(styles_dir: str | os.PathLike = DEFAULT_STYLES_DIR,
                warn: Callable[[str], Any] | None = None) -> dict[str, Style]:
    """{lower-case name: the newest Style of that name} in ``styles_dir``.

    ``warn`` receives one line per file that was skipped (default: the log).
    """
    warn = warn or (lambda m: log.warning("%s", m))
    found: dict[str, Style] = {}
    for path in candidate_files(styles_dir):
        try:
            style = read_style(path)
        except ToonFaceError as exc:
            warn(f"skipped {exc}")
            continue
        if style is None:
            continue
        old = found.get(style.key)
        if old is None:
            found[style.key] = style
            continue
        newer, older = (style, old) if style.saved >= old.saved else (old, style)
        newer.shadows = [*old.shadows, *style.shadows, older.path]
        found[style.key] = newer
    return found


def format_styles(styles: dict[str, Style], styles_dir: str | os.PathLike) -> str:
    """The ``--list-styles`` table: name, steps, image size, metrics, path (+ shadowed files)."""
    if not styles:
        return f"no styles in {styles_dir} (train.py --style NAME writes one; run folders and .pt files are searched)"
    rows = [("style", "steps", "size", "metrics", "path")]
    for s in sorted(styles.values(), key=lambda s: s.key):
        m = s.metrics or {}
        shown = ", ".join(f"{k} {m[k]:.3g}" for k in ("nme68_mean", "identity_distance_mean", "smooth_share")
                          if isinstance(m.get(k), (int, float)))
        rows.append((s.name, str(s.step if s.step is not None else "?"),
                     str(s.image_size or "?"), shown or "not scored", str(s.path)))
        for p in s.shadows:
            rows.append(("", "", "", "", f"  shadows an older '{s.name}': {p}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in rows)


# ------------------------------------------------------------------------------------ blends
def parse_style_spec(spec: str) -> list[tuple[str, float]]:
    """``"hayao"`` -> [("hayao", 1.0)]; ``"hayao=0.7,shinkai=0.3"`` -> normalised weights
    (a name given twice gets the sum of its weights).

    Raises ToonFaceError for a malformed part, a weight that is not a number >= 0, or weights
    that sum to 0.
    """
    spec = spec.strip()
    if not spec:
        raise ToonFaceError("--style: empty")
    if "=" not in spec and "," not in spec:
        return [(spec, 1.0)]
    parts: list[tuple[str, float]] = []
    for part in spec.split(","):
        m = BLEND_PART.match(part)
        if not m:
            raise ToonFaceError(f"--style {spec!r}: {part.strip()!r} is not NAME=WEIGHT "
                                "(e.g. hayao=0.7,shinkai=0.3)")
        name, raw = m.group(1), m.group(2)
        try:
            w = float(raw)
        except ValueError:
            raise ToonFaceError(f"--style {spec!r}: weight {raw!r} of {name} is not a number") from None
        if not w >= 0 or w == float("inf"):
            raise ToonFaceError(f"--style {spec!r}: weight {raw} of {name} must be a number >= 0")
        same = [i for i, (n, _) in enumerate(parts) if n.casefold() == name.casefold()]
        if same:  # a style named twice: its weights add up
            parts[same[0]] = (parts[same[0]][0], parts[same[0]][1] + w)
        else:
            parts.append((name, w))
    total = sum(w for _, w in parts)
    if total <= 0:
        raise ToonFaceError(f"--style {spec!r}: the weights sum to 0")
    return [(n, w / total) for n, w in parts]


def find_style(name: str, styles: dict[str, Style], styles_dir: str | os.PathLike) -> Style:
    style = styles.get(name.casefold())
    if style is None:
        names = ", ".join(sorted(s.name for s in styles.values())) or "none"
        raise ToonFaceError(f"unknown style {name!r} in {styles_dir}; available: {names}")
    return style


def blend_weights(parts: list[tuple[Style, float]]) -> dict[str, torch.Tensor]:
    """The weighted mean of the styles' generator weights (float32), after checking that they
    may be blended. Raises ToonFaceError naming what differs."""
    first = parts[0][0]
    for style, _ in parts[1:]:
        for what, a, b in (("architectures", first.generator_config, style.generator_config),
                           ("training image sizes", first.image_size, style.image_size)):
            if a != b:
                raise ToonFaceError(f"cannot blend {first.name} and {style.name}: different {what} "
                                    f"({a} vs {b})")
        if not first.pretrained_hash or first.pretrained_hash != style.pretrained_hash:
            raise ToonFaceError(f"cannot blend {first.name} and {style.name}: they were not fine-tuned "
                                f"from the same pretrained generator ({first.pretrained_hash or 'unknown'} "
                                f"vs {style.pretrained_hash or 'unknown'})")
    out: dict[str, torch.Tensor] = {}
    for style, w in parts:
        state = load_checkpoint_file(style.path)["generator"]
        for k, v in state.items():
            out[k] = out.get(k, 0) + w * v.float()
    return out


def load_style(spec: str, styles_dir: str | os.PathLike = DEFAULT_STYLES_DIR,
               device: str | torch.device = "cpu", warn: Callable[[str], Any] | None = None
               ) -> tuple[Generator, dict[str, Any]]:
    """(generator in eval mode, metadata) of a style name or a blend of styles.

    A single style is its generator file as saved (bit for bit; ``file`` in the metadata says
    which); a blend's metadata is the first style's, with ``style`` set to the normalised spec
    and ``blend`` listing the parts (name, weight, file).
    """
    parts = parse_style_spec(spec)
    styles = scan_styles(styles_dir, warn)
    chosen = [(find_style(n, styles, styles_dir), w) for n, w in parts]
    if len(chosen) == 1:
        G, meta = load_generator(chosen[0][0].path, device)
        return G, {**meta, "file": str(chosen[0][0].path)}
    state = blend_weights(chosen)
    G, meta = load_generator(chosen[0][0].path)
    G.load_state_dict(state)
    label = ",".join(f"{s.name}={w:.4g}" for s, w in chosen)
    meta = {**meta, "style": label, "blend": [(s.name, w, str(s.path)) for s, w in chosen],
            "metrics": None, "step": None}
    return G.to(device).eval(), meta
