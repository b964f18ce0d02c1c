"""Export a trained generator (+ final guided filter) to ONNX and/or TorchScript.

    .venv/bin/python export.py --checkpoint checkpoints/v1 --onnx toon.onnx --torchscript toon.pt
    .venv/bin/python export.py --style hayao=0.7,shinkai=0.3 --onnx blend.onnx

Both files take a photo (N, 3, H, W) in [-1, 1] (x / 127.5 - 1), any H and W, and return the
cartoon (N, 3, H, W) in [-1, 1]: cartoonize.py's result without tiling (context padding, guided
filter and clamp in the graph; see inference/export.py).
"""
from __future__ import annotations

from pathlib import Path

import click

from inference.cartoonizer import INFERENCE_EPS
from inference.cli import generator_options
from inference.styles import choose_generator
from utils.device import resolve_device
from utils.errors import ToonFaceError, call_or_exit
from utils.io import check_writable
from utils.numbers import FiniteFloat


def run_export(checkpoint: str | None, onnx_path: str | None, torchscript_path: str | None,
               eps: float = INFERENCE_EPS, size: tuple[int, int] = (256, 256), style: str | None = None,
               styles_dir: str = "checkpoints", overwrite: bool = False) -> list[str]:
    """Write the requested files; returns their paths. Raises ToonFaceError on user errors,
    all of them (outputs included) checked before the generator is loaded."""
    from inference.export import ExportableCartoonizer, check_size, export_onnx, export_torchscript

    if not onnx_path and not torchscript_path:
        raise ToonFaceError("nothing to do: give --onnx OUT and/or --torchscript OUT")
    check_size(*size)
    outputs = {flag: path for flag, path in (("--onnx", onnx_path), ("--torchscript", torchscript_path)) if path}
    if len({Path(p).resolve() for p in outputs.values()}) < len(outputs):
        raise ToonFaceError("--onnx and --torchscript name the same file: give each its own")
    for flag, path in outputs.items():
        check_writable(path, flag)
        if Path(path).exists() and not overwrite:
            raise ToonFaceError(f"{flag} {path}: the file exists; pass --overwrite to replace it")
    G, _ = choose_generator(checkpoint, style, styles_dir, resolve_device("cpu"))
    module = ExportableCartoonizer(G, eps=eps)
    written = []
    if onnx_path:
        written.append(str(export_onnx(module, onnx_path, *size)))
    if torchscript_path:
        written.append(str(export_torchscript(module, torchscript_path, *size)))
    return written


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@generator_options
@click.option("--onnx", "onnx_path", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Write an ONNX file (opset 17; dynamic batch, height and width).")
@click.option("--torchscript", "torchscript_path", type=click.Path(dir_okay=False, path_type=str),
              default=None, help="Write a TorchScript file (torch.jit.load; dynamic batch, height and width).")
@click.option("--eps", type=FiniteFloat(min=0.0, min_open=True), default=INFERENCE_EPS,
              show_default=True, help="eps of the final guided filter (r=1) baked into the graph.")
@click.option("--height", type=click.IntRange(min=4), default=256, show_default=True,
              help="Height of the example input used for tracing (multiple of 4; the files accept any).")
@click.option("--width", type=click.IntRange(min=4), default=256, show_default=True,
              help="Width of the example input used for tracing (multiple of 4).")
@click.option("--overwrite", is_flag=True, help="Replace output files that already exist.")
def main(checkpoint, style, styles_dir, onnx_path, torchscript_path, eps, height, width, overwrite):
    """Export generator + guided filter: input/output (N, 3, H, W) in [-1, 1], any H and W."""
    for path in call_or_exit(run_export, checkpoint, onnx_path, torchscript_path, eps, (height, width),
                             style, styles_dir, overwrite):
        click.echo(f"wrote {path}")


if __name__ == "__main__":
    main()
