"""Train ToonFace: the white-box recipe (surface, texture, structure, content, tv) plus the
landmark loss. Starts from the latest pretrained generator unless --init says otherwise.

    .venv/bin/python train.py --total_iter 30000 --model_version 1 --w0 1e5 --w1 2e-1 --w2 5 --w3 2e1 --w4 6e-1
"""
import click

from training.cli import run_command
from training.config import click_options


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click_options("train")
@click.pass_context
def main(ctx, **params):
    """Train the generator against the surface and texture discriminators."""
    from training.loop import train

    run_command("train", ctx, params, train)


if __name__ == "__main__":
    main()
