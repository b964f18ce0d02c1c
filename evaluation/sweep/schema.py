"""The sweep (study) file: read within bounds, checked whole against its schema.

What a file may hold (anything else is a problem)::

    runs:      [{train options}, ...]         # or the whole file is this list
    base:      {train options}                # shared by every run
    pretrain:  {pretrain options} | null      # null or absent: no pretrain stage
    evaluate:  {reference: {dir: FOLDER, label: TEXT},
                portrait:  {photo_dir: FOLDER, photos: [stem, ...]},
                pretrained: true | false,
                last_saves: N}                # score each run's last N saved generators
    compare:   {replicate: OPTION, baseline: {train options} | [{train options}, ...],
                paired: [metric, ...]}            # several baselines: each in turn

Option values are checked by type before the option's own click type converts them: a flag
takes true/false, a whole number an integer (never 1.5, never a list), a number a finite number
(YAML's ``.inf`` and ``.nan`` are refused, as ``--lr inf`` is), a path or a name text (never a
number: ``dir: 5`` is a mistake, not a folder). Every problem of the file is reported, one line
each (``StudyFileError``), before anything runs.

Bounds, so that a small file cannot take the machine (a 393-byte YAML "alias bomb" of nested
anchors expands to gigabytes once anything walks it): at most :data:`MAX_FILE_BYTES` bytes,
nesting at most :data:`MAX_DEPTH` deep, and at most :data:`MAX_VALUES` values once every alias
is expanded. Aliases and merge keys themselves are allowed (sharing an option set between runs
is what they are for); the bound is on what they expand to, counted on the parsed graph
without expanding it. Duplicate keys in a mapping are a problem (YAML and JSON would keep the
last silently), and so are two spellings of one option (``w5`` and ``w-landmark``).

Kept apart from ``plan`` so that ``plan`` (commands) and ``report`` (the compare section's
metrics) both read the one schema without importing each other.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from training.config import Opt, options_for
from utils.errors import ToonFaceError

# The sweep owns these: each run's name, and whether it resumes.
RESERVED = {"name", "model_version", "resume", "dry_run"}
# Sections a sweep file may hold besides base and runs.
FILE_KEYS = {"base", "runs", "pretrain", "evaluate", "compare"}
EVALUATE_KEYS = ("reference", "portrait", "pretrained", "last_saves")
COMPARE_KEYS = ("replicate", "baseline", "paired")
# Per-image metrics a study may compare pairwise (lower is better), and the default pair.
LOWER_IS_BETTER = ("nme68", "identity_distance", "nme_mediapipe", "nme")
DEFAULT_PAIRED = ["nme68", "identity_distance"]
# Bounds of a study file. The committed studies hold about 100 values in 3 KB; a generated
# study of hundreds of runs stays far below these.
MAX_FILE_BYTES = 1 << 20
MAX_VALUES = 50_000
MAX_DEPTH = 32


class StudyFileError(ToonFaceError):
    """Every problem of a study file, one line each (the CLI prints each as an error line)."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


# ------------------------------------------------------------------------ option sets
def option_names(kind: str = "train") -> dict[str, Opt]:
    """Every spelling of a ``kind`` option (underscore, dash, aliases) -> its Opt."""
    names: dict[str, Opt] = {}
    for o in options_for(kind):
        for n in (o.name, o.name.replace("_", "-"), *o.aliases):
            names[n] = o
    return names


def canonical(key: str, kind: str = "train") -> Opt:
    """The Opt of a ``kind`` option spelled any way; ToonFaceError for unknown and reserved keys."""
    key = key.strip().lstrip("-")
    names = option_names(kind)
    opt = names.get(key)
    if opt is None:
        import difflib

        close = difflib.get_close_matches(key, list(names), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        script = "train" if kind == "train" else kind
        raise ToonFaceError(f"unknown {script} option '{key}'{hint}")
    if opt.name in RESERVED:
        raise ToonFaceError(f"option '{key}' is set by the sweep itself and cannot be swept")
    return opt


def describe(value: Any) -> str:
    """A value as a problem line names it: "the number 5", "a list [1, 2]", "true"."""
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, (int, float)):
        return f"the number {shown}"
    if isinstance(value, str):
        return f"the text {shown}"
    if isinstance(value, (list, tuple)):
        return f"a list {shown}"
    if isinstance(value, dict):
        return f"a mapping {shown}"
    return f"a {type(value).__name__}"


