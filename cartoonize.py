"""Cartoonize photos, folders and videos with a trained generator.

    .venv/bin/python cartoonize.py photo.jpg holiday/ clip.mp4 --checkpoint checkpoints/v1 --out toon/
"""
from __future__ import annotations

import sys

import click

from inference.cartoonizer import (CONTEXT, DEFAULT_OVERLAP, DEFAULT_TILE, INFERENCE_EPS,
                                   MIN_OVERLAP)
from inference.cli import generator_options
from inference.files import IMAGE_EXTS, VIDEO_EXTS, cartoonize_files, collect_jobs
from media.limits import DEFAULT_MAX_ANIMATION_PIXELS, DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from inference.onnx_engine import ENGINES, load_cartoonizer
from inference.styles import format_styles, scan_styles
from inference.temporal import DEFAULT_FLOW_MAX_SIDE
from utils.errors import ToonFaceError
from utils.io import check_writable
from utils.numbers import FiniteFloat
from utils.memory import retain_freed_memory

EPILOG = (f"Images: {' '.join(IMAGE_EXTS)} -> <out>/<path>/<stem>.png, sRGB-tagged (colour "
          "profiles converted to sRGB, gray stays gray, alpha kept and the colour under alpha = 0 "
          "ignored, EXIF orientation applied, 16-bit read at full range); animations (GIF, APNG, "
          "WebP) -> animated PNG with every frame, frame times and loop count; multi-page TIFFs are "
          "refused. Videos: "
          f"{' '.join(VIDEO_EXTS)} -> <out>/<path>/<stem>.mp4 (.mov stays .mov): H.264 "
          "(yuv420p, plays in browsers), audio copied (re-encoded to AAC only where the "
          "container cannot hold it), every frame kept with its time stamp (frame count, fps, "
          "variable frame rates), rotation metadata applied to the pixels (upright output), odd "
          "sizes padded to even with a notice (H.264 4:2:0 codes sizes in steps of 2). Folders "
          "are searched recursively (files already in --out are skipped; symbolic links to "
          "folders are not followed; broken links are an error each); an output never "
          "overwrites an input, nor an existing file without --overwrite. Images get "
          f"{CONTEXT} px of context (their edge pixels repeated) so the border has no frame; "
          "large ones run in seamless tiles (--tile). Exit status: 0 all done, 1 some inputs "
          "failed or were skipped (one 'error:' line each, listed again at the end), 2 usage "
          "error.")


def _err(msg: str) -> None:
    click.echo(msg, err=True)


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("inputs", nargs=-1, type=click.Path(path_type=str))
@generator_options
@click.option("--list-styles", is_flag=True,
              help="List the styles in --styles-dir (name, steps, image size, metrics, path) and exit.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=str),
              help="Output folder (created).  [required with INPUTS]")
@click.option("--portrait", is_flag=True,
              help="Detect faces (--landmark-detector); each is stylized in a crop scaled to the face "
                   "size the generator was trained at and pasted back with a feathered mask; the "
                   "rest of the picture keeps its own resolution.")
@click.option("--landmark-detector", "landmark_detector", default=None,
              help="Face detector of --portrait: mediapipe, mediapipe-tasks or dlib  [default: "
                   "mediapipe where installed, else dlib]")
@click.option("--landmark-model", "landmark_model", type=click.Path(), default=None,
              help="FaceLandmarker .task file for --landmark-detector mediapipe-tasks.")
@click.option("--strength", type=FiniteFloat(0.0, 1.0), default=1.0, show_default=True,
              help="0 = the photo, 1 = the cartoon; linear blend in between.")
@click.option("--eps", type=FiniteFloat(min=0.0, min_open=True), default=INFERENCE_EPS,
              show_default=True, help="eps of the final guided filter (r=1); larger = smoother.")
@click.option("--tile", type=click.IntRange(min=0), default=DEFAULT_TILE, show_default=True,
              help=f"Largest tile side: images whose side plus {2 * CONTEXT} px of context exceeds it "
                   "run in evenly placed overlapping tiles, seamlessly (multiple of 4, at least twice "
                   "--overlap; 0 = never).")
@click.option("--overlap", type=click.IntRange(min=0), default=DEFAULT_OVERLAP, show_default=True,
              help=f"Least tile overlap in pixels (multiple of 4); below {MIN_OVERLAP} (the least that "
                   "is seamless) it is raised to that, with a notice.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--engine", type=click.Choice(ENGINES), default="torch", show_default=True,
              help="What runs the generator: PyTorch, or onnxruntime on the generator exported to "
                   "ONNX once (cached in --cache-dir; for machines without PyTorch's fast CPU "
                   "paths). Same images within one uint8 level.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Where --engine onnxruntime keeps exported generators, named by a hash of the "
                   "weights  [default: ~/.cache/toonface/onnx]")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Video frames per forward pass.")
@click.option("--temporal", type=FiniteFloat(0.0, 1.0, max_open=True), default=0.0,
              show_default=True, metavar="STRENGTH",
              help="Videos and animations: blend each frame with the previous result, warped by "
                   "the input's optical flow, where that flow is trusted (forward-backward check, "
                   "visibility); lowers flicker. Weight of the previous result in [0, 1); 0 = off, "
                   "0.5 averages about 2 frames.")
@click.option("--metrics", is_flag=True,
              help="After each video, print the warping error (flicker; lower is steadier) of "
                   "the input and of the output.")
