"""The README's figures: skimage's public-domain astronaut portrait (NASA, 512x512) and its
cartoon by one generator or several, side by side, with a label strip.

    .venv/bin/python -m studies.demo_figure --checkpoint checkpoints/demo --out astronaut.png
    .venv/bin/python -m studies.demo_figure --checkpoint RUN_A --label "A" \\
        --checkpoint RUN_B --label "B" --out compare.png

The cartoon is made the way cartoonize.py --portrait makes it (``inference.Cartoonizer``,
portrait mode: the face scaled to the generator's training face size). The figure is written
at ``--width`` pixels per image (area-resampled) so the committed PNG stays small.
"""
from __future__ import annotations

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--checkpoint", "checkpoints", required=True, multiple=True,
              help="generator file or run folder (repeat for one column each)")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG to write")
@click.option("--width", type=click.IntRange(min=64), default=256, show_default=True,
              help="pixels per image in the figure")
@click.option("--label", "labels", multiple=True,
              help="caption of each cartoon, in --checkpoint order (e.g. the model's settings)")
@click.option("--device", default="cpu", show_default=True)
def main(checkpoints: tuple[str, ...], out: str, width: int, labels: tuple[str, ...],
         device: str) -> None:
    """Write photo | cartoon (| cartoon ...) of the astronaut portrait."""
    from utils.errors import call_or_exit

    if len(labels) > len(checkpoints):
        raise click.UsageError(f"{len(labels)} --label for {len(checkpoints)} --checkpoint")
    call_or_exit(write_figure, checkpoints, out, width, labels, device)
    click.echo(f"figure: {out}")


def write_figure(checkpoints, out: str, width: int, labels=(), device: str = "cpu") -> None:
    """photo | cartoon per checkpoint, each ``width`` px square, under a strip of captions."""
    import cv2
    import numpy as np

    from datasets.demo import astronaut
    from inference.cartoonizer import Cartoonizer
    from training.visuals import save_png

    if isinstance(checkpoints, str):
        checkpoints = (checkpoints,)
    if isinstance(labels, str):
        labels = (labels,)
    photo = astronaut()
    images, captions = [photo], ["photo (skimage astronaut, public domain)"]
    for i, checkpoint in enumerate(checkpoints):
        toon = Cartoonizer.from_checkpoint(checkpoint, device, portrait=True,
                                           notice=lambda m: click.echo(f"notice: {m}", err=True))
        images.append(toon(photo))
        captions.append(labels[i] if i < len(labels) and labels[i] else "cartoon")
    n, gap = len(images), 4
    full = n * width + (n - 1) * gap
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.36
    lines = [wrap_caption(text, width - 8, lambda t: cv2.getTextSize(t, font, scale, 1)[0][0])
             for text in captions]
    line_height = 14
    strip = np.full((line_height * max(map(len, lines)) + 8, full, 3), 255, np.uint8)
    row = np.full((width, full, 3), 255, np.uint8)
    for i, (im, caption_lines) in enumerate(zip(images, lines)):
        x = i * (width + gap)
        row[:, x:x + width] = cv2.resize(im, (width, width), interpolation=cv2.INTER_AREA)
        for j, line in enumerate(caption_lines):
            cv2.putText(strip, line, (x + 4, 15 + j * line_height), font, scale, (0, 0, 0), 1,
                        cv2.LINE_AA)
    save_png(out, np.concatenate([strip, row], axis=0))


def wrap_caption(text: str, max_width: int, text_width) -> list[str]:
    """``text`` broken at spaces into lines whose ``text_width`` (pixels) fits ``max_width``; a
    single word wider than that is cut to fit rather than spilling into the next column."""
    lines: list[str] = []
    for word in text.split():
        while text_width(word) > max_width and len(word) > 1:
            word = word[:-1]
        if lines and text_width(f"{lines[-1]} {word}") <= max_width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


if __name__ == "__main__":
    main()
