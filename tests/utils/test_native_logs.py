"""utils/native_logs.py: mediapipe's start-up chatter held back, every other line kept."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT, fixtures_dir, requires_mediapipe
from utils.native_logs import quiet_native_stderr

CHATTER = (
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "W0000 00:00:1796509742.391585   25003 inference_feedback_manager.cc:114] Feedback manager "
    "requires a model with a single signature inference. Disabling support for feedback tensors.\n"
    "W0000 00:00:1796509742.430537   25002 landmark_projection_calculator.cc:186] Using NORM_RECT "
    "without IMAGE_DIMENSIONS is only supported for the square ROI.\n"
)


def test_known_chatter_is_dropped_and_other_lines_are_written_back(capfd):
    with quiet_native_stderr():
        os.write(2, CHATTER.encode())
        os.write(2, b"E0000 00:00:1.0 12 calculator.cc:1] a real error\n")
        print("python's own stderr", file=sys.stderr)
        with quiet_native_stderr():          # nested: one redirection
            os.write(2, b"W0000 00:00:1.0 1 inference_feedback_manager.cc:114] Feedback manager "
                        b"requires a model with a single signature inference.\n")
    err = capfd.readouterr().err   # (pytest captures Python's sys.stderr on its own)
    assert sorted(err.splitlines()) == ["E0000 00:00:1.0 12 calculator.cc:1] a real error",
                                        "python's own stderr"]
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"   # descriptor 2 is back


@requires_mediapipe
def test_mediapipe_detectors_print_nothing_on_a_portrait():
    """FaceMesh (landmark cache, training, test.py) and FaceDetection (--portrait, built lazily
    and used on windows): not one absl or TFLite line on stderr."""
    photo = fixtures_dir("scenes", "wb_party7.jpg")
    code = f"""
import numpy as np
from PIL import Image
from faces.landmark_detectors import FaceMeshDetector
from faces.face_detectors import FaceDetector
img = np.asarray(Image.open({str(photo)!r}).convert("RGB"))
with FaceMeshDetector() as mesh:
    assert mesh.detect(img) is not None
    mesh.detect(img)
d = FaceDetector()
assert len(d.detect(img)) >= 3
d.close()
print("done")
"""
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert res.returncode == 0 and res.stdout == "done\n", res.stderr
    assert res.stderr == "", res.stderr