@click.option("--flow-max-side", type=click.IntRange(min=0), default=DEFAULT_FLOW_MAX_SIDE,
              show_default=True,
              help="Optical flow of --temporal and --metrics runs on frames shrunk to this "
                   "longest side (faster on large videos); 0 = full size.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=DEFAULT_MAX_PIXELS, show_default=True,
              help="Refuse images (each frame) and video frames with more pixels than this; it "
                   "replaces Pillow's decompression-bomb limit.")
@click.option("--max-bytes", type=click.IntRange(min=1), default=DEFAULT_MAX_BYTES, show_default=True,
              help="Refuse image files larger than this (videos are not limited by size).")
@click.option("--max-animation-pixels", type=click.IntRange(min=1), default=DEFAULT_MAX_ANIMATION_PIXELS,
              show_default=True,
              help="Refuse animations (GIF, APNG, WebP) whose frame count x canvas pixels exceeds "
                   "this, counted before decoding (every frame is composed on the whole canvas).")
@click.option("--reuse-host-memory/--no-reuse-host-memory", default=True, show_default=True,
              help="CPU: malloc keeps freed memory for reuse (glibc); 1024x1024 runs 1.5-1.8x faster.")
@click.option("--overwrite", is_flag=True,
              help="Replace files that already exist in --out (without it they are skipped, one "
                   "'error:' line each).")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def main(inputs, checkpoint, style, styles_dir, list_styles, out_dir, portrait, landmark_detector,
         landmark_model, strength, eps, tile, overlap, device, engine, cache_dir, batch, temporal,
         metrics, flow_max_side, max_pixels, max_bytes, max_animation_pixels, reuse_host_memory,
         overwrite, no_progress):
    """Cartoonize INPUT files, folders (recursive) and videos into --out."""
    if list_styles:
        try:
            click.echo(format_styles(scan_styles(styles_dir, warn=lambda m: _err(f"warning: {m}")),
                                     styles_dir))
        except ToonFaceError as exc:
            _err(f"error: {exc}")
            sys.exit(exc.exit_code)
        return
    if not inputs or not out_dir:
        raise click.UsageError("give INPUTS and --out (or --list-styles)")
    if flow_max_side and flow_max_side < 16:
        _err(f"error: --flow-max-side must be 0 or at least 16 px, got {flow_max_side}")
        sys.exit(2)
    try:
        check_writable(out_dir, "--out", folder=True)
        if (landmark_detector or landmark_model) and not portrait:
            from faces import resolve_detector

            resolve_detector(landmark_detector, landmark_model)  # a wrong name is an error here too
            _err("notice: --landmark-detector/--landmark-model act only with --portrait")
        toon = load_cartoonizer(engine, checkpoint, device, cache_dir=cache_dir, style=style,
                                styles_dir=styles_dir, eps=eps, strength=strength, tile=tile,
                                overlap=overlap, portrait=portrait,
                                landmark_detector=landmark_detector, landmark_model=landmark_model,
                                notice=lambda m: _err(f"notice: {m}"))
    except ToonFaceError as exc:
        _err(f"error: {exc}")
        sys.exit(exc.exit_code)
    if reuse_host_memory and toon.device.type == "cpu":
        retain_freed_memory()
    jobs, errors = collect_jobs(list(inputs), out_dir, overwrite=overwrite)
    for e in errors:
        _err(f"error: {e}")
    on_video = (lambda job, result: _print_warping_error(job, result, flow_max_side or None,
                                                         max_pixels)
                if metrics else None)
    failed = cartoonize_files(toon, jobs, max_pixels=max_pixels, max_bytes=max_bytes,
                              max_animation_pixels=max_animation_pixels, batch=batch,
                              progress=not no_progress, temporal=temporal,
                              flow_max_side=flow_max_side or None, report=_err, on_video=on_video)
    bad = errors + failed
    _err(f"{len(jobs) - len(failed)} file(s) written to {out_dir}; {len(bad)} input(s) failed"
         + (":" if bad else ""))
    for line in bad:
        _err(f"  {line}")
    sys.exit(1 if bad else 0)


def _print_warping_error(job, result, flow_max_side: int | None, max_pixels: int | None) -> None:
    """Print the warping error of a video's input and output files (evaluation.warping; the
    output is decoded as written, its even-size padding cropped off; the input under the same
    --max-pixels as its cartoonization)."""
    from evaluation.warping import WarpingErrorAccumulator
    from media.video_reader import VideoReader

    acc = WarpingErrorAccumulator(flow_max_side=flow_max_side)
    w, h = result.info.width, result.info.height
    try:
        with VideoReader(job.src, max_pixels=max_pixels) as src, VideoReader(result.path) as out:
            for a, b in zip(src, out):
                acc.add(a.rgb, b.rgb[:h, :w])
        s = acc.result()["summary"]
    except ToonFaceError as exc:
        _err(f"notice: {job.src}: warping error not measured ({exc})")
        return
    if s["warping_error_mean"] is None:
        click.echo(f"metrics: {result.path}: warping error not defined ({s['frames']} frame(s), "
                   "no frame pair with trusted flow)")
        return
    click.echo(f"metrics: {result.path}: warping error input {s['warping_error_input_mean']:.4f}, "
               f"output {s['warping_error_mean']:.4f} (mean |frame - warped previous frame| in "
               f"[0, 1] over {s['frame_pairs'] - s['frame_pairs_without_kept_pixels']} frame "
               f"pairs, {100 * s['kept_fraction_mean']:.0f}% of pixels with trusted flow)")


if __name__ == "__main__":
    main()
