"""Pretrained face networks rebuilt in PyTorch from the files their packages ship.

- :mod:`faces.dlib_encoder`: dlib's face-recognition ResNet (``face-recognition-models``),
  with a differentiable face-chip alignment matching ``dlib.get_face_chip``.
- :mod:`faces.facemesh`: mediapipe's FaceMesh landmark network (the ``mediapipe`` wheel's
  ``face_landmark.tflite``).

Each is built from its package file at first use (``from_package()``), the file's sha256 checked
(utils/package_files.py); nothing is downloaded and nothing is unpickled. Heavy imports happen
inside the constructors, not at import time.
"""
