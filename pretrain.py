"""Pretrain the generator to reconstruct photos (pixel L1), as white-box does before GAN training.

    .venv/bin/python pretrain.py --photo_dir dataset/photo_face --total_iter 50000
"""
import click

from training.cli import run_command
from training.config import click_options


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click_options("pretrain")
@click.pass_context
def main(ctx, **params):
    """Pretrain the white-box generator (pixel L1 between G(photo) and photo)."""
    from training.loop import pretrain

    run_command("pretrain", ctx, params, pretrain)


if __name__ == "__main__":
    main()
