"""Inference: apply a trained generator to photos, folders and videos, and export it.

- :mod:`inference.cartoonizer`: ``Cartoonizer`` (uint8 RGB in, uint8 RGB out, any size,
  context, tiles, strength; no command line, no files).
- :mod:`inference.files`: the batch file driver of ``cartoonize.py`` (files and folders in,
  PNG / animated PNG / H.264 out; per-file errors as one line).
- :mod:`inference.portrait`: face detection and face-scale stylization (``--portrait``).
- :mod:`inference.fast_generate`: the generator + guided filter as the Cartoonizer runs it
  (channels_last, fused oneDNN layers; equal to the trainer's module to float rounding).
- :mod:`inference.styles`: the style registry (scanned once) and blends.
- :mod:`inference.export`: ONNX / TorchScript export (``export.py``).
- :mod:`inference.onnx_engine`: ``--engine onnxruntime`` (the export cached by the weights'
  hash, run by onnxruntime inside the Cartoonizer).

Pictures and clips are read and written by :mod:`media`. Nothing heavy happens at import: mediapipe or dlib is imported when a portrait detector is built.
"""