def _type_problem(opt: Opt, value: Any) -> str | None:
    """Why ``value`` is not of the kind ``opt`` takes (before its click type converts it)."""
    t = opt.type
    if opt.is_flag:
        return None if isinstance(value, (bool, str)) else f"expected true or false, got {describe(value)}"
    if isinstance(t, click.IntRange) or t is click.INT:
        if isinstance(value, bool) or isinstance(value, (list, tuple, dict)):
            return f"expected a whole number, got {describe(value)}"
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            return f"expected a whole number, got {describe(value)}"
        return None
    if isinstance(t, (click.FloatRange, click.types.FloatParamType)):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            return f"expected a number, got {describe(value)}"
        return None
    if isinstance(t, click.Choice):
        return None if isinstance(value, str) else f"expected one of {', '.join(t.choices)}, got {describe(value)}"
    if opt.name == "heldout_people" and isinstance(value, (list, tuple)):
        bad = next((v for v in value if not isinstance(v, str)), None)
        if bad is not None or not value:
            return ("expected a list of file stems in quotes (\"00051\": YAML reads 00051 as the "
                    f"octal number 41), got {describe(bad) if value else 'an empty list'}")
        return None
    if not isinstance(value, str):
        return f"expected text (a name or a path), got {describe(value)}"
    return None


def convert(opt: Opt, value: Any, where: str) -> Any:
    """A value checked by kind (see the module docstring) and converted with the option's
    click type; ToonFaceError (one line) naming ``where`` and the option otherwise."""
    if value is None:
        if opt.default is None and not opt.is_flag:
            return None
        raise ToonFaceError(f"{where}: bad value None for --{opt.name}: null is not a value of this option")
    problem = _type_problem(opt, value)
    if problem:
        raise ToonFaceError(f"{where}: bad value for --{opt.name}: {problem}")
    if opt.name == "heldout_people" and isinstance(value, (list, tuple)):
        # a YAML list of stems reads better than one long string
        value = ",".join(value)
    try:
        if opt.is_flag:
            return click.BOOL.convert(value, None, None)
        ctype = click.types.convert_type(opt.type)
        return ctype.convert(value, None, None)
    except click.BadParameter as exc:
        raise ToonFaceError(f"{where}: bad value {value!r} for --{opt.name}: {exc.message}") from None


# ------------------------------------------------------------------------- reading
class _Spot:
    """Where a value sits in the file, for the problem lines: ``line N`` (YAML only)."""

    def __init__(self, lines: dict[tuple, int] | None = None):
        self.lines = lines or {}

    def at(self, *path) -> str:
        line = self.lines.get(tuple(path))
        return f" (line {line})" if line else ""


