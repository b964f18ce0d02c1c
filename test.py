"""Evaluate a trained generator on held-out faces: side-by-side grids, per-image outputs,
metrics.json (landmark NME, face-found rate, FID/KID, style statistics) and index.html.

    python test.py --model_version 49 --batch 500        # run v49, generator of step 500
    python test.py --checkpoint checkpoints/v49/generator/latest.pt --photo_dir my_faces --num 64
"""

import click

from evaluation.evaluate import DEFAULT_MAX_REAL, INFERENCE_GF_EPS
from representations.structure import STRUCTURE_METHODS as SUPERPIXEL_METHODS


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--model_version", "--model-version", type=click.IntRange(min=0), default=None,
              help="the seed's run number: run v<N>")
@click.option("--name", type=str, default=None, help="run name (folder under --checkpoints_dir)")
@click.option("--batch", "--step", "step", type=click.IntRange(min=0), default=None,
              help="training step of the generator (generator/step_XXXXXX.pt)  [default: latest]")
@click.option("--checkpoint", type=click.Path(), default=None,
              help="a generator / training checkpoint file or run folder (instead of a run name)")
@click.option("--checkpoints_dir", "--checkpoints-dir", default="checkpoints", show_default=True,
              help="folder holding run folders")
@click.option("--photo_dir", "--photo-dir", type=click.Path(), default=None,
              help="photos to evaluate  [default: the run's held-out photos, heldout.txt]")
@click.option("--cartoon_dir", "--cartoon-dir", type=click.Path(), default=None,
              help="cartoon set for FID/KID to cartoons  [default: the run's cartoon_dir]")
@click.option("--num", type=click.IntRange(min=1), default=None, help="evaluate the first N photos")
@click.option("--out", type=click.Path(), default=None,
              help="output folder  [default: <run>/test/step_XXXXXX]")
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
@click.option("--gf_eps", "--gf-eps", type=click.FloatRange(min=0), default=INFERENCE_GF_EPS,
              show_default=True, help="eps of the guided filter after G (inference value)")
@click.option("--max_real", "--max-real", type=click.IntRange(min=2), default=DEFAULT_MAX_REAL,
              show_default=True, help="cartoon images in the FID reference set (fixed random subset)")
@click.option("--landmark-detector", "--landmark_detector", "landmark_detector", default=None,
              help="landmark detector of the map column and the NME: mediapipe, mediapipe-tasks or "
                   "dlib  [default: the run's, else mediapipe where installed, else dlib]")
@click.option("--landmark-model", "--landmark_model", "landmark_model", type=click.Path(), default=None,
              help="FaceLandmarker .task file for --landmark-detector mediapipe-tasks")
@click.option("--metrics/--no-metrics", default=True, show_default=True,
              help="compute metrics (off: grids and images only)")
def main(**opts):
    """Run a generator on held-out photos and measure it."""
    from evaluation.evaluate import evaluate
    from utils.errors import call_or_exit

    res = call_or_exit(evaluate, **opts, echo=lambda m: click.echo(m, err=True))
    s = res["metrics"].get("summary", {})
    if s:
        click.echo("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in s.items()))
    click.echo(f"metrics: {res['metrics_path']}")
    click.echo(f"index: {res['index']}")


if __name__ == "__main__":
    main()
