"""Evaluate a trained generator on held-out faces, or score any folder of outputs: metrics.json
(dlib nme68 and identity, mediapipe NME, style statistics, FID/KID), per_image.csv, index.html
(and for a generator: side-by-side grids and the per-image crops and outputs).

    .venv/bin/python test.py --model_version 49 --batch 500        # run v49, generator of step 500
    .venv/bin/python test.py --checkpoint checkpoints/v49/generator/latest.pt --photo_dir my_faces --num 64
    .venv/bin/python test.py --outputs other_tool/ --photo_dir my_faces --out scores/other_tool
"""

import click

from faces.dlib_analyser import DETECTORS as DLIB_DETECTORS
from evaluation.evaluate import (DEFAULT_DLIB_DETECTOR, DEFAULT_DLIB_UPSAMPLE, DEFAULT_MAX_REAL,
                                 INFERENCE_GF_EPS)
from inference.cli import generator_options
from representations.structure import STRUCTURE_METHODS as SUPERPIXEL_METHODS
from utils.numbers import FiniteFloat

# Options that choose or run a generator: meaningless when scoring a folder of outputs.
GENERATOR_OPTIONS = ("model_version", "name", "step", "checkpoint", "style", "styles_dir", "batch_size",
                     "image_size", "gf_eps", "metrics")
FLAG_NAMES = {"step": "--batch", "metrics": "--metrics/--no-metrics", "styles_dir": "--styles-dir"}


def _refuse(message: str):
    from utils.errors import ToonFaceError

    raise ToonFaceError(message)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--model_version", "--model-version", type=click.IntRange(min=0), default=None,
              help="the seed's run number: run v<N>")
@click.option("--name", type=str, default=None, help="run name (folder under --checkpoints_dir)")
@click.option("--batch", "--step", "step", type=click.IntRange(min=0), default=None,
              help="training step of the generator (generator/step_XXXXXX.pt)  [default: latest]")
@generator_options
@click.option("--checkpoints_dir", "--checkpoints-dir", default="checkpoints", show_default=True,
              help="folder holding run folders")
@click.option("--outputs", type=click.Path(), default=None,
              help="score this folder of outputs (any tool's) against --photo_dir instead of "
                   "running a generator; files pair by name without extension (00049.jpg with "
                   "00049.png)")
@click.option("--photo_dir", "--photo-dir", type=click.Path(), default=None,
              help="photos to evaluate  [default: the run's held-out photos, heldout.txt]")
@click.option("--cartoon_dir", "--cartoon-dir", type=click.Path(), default=None,
              help="cartoon set for FID/KID to cartoons  [default: the run's cartoon_dir]")
@click.option("--num", type=click.IntRange(min=1), default=None, help="evaluate the first N photos")
@click.option("--out", type=click.Path(), default=None,
              help="output folder; none of its files may land in a folder test.py reads "
                   "(photos, outputs, cartoons), nor replace a file test.py did not write  [default: "
                   "<run>/test/step_XXXXXX; with --outputs DIR: DIR_scores]")
@click.option("--inception", type=click.Path(), default=None,
              help="Inception TorchScript file (inception-2015-12-05.pt; a TorchScript file is a "
                   "program and loading it runs its code: use a file you trust)  [default: "
                   "checkpoints/, then the torch hub cache; FID/KID are skipped without it]")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N")
@click.option("--batch_size", "--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="photos per generator forward")
@click.option("--image_size", "--image-size", type=click.IntRange(min=8), default=None,
              help="centre-crop size  [default: the training image_size]")
@click.option("--superpixel", type=click.Choice(SUPERPIXEL_METHODS), default=None,
              help="structure backend  [default: the run's]")
@click.option("--seg_num", "--seg-num", type=click.IntRange(min=2), default=None,
              help="superpixels per image  [default: the run's]")
@click.option("--gf_eps", "--gf-eps", type=FiniteFloat(min=0, min_open=True),
              default=INFERENCE_GF_EPS,
              show_default=True, help="eps of the guided filter after G (inference value)")
@click.option("--max_real", "--max-real", type=click.IntRange(min=2), default=DEFAULT_MAX_REAL,
              show_default=True, help="cartoon images in the FID reference set (fixed random subset)")
@click.option("--landmark-detector", "--landmark_detector", "landmark_detector", default=None,
              help="training landmark detector, of the map column and nme_mediapipe: mediapipe, "
                   "mediapipe-tasks or dlib (dlib: no nme_mediapipe)  [default: the run's, else "
                   "mediapipe where installed, else dlib]")
@click.option("--landmark-model", "--landmark_model", "landmark_model", type=click.Path(), default=None,
              help="FaceLandmarker .task file for --landmark-detector mediapipe-tasks")
@click.option("--dlib-detector", "--dlib_detector", "dlib_detector", type=click.Choice(DLIB_DETECTORS),
              default=DEFAULT_DLIB_DETECTOR, show_default=True,
              help="face detector of the dlib judge (nme68, identity): hog (fast) or cnn (MMOD: "
                   "finds more non-frontal faces, tens of times slower)")
@click.option("--dlib-upsample", "--dlib_upsample", "dlib_upsample", type=click.IntRange(min=0),
              default=DEFAULT_DLIB_UPSAMPLE, show_default=True,
              help="times the dlib detector doubles the image first (1: faces down to ~40 px)")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True,
              help="processes for the dlib judge (0: in this one)")
@click.option("--metrics/--no-metrics", default=True, show_default=True,
              help="compute metrics (off: grids and images only)")
def main(**opts):
    """Run a generator on held-out photos and measure it, or score a folder of outputs."""
    from evaluation.config import EvalConfig
    from evaluation.evaluate import evaluate, evaluate_outputs
    from utils.errors import call_or_exit

    echo = lambda m: click.echo(m, err=True)  # noqa: E731
    if opts["outputs"] is not None:
        ctx = click.get_current_context()
        given = [o for o in GENERATOR_OPTIONS
                 if ctx.get_parameter_source(o) is not click.core.ParameterSource.DEFAULT]
        if given:
            flags = ", ".join(FLAG_NAMES.get(o, "--" + o) for o in given)
            call_or_exit(_refuse, f"--outputs scores a folder of outputs: {flags} "
                                  "apply to a generator only")
        for o in GENERATOR_OPTIONS:
            opts.pop(o)
        res = call_or_exit(evaluate_outputs, **opts, echo=echo)
    else:
        opts.pop("outputs")
        res = call_or_exit(lambda: evaluate(EvalConfig.of(**opts), echo=echo))
    s = res["metrics"].get("summary", {})
    if s:
        click.echo("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in s.items()))
    click.echo(f"metrics: {res['metrics_path']}")
    click.echo(f"per image: {res['per_image_path']}")
    click.echo(f"index: {res['index']}")


if __name__ == "__main__":
    main()