def _yaml(text: str, problems: list[str]) -> tuple[Any, _Spot]:
    """Parse YAML text within the bounds (module docstring); duplicate keys are problems."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except RecursionError:
            raise ToonFaceError(f"nested deeper than this reader allows (at most {MAX_DEPTH} levels)") from None
        except yaml.YAMLError as exc:
            raise ToonFaceError(f"not valid YAML ({str(exc).splitlines()[0]})") from None
        if root is None:
            return None, _Spot()
        lines = _check_graph(root, problems)
        try:  # SafeLoader: a tag that would run code (!!python/object) is an error, never a call
            return loader.construct_document(root), _Spot(lines)
        except yaml.YAMLError as exc:
            raise ToonFaceError(f"not valid YAML ({str(exc).splitlines()[0]})") from None
    finally:
        loader.dispose()


def _check_graph(root, problems: list[str]) -> dict[tuple, int]:
    """Count the values the node graph expands to (aliases count every time they are used:
    computed per node, never expanded), refuse more than MAX_VALUES or deeper than MAX_DEPTH,
    note duplicate keys, and map each key path of the expanded document to its line."""
    import yaml

    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    # post-order over the graph (a DAG: YAML aliases can only point back to earlier anchors)
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in size:
            continue
        kids = _children(node)
        if not done:
            stack.append((node, True))
            stack.extend((k, False) for k in kids if id(k) not in size)
            continue
        size[id(node)] = 1 + sum(size[id(k)] for k in kids)
        depth[id(node)] = 1 + max((depth[id(k)] for k in kids), default=0)
        if size[id(node)] > MAX_VALUES:
            raise ToonFaceError(f"expands to more than {MAX_VALUES} values (YAML aliases repeat what "
                                "they name each time they are used: an alias bomb?)")
        if depth[id(node)] > MAX_DEPTH:
            raise ToonFaceError(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for k, _ in node.value:
                if not isinstance(k, yaml.ScalarNode) or k.tag == "tag:yaml.org,2002:merge":
                    continue
                if (k.tag, k.value) in seen:
                    problems.append(f"line {k.start_mark.line + 1}: duplicate key '{k.value}' (first "
                                    f"on line {seen[(k.tag, k.value)].start_mark.line + 1}; "
                                    "the later value would win silently)")
                else:
                    seen[(k.tag, k.value)] = k
    lines: dict[tuple, int] = {}
    walk: list[tuple[Any, tuple]] = [(root, ())]
    while walk:  # bounded: the expanded document holds at most MAX_VALUES values
        node, path = walk.pop()
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode):
                    lines[path + (k.value,)] = k.start_mark.line + 1  # the last one wins
                    walk.append((v, path + (k.value,)))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                lines.setdefault(path + (i,), v.start_mark.line + 1)
                walk.append((v, path + (i,)))
    return lines


def _children(node) -> list:
    import yaml

    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _json(text: str, problems: list[str]) -> Any:
    def pairs(items: list[tuple[str, Any]]) -> dict:
        out: dict[str, Any] = {}
        for k, v in items:
            if k in out:
                problems.append(f"duplicate key '{k}' (the later value would win silently)")
            out[k] = v
        return out

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except RecursionError:
        raise ToonFaceError("nested deeper than this reader allows") from None
    except json.JSONDecodeError as exc:
        raise ToonFaceError(f"not valid JSON ({exc})") from None
    count, stack = 0, [(data, 1)]
    while stack:
        value, level = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise ToonFaceError(f"holds more than {MAX_VALUES} values")
        if level > MAX_DEPTH:
            raise ToonFaceError(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            stack.extend((v, level + 1) for kv in value.items() for v in kv)
        elif isinstance(value, list):
            stack.extend((v, level + 1) for v in value)
    return data


def load_study(path: Path, problems: list[str]) -> tuple[Any, _Spot]:
    """The parsed file (and where its values sit); structural problems are appended to
    ``problems``; a file that cannot be read within the bounds raises ToonFaceError."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ToonFaceError(f"cannot read it ({exc.strerror or type(exc).__name__})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ToonFaceError(f"larger than {MAX_FILE_BYTES // 1024} KiB: not a study file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ToonFaceError("not UTF-8 text") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml  # noqa: F401
        except ImportError:
            raise ToonFaceError("reading YAML needs PyYAML (pip install PyYAML), or use JSON") from None
        return _yaml(text, problems)
    return _json(text, problems), _Spot()


# ------------------------------------------------------------------------- the schema
@dataclass
class SweepFile:
    """A sweep file: ``base`` and ``runs`` (train options), ``pretrain`` (pretrain options, or
    None: no pretraining stage), ``evaluate`` and ``compare`` (see :mod:`evaluation.sweep`)."""
    base: dict[str, Any] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=lambda: [{}])
    pretrain: dict[str, Any] | None = None
    evaluate: dict[str, Any] = field(default_factory=dict)
    compare: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


