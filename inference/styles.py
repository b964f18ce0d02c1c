"""Named styles: a registry of trained generators by style name, and blends between styles.

A style is a generator file whose metadata names it (``style``, written by train.py: the
``--style`` option, or the cartoon folder's name, e.g. ``Hayao`` for ``<root>/Hayao/style``).
:class:`StyleRegistry` scans a styles folder once (every candidate file read once, for its
metadata) and then loads a style by reading only the files it names; :func:`load_style` is the
one-shot form (scan, then load) for a command that loads one style. The registry looks in a
styles folder (``--styles-dir``, default ``checkpoints/``) at

- every run folder directly inside it (``<run>/generator/latest.pt``, utils/run_dir.py), and
- every generator ``.pt`` file directly inside it (e.g. exported or downloaded styles).

A generator file that records no style name (written before named styles existed) is still
a style, named by its run folder (``<run>/generator/latest.pt``) or else its file stem; a
pretraining generator (``kind`` "pretrain": it reconstructs photos) is not a style.

Names are matched without regard to case or Unicode normalisation (``é`` typed as one code
point or as ``e`` + accent is one name: they print alike). When two generators carry the same
name, the newest (its ``saved_at`` metadata, else the file's modification time) wins and the
listing says which one it shadows. A file that is not a ToonFace generator (broken, foreign, a
full training state without a style), a ``.pt`` entry that is a folder or a link that leads
nowhere, and a style whose name ``--style`` could never select (``=`` or ``,`` in it, spaces
around it: see :func:`models.checkpoint.style_name_problem`) are skipped with one warning line
each. Names and paths are printed with control characters escaped.

Blends: ``hayao=0.7,shinkai=0.3`` is the generator whose weights are the weighted mean of the
styles' weights (finite weights >= 0, normalised to sum 1; any scale, 1e308 included). Generators fine-tuned from one pretrained
parent stay close in weight space, so their mean is a generator in between; this is only
allowed when every style records the same pretrained parent (``pretrained_hash``, the content
hash of the pretrained weights at the root of its lineage), the same architecture and the
same training image size.
"""
from __future__ import annotations

import errno
import logging
import math
import os
import re
import stat
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import torch

from models.checkpoint import (_generator_parts, check_generator_output, check_generator_weights,
                               load_checkpoint_file, load_generator, style_name_problem)
from models.generator import Generator
from utils.errors import ToonFaceError
from utils.run_dir import RunDir, resolve_generator

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
        return style_key(self.name)


def style_key(name: str) -> str:
    """What style names are matched by: case-folded, in one Unicode normal form (NFC and NFD
    spellings of a name print alike, so they are one name)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", name).casefold())


def printable(text: str) -> str:
    """``text`` with control and other non-printing characters escaped (``\\n``, ``\\x1b``),
    so a name or a path cannot move the cursor, clear the screen or forge a line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


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


