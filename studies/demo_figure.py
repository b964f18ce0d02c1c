"""The README's figure: skimage's public-domain astronaut portrait (NASA, 512x512) and its
cartoon by a generator, side by side, with a label strip.

    .venv/bin/python -m studies.demo_figure --checkpoint <checkpoints_dir>/reference/<run> \\
        --out docs/reference_astronaut.png

The cartoon is made the way cartoonize.py --portrait makes it (``inference.Cartoonizer``,
portrait mode: the face scaled to the generator's training face size). The figure is written
at ``--width`` pixels per image (area-resampled) so the committed PNG stays small.
"""
from __future__ import annotations

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--checkpoint", required=True, help="generator file or run folder")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG to write")
@click.option("--width", type=click.IntRange(min=64), default=256, show_default=True,
              help="pixels per image in the figure")
@click.option("--label", default="", help="caption of the cartoon (e.g. the model's settings)")
@click.option("--device", default="cpu", show_default=True)
def main(checkpoint: str, out: str, width: int, label: str, device: str) -> None:
    """Write photo | cartoon of the astronaut portrait."""
    from utils.errors import call_or_exit

    call_or_exit(write_figure, checkpoint, out, width, label, device)
    click.echo(f"figure: {out}")


def write_figure(checkpoint: str, out: str, width: int, label: str, device: str) -> None:
    import cv2
    import numpy as np

    from datasets.demo import astronaut
    from inference.cartoonizer import Cartoonizer
    from training.visuals import save_png

    photo = astronaut()
    toon = Cartoonizer.from_checkpoint(checkpoint, device, portrait=True,
                                       notice=lambda m: click.echo(f"notice: {m}", err=True))
    cartoon = toon(photo)
    tiles = [cv2.resize(im, (width, width), interpolation=cv2.INTER_AREA) for im in (photo, cartoon)]
    strip = np.full((22, 2 * width + 4, 3), 255, np.uint8)
    for x, text in ((4, "photo (skimage astronaut, public domain)"), (width + 8, label or "cartoon")):
        cv2.putText(strip, text[:48], (x, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (0, 0, 0), 1, cv2.LINE_AA)
    row = np.full((width, 2 * width + 4, 3), 255, np.uint8)
    row[:, :width], row[:, width + 4:] = tiles
    save_png(out, np.concatenate([strip, row], axis=0))


if __name__ == "__main__":
    main()
