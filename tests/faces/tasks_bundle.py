"""A mediapipe Tasks ``face_landmarker.task`` built from the legacy models inside the mediapipe
0.10.21 wheel, so the Tasks backend can be tested end to end without a download.

The official bundle holds a BlazeFace short-range detector and a 478-point landmark model. The
wheel ships the same short-range detector (``modules/face_detection/face_detection_short_range.
tflite``) and the 468-point FaceMesh model (``modules/face_landmark/face_landmark.tflite``). Two
changes make them a bundle the FaceLandmarker graph accepts:

- input normalisation metadata (the graph refuses float models without it): [-1, 1] for the
  detector and [0, 1] for the mesh model, the ranges of the legacy graphs'
  ImageToTensorCalculator options;
- the mesh output (1 x 1 x 1 x 1404 = 468 x 3) padded with 30 zeros to 1434 = 478 x 3: the
  graph reads 478 points, and would otherwise divide 1404 values into 478 points of 2.

The first 468 points then equal legacy FaceMesh's (tests/datasets/test_landmarks.py checks
it); the 10 padded "iris" points are meaningless and are dropped by the backend anyway. Test
use only: users download the real model (faces/landmark_detectors.py, TASKS_MODEL_URL).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

FACEMESH_VALUES, TASKS_VALUES = 468 * 3, 478 * 3


def wheel_models() -> tuple[Path, Path] | None:
    """(detector, mesh) .tflite files of the installed mediapipe wheel, or None if absent."""
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0]) / "modules"
    det = root / "face_detection" / "face_detection_short_range.tflite"
    mesh = root / "face_landmark" / "face_landmark.tflite"
    return (det, mesh) if det.is_file() and mesh.is_file() else None


def _pad_first_output(model: bytes, extra: int) -> bytes:
    """Append a PAD operator that adds ``extra`` zeros to the last axis of output 0."""
    import flatbuffers
    from mediapipe.tasks.metadata import schema_py_generated as s

    m = s.ModelT.InitFromObj(s.Model.GetRootAsModel(model, 0))
    g = m.subgraphs[0]
    pad = s.OperatorCodeT()
    pad.builtinCode = pad.deprecatedBuiltinCode = s.BuiltinOperator.PAD
    pad.version = 1
    m.operatorCodes.append(pad)
    amounts = s.BufferT()
    amounts.data = np.array([[0, 0], [0, 0], [0, 0], [0, extra]], np.int32).tobytes()
    m.buffers.append(amounts)
    t_amounts = s.TensorT()
    t_amounts.shape, t_amounts.type, t_amounts.buffer = [4, 2], s.TensorType.INT32, len(m.buffers) - 1
    t_amounts.name = b"pad_amounts"
    g.tensors.append(t_amounts)
    src = g.outputs[0]
    m.buffers.append(s.BufferT())
    t_out = s.TensorT()
    t_out.shape = list(g.tensors[src].shape[:-1]) + [int(g.tensors[src].shape[-1]) + extra]
    t_out.type, t_out.buffer, t_out.name = g.tensors[src].type, len(m.buffers) - 1, b"landmarks_478"
    g.tensors.append(t_out)
    op = s.OperatorT()
    op.opcodeIndex = len(m.operatorCodes) - 1
    op.inputs, op.outputs = [src, len(g.tensors) - 2], [len(g.tensors) - 1]
    op.builtinOptionsType, op.builtinOptions = s.BuiltinOptions.PadOptions, s.PadOptionsT()
    g.operators.append(op)
    g.outputs = [len(g.tensors) - 1] + list(g.outputs[1:])
    builder = flatbuffers.Builder(0)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _with_image_metadata(model: bytes, mean: float, std: float, outputs: int) -> bytes:
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer as mw

    w = mw.MetadataWriter.create(bytearray(model))
    w.add_general_info("toonface-test", "legacy mediapipe model with Tasks metadata")
    w.add_image_input(norm_mean=[mean], norm_std=[std])
    for i in range(outputs):
        w.add_feature_output(name=f"output_{i}")
    return bytes(w.populate()[0])


def build_face_landmarker_task(path: Path, head: bool = True) -> Path | None:
    """Write the bundle to ``path``; None when the wheel's legacy models are not installed.
    ``head=False``: the raw FaceMesh model without the padding to 478 points (mediapipe loads
    it, and its points are nonsense: what a model check must catch)."""
    models = wheel_models()
    if models is None:
        return None
    from mediapipe.tasks.python.metadata.metadata_writers import model_asset_bundle_utils as bundle

    det, mesh = (p.read_bytes() for p in models)
    bundle.create_model_asset_bundle({
        "face_detector.tflite": _with_image_metadata(det, 127.5, 127.5, 2),
        "face_landmarks_detector.tflite": _with_image_metadata(
            _pad_first_output(mesh, TASKS_VALUES - FACEMESH_VALUES) if head else mesh, 0.0, 255.0, 2),
    }, str(path))
    return path