class _Checker:
    def __init__(self, path: Path, spot: _Spot, problems: list[str]):
        self.path, self.spot, self.problems = path, spot, problems

    def add(self, where: str, message: str, *at) -> None:
        self.problems.append(f"{where}: {message}{self.spot.at(*at)}")

    def options(self, d: Any, where: str, kind: str, *at) -> dict[str, Any]:
        """Keys spelled any way -> canonical option names; values checked and converted."""
        if d is None:
            return {}
        if not isinstance(d, dict):
            self.add(where, f"expected a mapping of {kind} options, got {describe(d)}", *at)
            return {}
        out: dict[str, Any] = {}
        spelled: dict[str, str] = {}
        for k, v in d.items():
            try:
                opt = canonical(str(k), kind)
            except ToonFaceError as exc:
                self.add(where, str(exc), *at, k)
                continue
            if opt.name in spelled:
                self.add(where, f"'{spelled[opt.name]}' and '{k}' both set --{opt.name}", *at, k)
                continue
            spelled[opt.name] = str(k)
            try:
                out[opt.name] = convert(opt, v, where)
            except ToonFaceError as exc:
                self.problems.append(f"{exc}{self.spot.at(*at, k)}")
        return out

    def text(self, d: dict, key: str, where: str, *at, required: bool = False) -> str | None:
        v = d.get(key)
        if v is None:
            if required:
                self.add(where, f"{key}: missing", *at)
            return None
        if not isinstance(v, str):
            self.add(where, f"{key}: expected text (a name or a path), got {describe(v)}", *at, key)
            return None
        return v

    def evaluate(self, ev: Any) -> dict[str, Any]:
        where = f"{self.path}: evaluate"
        if ev is None:
            return {}
        if not isinstance(ev, dict):
            self.add(where, f"expected a mapping ({', '.join(EVALUATE_KEYS)}), got {describe(ev)}", "evaluate")
            return {}
        out: dict[str, Any] = {}
        unknown = sorted(str(k) for k in ev if k not in EVALUATE_KEYS)
        if unknown:
            self.add(where, f"unknown key(s) {', '.join(unknown)} (expected {', '.join(EVALUATE_KEYS)})", "evaluate")
        if "pretrained" in ev:
            if isinstance(ev["pretrained"], bool):
                out["pretrained"] = ev["pretrained"]
            else:
                self.add(where, f"pretrained: expected true or false, got {describe(ev['pretrained'])}",
                         "evaluate", "pretrained")
        if "last_saves" in ev:
            n = ev["last_saves"]
            if isinstance(n, int) and not isinstance(n, bool) and n >= 1:
                out["last_saves"] = n
            else:
                self.add(where, f"last_saves: expected a whole number of at least 1, got {describe(n)}",
                         "evaluate", "last_saves")
        ref = ev.get("reference")
        if ref is not None:
            if not isinstance(ref, dict):
                self.add(where, f"reference: expected {{dir: FOLDER, label: TEXT}}, got {describe(ref)}",
                         "evaluate", "reference")
            else:
                extra = sorted(str(k) for k in ref if k not in ("dir", "label"))
                if extra:
                    self.add(where, f"reference: unknown key(s) {', '.join(extra)} (expected dir, label)",
                             "evaluate", "reference")
                d = self.text(ref, "dir", f"{where}: reference", "evaluate", "reference", required=True)
                label = self.text(ref, "label", f"{where}: reference", "evaluate", "reference")
                if d is not None:
                    out["reference"] = {"dir": d, **({"label": label} if label is not None else {})}
        por = ev.get("portrait")
        if por is not None:
            if not isinstance(por, dict):
                self.add(where, f"portrait: expected {{photo_dir: FOLDER, photos: [stems]}}, got "
                         f"{describe(por)}", "evaluate", "portrait")
            else:
                extra = sorted(str(k) for k in por if k not in ("photo_dir", "photos"))
                if extra:
                    self.add(where, f"portrait: unknown key(s) {', '.join(extra)} (expected photo_dir, photos)",
                             "evaluate", "portrait")
                d = self.text(por, "photo_dir", f"{where}: portrait", "evaluate", "portrait", required=True)
                photos = por.get("photos")
                if not isinstance(photos, list) or not photos or not all(isinstance(p, str) for p in photos):
                    bad = next((p for p in photos if not isinstance(p, str)), None) if isinstance(photos, list) else photos
                    self.add(where, "portrait: photos: expected a list of file stems in quotes "
                             f"([\"00051\", wb_party5]), got {describe(bad) if photos else 'none'}",
                             "evaluate", "portrait", "photos")
                elif d is not None:
                    out["portrait"] = {"photo_dir": d, "photos": list(photos)}
        return out

    def compare(self, c: Any) -> dict[str, Any]:
        where = f"{self.path}: compare"
        if c is None:
            return {}
        if not isinstance(c, dict):
            self.add(where, f"expected a mapping ({', '.join(COMPARE_KEYS)}), got {describe(c)}", "compare")
            return {}
        out: dict[str, Any] = {}
        unknown = sorted(str(k) for k in c if k not in COMPARE_KEYS)
        if unknown:
            self.add(where, f"unknown key(s) {', '.join(unknown)}", "compare")
        if "replicate" in c:
            rep = c["replicate"]
            if not isinstance(rep, str):
                self.add(where, f"replicate: expected an option name (e.g. seed), got {describe(rep)}",
                         "compare", "replicate")
            else:
                try:
                    out["replicate"] = canonical(rep).name
                except ToonFaceError as exc:
                    self.add(where, f"replicate: {exc}", "compare", "replicate")
        if "baseline" in c:
            base = c["baseline"]
            many = isinstance(base, list)
            if not (isinstance(base, dict) or (many and base and all(isinstance(b, dict) for b in base))):
                self.add(where, "baseline: expected options, e.g. {w5: 0}, or a list of them, got "
                         f"{describe(base)}", "compare", "baseline")
            elif many:
                out["baseline"] = [self.options(b, f"{where} baseline {i + 1}", "train", "compare",
                                                "baseline", i) for i, b in enumerate(base)]
            else:
                out["baseline"] = self.options(base, f"{where} baseline", "train", "compare", "baseline")
        if "paired" in c:
            paired = c["paired"]
            if not isinstance(paired, list) or not all(isinstance(m, str) for m in paired):
                self.add(where, "paired: expected a list of per-image metrics (e.g. [nme68, "
                         f"identity_distance]), got {describe(paired)}", "compare", "paired")
            else:
                bad = [m for m in paired if m not in LOWER_IS_BETTER]
                if bad:
                    self.add(where, f"paired: {bad[0]} is not a per-image metric where lower is "
                             f"better ({', '.join(LOWER_IS_BETTER)})", "compare", "paired")
                else:
                    out["paired"] = list(paired)
        return out


