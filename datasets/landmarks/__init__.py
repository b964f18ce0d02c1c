"""Facial landmarks: detectors, on-disk cache, geometric transforms and the landmark map.

The landmark loss (losses/landmark.py) compares the output with the photo where the photo's
landmark map says facial features are, so that smoothing and superpixel flattening cannot
erase eyes, mouth and outline. The map comes from landmarks detected once per photo::

    prepare.py PHOTO_DIR [--landmark-detector NAME]   # once: detect every photo -> cache file
    LandmarkCache(PHOTO_DIR, detector=NAME).load()    # datasets: read-only lookups
    transform_landmarks(...)                          # same resize / crop / flip as the image
    render_landmark_map(...)                          # (2, H, W) float32 in [0, 1]

Modules, one concern each (none does work at import; none holds mutable state):

- ``topology``   which point indices form eyes, brows, lips, nose and face outline, for the
                 468-point mediapipe mesh and the 68-point iBUG 300-W layout of dlib
- ``detectors``  the detector interface and its backends (mediapipe FaceMesh, mediapipe Tasks
                 FaceLandmarker, dlib), chosen and validated by ``resolve_detector``
- ``cache``      the ``.npz`` cache of one photo folder and one detector
- ``transforms`` resize / crop / flip of landmarks in continuous pixel coordinates
- ``maps``       the 2-channel landmark map (contours, regions) and its grid colouring

Importing this package imports neither mediapipe, dlib nor torch.
"""
from datasets.landmarks.cache import (CACHE_FILE_STEM, MISSING, LandmarkCache, check_writable,
                                      default_cache_file, marked_read_only, user_cache_dir,
                                      user_cache_file)
from datasets.landmarks.detectors import (DETECTOR_NAMES, DetectorSpec, DetectorUnavailable,
                                          DlibLandmarkDetector,
                                          FaceLandmarkerDetector, FaceMeshDetector,
                                          LandmarkDetector, check_tasks_model,
                                          default_detector_name, dlib_model_file,
                                          resolve_detector)
from datasets.landmarks.maps import landmark_map_to_rgb, render_landmark_map
from datasets.landmarks.topology import (IBUG_68, MEDIAPIPE_468, Topology, inter_ocular_distance,
                                         topology_of)
from datasets.landmarks.transforms import (crop_landmarks, flip_landmarks, resize_landmarks,
                                           transform_landmarks)

__all__ = [
    "CACHE_FILE_STEM", "MISSING", "LandmarkCache", "check_writable", "default_cache_file",
    "marked_read_only", "user_cache_dir", "user_cache_file",
    "DETECTOR_NAMES", "DetectorSpec", "DetectorUnavailable", "DlibLandmarkDetector", "FaceLandmarkerDetector",
    "FaceMeshDetector", "LandmarkDetector", "check_tasks_model", "default_detector_name",
    "dlib_model_file", "resolve_detector",
    "landmark_map_to_rgb", "render_landmark_map",
    "IBUG_68", "MEDIAPIPE_468", "Topology", "inter_ocular_distance", "topology_of",
    "crop_landmarks", "flip_landmarks", "resize_landmarks", "transform_landmarks",
]
