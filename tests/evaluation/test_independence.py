"""Metrics whose judge a run trained against: evaluation marks them in metrics.json, in the
test report and in a sweep's notes (evaluation/evaluate.py TRAINED_JUDGES)."""
from __future__ import annotations

import json

from evaluation.evaluate import TRAINED_JUDGES, not_independent, write_report
from losses.registry import TERM_BY_KEY


def test_trained_judges_name_real_weights_and_contract_metrics():
    from evaluation.scoring import CONTRACT_KEYS

    for key, (_, metrics) in TRAINED_JUDGES.items():
        assert key in TERM_BY_KEY or key == "w_identity"     # a weight the config can hold
        assert set(metrics) <= set(CONTRACT_KEYS)
    # dlib's 68-point NME is the landmark judge: no term reads its predictor
    assert not any("nme68_mean" in m for _, m in TRAINED_JUDGES.values())


def test_marks_follow_the_run_config():
    assert not_independent({"w5": 10.0, "w_landmark_regressor": 0.0}) == ({}, [])
    assert not_independent({}) == ({}, [])                  # a run from before the terms
    marks, notes = not_independent({"w_landmark_regressor": 2.0, "w_identity": 0.5})
    assert set(marks) == {"nme_mediapipe_mean", "face_found_rate_mediapipe", "identity_distance_mean",
                          "identity_same_rate", "identity_cosine_mean"}
    assert "--w-landmark-regressor 2" in marks["nme_mediapipe_mean"]
    assert "--w-identity 0.5" in marks["identity_distance_mean"]
    assert len(notes) == 2 and all("not an independent judge" in n and "nme68" in n for n in notes)


def test_metrics_json_and_report_show_the_marks(tmp_path):
    marks, notes = not_independent({"w_landmark_regressor": 1.0})
    result = {"mode": "checkpoint", "summary": {"nme68_mean": 0.04, "nme_mediapipe_mean": 0.02},
              "not_independent": marks, "notes": notes, "per_image": []}
    files = write_report(tmp_path, result, [])
    metrics = json.loads(files["metrics_path"].read_text())
    assert metrics["not_independent"]["nme_mediapipe_mean"].startswith("trained with --w-landmark-regressor 1")
    assert metrics["nme_mediapipe_mean"] == 0.02          # the number is kept, marked
    html = files["index"].read_text()
    assert "nme_mediapipe_mean (not independent)" in html
    assert "nme68_mean (not independent)" not in html
    assert "not an independent judge of this run" in html


def test_evaluate_reads_the_marks_from_the_run(tmp_path, face_analyser):
    """test.py on a run whose config.json says it trained with the regressor term (edited
    in: the mark depends on the config only)."""
    from datasets.demo import build_demo_data
    from evaluation.evaluate import EvalConfig, evaluate
    from training.config import resolve
    from training.loop import train

    photos, cartoons = build_demo_data(tmp_path / "data", 20, 4, size=48)
    ck = tmp_path / "ck"
    train(resolve("train", dict(photo_dir=str(photos), cartoon_dir=str(cartoons), image_size=32,
                                batch_size=2, total_iter=1, checkpoints_dir=str(ck), workers=0,
                                progress=False, vgg_weights="random", init="none", name="r",
                                tensorboard=False, w5=0)))
    cfg_file = ck / "r" / "config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg_file.write_text(json.dumps(dict(cfg, w_landmark_regressor=1.0)))
    res = evaluate(EvalConfig.of(name="r", checkpoints_dir=str(ck), out=str(tmp_path / "marked"),
                                 inception=str(tmp_path / "none.pt"), record=False),
                   analyser=face_analyser, echo=lambda m: None)
    m = json.loads(res["metrics_path"].read_text())
    assert set(m["not_independent"]) == {"nme_mediapipe_mean", "face_found_rate_mediapipe"}
    assert any("nme_mediapipe_mean, face_found_rate_mediapipe: not an independent judge" in n
               for n in m["notes"])