def read_sweep_file(path: str | Path) -> SweepFile:
    """A JSON or YAML sweep file checked whole (module docstring). Raises StudyFileError (a
    ToonFaceError, one line per problem) or ToonFaceError (a file that cannot be read)."""
    path = Path(path)
    if not path.is_file():
        raise ToonFaceError(f"sweep file not found: {path}")
    problems: list[str] = []
    try:
        data, spot = load_study(path, problems)
    except ToonFaceError as exc:
        raise ToonFaceError(f"{path}: {exc}") from None
    problems[:] = [f"{path}: {p}" for p in problems]
    check = _Checker(path, spot, problems)
    sections: dict[str, Any] = {}
    runs: Any = data
    if isinstance(data, dict):
        unknown = sorted(str(k) for k in data if k not in FILE_KEYS)
        if unknown:
            problems.append(f"{path}: unknown section(s) {', '.join(unknown)} (expected "
                            f"{', '.join(sorted(FILE_KEYS))})")
        sections, runs = data, data.get("runs")
    shape = "expected a list of option sets, or {\"base\": {...}, \"runs\": [...]}"
    out_runs: list[dict[str, Any]] = []
    if not isinstance(runs, list) or not runs:
        problems.append(f"{path}: {shape}" + ("" if runs is None or isinstance(runs, list)
                                              else f"; runs is {describe(runs)}"))
    else:
        at = ("runs",) if sections else ()
        for i, d in enumerate(runs):
            if not isinstance(d, dict):
                check.add(f"{path} run {i}", f"expected a mapping of train options, got {describe(d)}", *at, i)
                continue
            out_runs.append(check.options(d, f"{path} run {i}", "train", *at, i))
    base = check.options(sections.get("base"), f"{path} base", "train", "base")
    pre = sections.get("pretrain")
    pretrain = None if pre is None else check.options(pre, f"{path} pretrain", "pretrain", "pretrain")
    if pre is not None and not isinstance(pre, dict):
        problems[-1] += " ({} for the defaults)"
    evaluate = check.evaluate(sections.get("evaluate"))
    compare = check.compare(sections.get("compare"))
    if problems:
        raise StudyFileError(problems)
    return SweepFile(base=base, runs=out_runs, pretrain=pretrain, evaluate=evaluate,
                     compare=compare, path=path)
