"""Faces: every face detector, the landmark topology, maps, transforms and cache, face boxes,
tracking, and the pretrained face networks. Nothing outside this package detects faces.

Landmarks feed the landmark loss (losses/landmark.py): it compares the output with the photo
where the photo's landmark map says facial features are, so that smoothing and superpixel
flattening cannot erase eyes, mouth and outline. The map comes from landmarks detected once per
photo::

    prepare.py PHOTO_DIR [--landmark-detector NAME]   # once: detect every photo -> cache file
    LandmarkCache(PHOTO_DIR, detector=NAME).load()    # datasets: read-only lookups
    transform_landmarks(...)                          # same resize / crop / flip as the image
    render_landmark_map(...)                          # (2, H, W) float32 in [0, 1]

Modules, one concern each (none does work at import; none holds mutable state):

- ``topology``           which point indices form eyes, brows, lips, nose and face outline, for
                         the 468-point mediapipe mesh and the 68-point iBUG 300-W layout of dlib
- ``landmark_detectors`` the landmark detector interface and its backends (mediapipe FaceMesh,
                         mediapipe Tasks FaceLandmarker, dlib), chosen by ``resolve_detector``
- ``reference_face``     the reference face a Tasks model must find (its points, its photo)
- ``cache``              the ``.npz`` landmark cache of one photo folder and one detector
- ``transforms``         resize / crop / flip of landmarks in continuous pixel coordinates
- ``maps``               the 2-channel landmark map (contours, regions) and its grid colouring
- ``boxes``              a detected face (box, inter-ocular distance, score), the one IoU and
                         the one overlap suppression
- ``face_detectors``     face boxes for portrait mode (mediapipe FaceDetection, or a landmark
                         detector's faces), ``face_detector_for``
- ``tracking``           faces across the frames of a clip: the One-Euro filter and the tracker
- ``dlib_analyser``      dlib's detectors, 68 points and identity descriptor, for evaluation
- ``dlib_encoder``, ``dlib_serialize``: dlib's face-recognition ResNet rebuilt in PyTorch
  (``face-recognition-models``), with the face-chip alignment of ``dlib.get_face_chip``
- ``facemesh``           mediapipe's FaceMesh landmark network rebuilt in PyTorch (the
                         ``mediapipe`` wheel's ``face_landmark.tflite``)

The networks are built from their package files at first use (``from_package()``), each file's
sha256 checked (utils/package_files.py); nothing is downloaded and nothing is unpickled.
Importing this package imports neither mediapipe, dlib nor torch (the network modules import
torch; import them by name).
"""
from faces.cache import (CACHE_FILE_STEM, MISSING, LandmarkCache, check_writable,
                         default_cache_file, marked_read_only, user_cache_dir, user_cache_file)
from faces.landmark_detectors import (DETECTOR_NAMES, DetectorSpec, DetectorUnavailable,
                                      DlibLandmarkDetector, FaceLandmarkerDetector,
                                      FaceMeshDetector, LandmarkDetector, check_tasks_model,
                                      default_detector_name, dlib_model_file, resolve_detector)
from faces.maps import landmark_map_to_rgb, render_landmark_map
from faces.topology import IBUG_68, MEDIAPIPE_468, Topology, inter_ocular_distance, topology_of
from faces.transforms import crop_landmarks, flip_landmarks, resize_landmarks, transform_landmarks

__all__ = [
    "CACHE_FILE_STEM", "MISSING", "LandmarkCache", "check_writable", "default_cache_file",
    "marked_read_only", "user_cache_dir", "user_cache_file",
    "DETECTOR_NAMES", "DetectorSpec", "DetectorUnavailable", "DlibLandmarkDetector",
    "FaceLandmarkerDetector", "FaceMeshDetector", "LandmarkDetector", "check_tasks_model",
    "default_detector_name", "dlib_model_file", "resolve_detector",
    "landmark_map_to_rgb", "render_landmark_map",
    "IBUG_68", "MEDIAPIPE_468", "Topology", "inter_ocular_distance", "topology_of",
    "crop_landmarks", "flip_landmarks", "resize_landmarks", "transform_landmarks",
]
