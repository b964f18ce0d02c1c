"""Inference: apply a trained generator to photos, folders and videos, and export it.

- :mod:`inference.cartoonizer`: ``Cartoonizer`` (uint8 RGB in, uint8 RGB out, any size,
  tiles, strength) and the batch driver used by ``cartoonize.py``.
- :mod:`inference.portrait`: face detection and face-scale stylization (``--portrait``).
- :mod:`inference.io`: image/video reading and writing, input collection, size limits.
- :mod:`inference.fast_generate`: the generator + guided filter as the Cartoonizer runs it
  (channels_last, fused oneDNN layers; equal to the trainer's module to float rounding).
- :mod:`inference.export`: ONNX / TorchScript export (``export.py``).
- :mod:`inference.onnx_engine`: ``--engine onnxruntime`` (the export cached by the weights'
  hash, run by onnxruntime inside the Cartoonizer).

Nothing heavy happens at import: mediapipe or dlib is imported when a portrait detector is built.
"""