def _reason(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop"
    if exc.errno == errno.ENOENT and path.is_symlink():
        return f"a broken symbolic link to {printable(os.readlink(path))}"
    return exc.strerror or type(exc).__name__


def check_styles_dir(styles_dir: str | os.PathLike) -> Path:
    """``styles_dir`` when it is a folder that can be listed; ToonFaceError (one line, the
    system's reason: missing, a file, a link loop, no permission) otherwise."""
    root = Path(styles_dir)
    shown = printable(str(root))
    try:
        os.stat(root)
    except OSError as exc:
        if exc.errno == errno.ENOENT and not root.is_symlink():
            raise ToonFaceError(f"styles folder not found: {shown} (--styles-dir)") from None
        raise ToonFaceError(f"styles folder {shown}: {_reason(root, exc)} (--styles-dir)") from None
    if not root.is_dir():
        raise ToonFaceError(f"styles folder {shown} is a file, not a folder (--styles-dir)")
    try:
        os.listdir(root)
    except OSError as exc:
        raise ToonFaceError(f"styles folder {shown}: cannot read it ({_reason(root, exc)}) "
                            "(--styles-dir)") from None
    return root


def candidate_files(styles_dir: str | os.PathLike, warn: Callable[[str], Any] | None = None
                    ) -> list[Path]:
    """Generator files a styles folder offers: each run's latest generator, then loose .pt
    files. ``warn`` gets one line per entry that cannot be one (a ``.pt`` folder, a link loop,
    a broken link); ToonFaceError when the folder itself is unusable (:func:`check_styles_dir`)."""
    warn = warn or (lambda m: log.warning("%s", m))
    root = check_styles_dir(styles_dir)
    files = []
    for run in RunDir.runs_in(root):
        latest = run.latest_generator
        if latest.is_file():
            files.append(latest)
        elif os.path.lexists(latest):
            warn(f"skipped {printable(str(latest))}: not a generator file (a folder or a link "
                 "that leads nowhere)")
    for p in sorted(root.iterdir()):
        if p.name.startswith("."):
            continue
        is_pt = p.suffix == ".pt"
        try:
            st = os.stat(p)
        except OSError as exc:  # a loop may have been a run folder; a broken .pt a generator
            if is_pt or exc.errno == errno.ELOOP:
                warn(f"skipped {printable(str(p))}: {_reason(p, exc)}")
            continue
        if not is_pt:
            continue
        if stat.S_ISDIR(st.st_mode):
            warn(f"skipped {printable(str(p))}: a folder, not a generator file")
        elif not stat.S_ISREG(st.st_mode):
            warn(f"skipped {printable(str(p))}: not a regular file")
        else:
            files.append(p)
    return files


def scan_styles(styles_dir: str | os.PathLike = DEFAULT_STYLES_DIR,
                warn: Callable[[str], Any] | None = None) -> dict[str, Style]:
    """{lower-case name: the newest Style of that name} in ``styles_dir``.

    ``warn`` receives one line per file that was skipped (default: the log).
    """
    warn = warn or (lambda m: log.warning("%s", m))
    found: dict[str, Style] = {}
    for path in candidate_files(styles_dir, warn):
        try:
            style = read_style(path)
        except ToonFaceError as exc:
            warn(f"skipped {printable(str(exc))}")
            continue
        if style is None:
            continue
        problem = style_name_problem(style.name)
        if problem:
            warn(f"skipped {printable(str(path))}: its style name {printable(repr(style.name))} "
                 f"{problem}, so --style could never select it")
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
        return f"no styles in {printable(str(styles_dir))} (train.py --style NAME writes one; run folders and .pt files are searched)"
    rows = [("style", "steps", "size", "metrics", "path")]
    for s in sorted(styles.values(), key=lambda s: s.key):
        m = s.metrics or {}
        shown = ", ".join(f"{k} {m[k]:.3g}" for k in ("nme68_mean", "identity_distance_mean", "smooth_share")
                          if isinstance(m.get(k), (int, float)))
        rows.append((printable(s.name), printable(str(s.step if s.step is not None else "?")),
                     printable(str(s.image_size or "?")), shown or "not scored", printable(str(s.path))))
        for p in s.shadows:
            rows.append(("", "", "", "", f"  shadows an older '{printable(s.name)}': {printable(str(p))}"))
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
    parts: list[tuple[str, list[float]]] = []
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
        if not (math.isfinite(w) and w >= 0):
            raise ToonFaceError(f"--style {spec!r}: weight {raw} of {name} must be a finite number >= 0")
        same = [i for i, (n, _) in enumerate(parts) if style_key(n) == style_key(name)]
        if same:  # a style named twice: its weights add up
            parts[same[0]][1].append(w)
        else:
            parts.append((name, [w]))
    # Scaled by the largest weight first, so weights near the float limit (1e308) cannot
    # overflow their sum to inf (which would normalise every weight to 0).
    top = max(max(ws) for _, ws in parts)
    if top <= 0:
        raise ToonFaceError(f"--style {spec!r}: the weights sum to 0")
    scaled = [(n, math.fsum(w / top for w in ws)) for n, ws in parts]
    total = math.fsum(w for _, w in scaled)
    return [(n, w / total) for n, w in scaled]


def find_style(name: str, styles: dict[str, Style], styles_dir: str | os.PathLike) -> Style:
    style = styles.get(style_key(name))
    if style is None:
        names = ", ".join(sorted(printable(s.name) for s in styles.values())) or "none"
        raise ToonFaceError(f"unknown style {printable(repr(name))} in {printable(str(styles_dir))}; "
                            f"available: {names}")
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
        # each style's weights fit its architecture and are finite (naming the file), so the
        # keys and shapes of all of them agree and the mean is finite
        state, gcfg, _ = _generator_parts(style.path, load_checkpoint_file(style.path))
        check_generator_weights(style.path, state, gcfg)
        for k, v in state.items():
            out[k] = out.get(k, 0) + w * v.float()
    return out


class StyleRegistry:
    """The styles of one styles folder, scanned once.

    ``styles``: {style key: :class:`Style`} as :func:`scan_styles` found them when the registry
    was made (``warn`` got one line per skipped file then). :meth:`load` reads only the files of
    the styles a spec names, so a service that loads styles on demand pays one file read per
    style, not a rescan of the folder. Raises ToonFaceError when the folder is unusable.
    """

    def __init__(self, styles_dir: str | os.PathLike = DEFAULT_STYLES_DIR,
                 warn: Callable[[str], Any] | None = None):
        self.styles_dir = styles_dir
        self.styles = scan_styles(styles_dir, warn)

    def find(self, name: str) -> Style:
        """The style called ``name`` (any case or Unicode spelling); ToonFaceError naming the
        available ones otherwise."""
        return find_style(name, self.styles, self.styles_dir)

    def load(self, spec: str, device: str | torch.device = "cpu") -> tuple[Generator, dict[str, Any]]:
        """(generator in eval mode, metadata) of a style name or a blend of styles.

        A single style is its generator file as saved (bit for bit; ``file`` in the metadata
        says which); a blend's metadata is the first style's, with ``style`` set to the
        normalised spec and ``blend`` listing the parts (name, weight, file). Raises
        ToonFaceError (one line) for a malformed spec, an unknown name, styles that cannot be
        blended or a file that changed into something else since the scan.
        """
        return _load_chosen([(self.find(n), w) for n, w in parse_style_spec(spec)], device)


def load_style(spec: str, styles_dir: str | os.PathLike = DEFAULT_STYLES_DIR,
               device: str | torch.device = "cpu", warn: Callable[[str], Any] | None = None
               ) -> tuple[Generator, dict[str, Any]]:
    """``StyleRegistry(styles_dir, warn).load(spec, device)``: for a command that loads one
    style once (a service keeps a :class:`StyleRegistry`)."""
    parse_style_spec(spec)  # a malformed spec fails before the folder is scanned
    return StyleRegistry(styles_dir, warn).load(spec, device)


def choose_generator(checkpoint: str | os.PathLike | None, style: str | None,
                     styles_dir: str | os.PathLike = DEFAULT_STYLES_DIR,
                     device: str | torch.device = "cpu", warn: Callable[[str], Any] | None = None
                     ) -> tuple[Generator, dict[str, Any]]:
    """(generator, metadata) of ``--checkpoint`` or ``--style`` (exactly one of them; a
    checkpoint is a generator file, full training checkpoint or run folder,
    :func:`utils.run_dir.resolve_generator`). Raises ToonFaceError (one line) otherwise."""
    if checkpoint and style:
        raise ToonFaceError("give --checkpoint PATH or --style NAME, not both")
    if style:
        return load_style(style, styles_dir, device, warn)
    if not checkpoint:
        raise ToonFaceError("which generator? give --checkpoint PATH or --style NAME "
                            "(--list-styles shows the styles)")
    return load_generator(resolve_generator(checkpoint), device)


def _load_chosen(chosen: list[tuple[Style, float]], device: str | torch.device
                 ) -> tuple[Generator, dict[str, Any]]:
    if len(chosen) == 1:
        G, meta = load_generator(chosen[0][0].path, device)
        return G, {**meta, "file": str(chosen[0][0].path)}
    state = blend_weights(chosen)
    G, meta = load_generator(chosen[0][0].path)
    G.load_state_dict(state)
    label = ",".join(f"{s.name}={w:.4g}" for s, w in chosen)
    check_generator_output(f"the blend {printable(label)}", G)
    meta = {**meta, "style": label, "blend": [(s.name, w, str(s.path)) for s, w in chosen],
            "metrics": None, "step": None}
    return G.to(device).eval(), meta
