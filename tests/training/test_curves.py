"""Loss-curve plots: written for full, partial, single-line and empty stats files."""
import json

import numpy as np
import pytest

from training.curves import _panel_keys, loss_figure, plot_loss_curves, read_stats
from utils.errors import ToonFaceError


def write_stats(path, records, tail=""):
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)
    return path


def full_record(step):
    return {"step": step, "kimg": step * 0.016, "G/surface": 0.5, "G/surface_weighted": 0.05,
            "G/content": 0.01, "G/content_weighted": 2.0, "G/total": 2.05, "D/surface": 0.4,
            "D/texture": 0.5, "D/total": 0.9, "D/surface_real": 0.3, "D/surface_fake": -0.2,
            "D/texture_real": 0.1, "D/texture_fake": 0.0, "landmark/found": 1.0,
            "time/data": 0.01, "time/g_forward": 0.1, "time/step": 0.3}


def is_png(path):
    import cv2

    img = cv2.imread(str(path))
    return img is not None and img.shape[0] > 100


def test_full_stats_and_panels(tmp_path):
    stats = write_stats(tmp_path / "stats.jsonl", [full_record(s) for s in (50, 100, 150)],
                        tail='{"step": 200, "G/to')  # killed mid-write
    assert len(read_stats(stats)) == 3
    out = plot_loss_curves(stats, tmp_path / "curves.png")
    assert out == tmp_path / "curves.png" and is_png(out)
    titles = [t for t, _, _ in _panel_keys(set(full_record(1)))]
    assert titles[:4] == ["generator terms (weighted)", "discriminator losses",
                          "discriminator outputs (mean logit)", "time per step [s]"]


@pytest.mark.parametrize("records", [
    [full_record(1)],                                   # a single line
    [{"step": 1, "G/l1": 0.3}, {"step": 2, "G/l1": 0.2, "time/step": 0.1}],  # pretraining
    [{"step": 1, "D/total": float("nan")}, {"step": 2, "G/total": -1.0}],  # non-finite, negative
    [],                                                 # nothing yet
])
def test_robust_to_missing_keys_single_lines_and_empty(tmp_path, records):
    out = plot_loss_curves(write_stats(tmp_path / "stats.jsonl", records), tmp_path / "c.png")
    assert is_png(out)


def test_no_pyplot_figures_leak_and_missing_file(tmp_path):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plot_loss_curves(write_stats(tmp_path / "s.jsonl", [full_record(1)]), tmp_path / "c.png")
    assert plt.get_fignums() == before
    with pytest.raises(ToonFaceError, match="no stats file"):
        plot_loss_curves(tmp_path / "missing.jsonl", tmp_path / "x.png")


def test_plot_curves_cli(tmp_path):
    from click.testing import CliRunner

    import plot_curves

    run = tmp_path / "runs" / "v3"
    run.mkdir(parents=True)
    write_stats(run / "stats.jsonl", [full_record(1), full_record(2)])
    res = CliRunner().invoke(plot_curves.main, ["v3", "--checkpoints_dir", str(tmp_path / "runs")])
    assert res.exit_code == 0, res.output
    assert is_png(run / "loss_curves.png")
    res = CliRunner().invoke(plot_curves.main, ["v4", "--checkpoints_dir", str(tmp_path / "runs")])
    assert res.exit_code == 2 and "v4/stats.jsonl" in res.output


def test_legends_do_not_cover_the_curves():
    """Each legend lies outside its plot area (and inside the figure), so no curve is hidden."""
    records = [{**full_record(s), "G/texture_weighted": 0.3, "G/structure_weighted": 0.01,
                "G/landmark_weighted": 0.1, "G/tv_weighted": 0.04, "time/vgg": 0.1,
                "time/backward": 0.2, "time/structure": 0.01, "time/optimizer": 0.01}
               for s in range(10, 160, 10)]
    fig = loss_figure(records, "demo")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    whole = fig.bbox
    axes = [ax for ax in fig.axes if ax.get_legend() is not None]
    assert len(axes) >= 4
    for ax in axes:
        legend = ax.get_legend().get_window_extent(renderer)
        assert not legend.overlaps(ax.get_window_extent(renderer)), ax.get_title()
        assert whole.x0 <= legend.x0 and legend.x1 <= whole.x1 + 1, ax.get_title()
        for other in fig.axes:   # nor another panel's plot
            assert other is ax or not legend.overlaps(other.get_window_extent(renderer))
