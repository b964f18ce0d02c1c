"""tools/study_table.py: the README's study tables from a sweep's CSVs, checked against tables
written by hand from the same made-up numbers."""
import csv

import pytest
from click.testing import CliRunner

from tools import study_table
from tools.study_table import TableError, main, render_page, render_table

STUDY_COLUMNS = ["configuration", "runs", "seeds", "nme68_mean_mean", "nme68_mean_std",
                 "identity_distance_mean_mean", "identity_distance_mean_std",
                 "distinct_colours_mean", "distinct_colours_std", "edge_density_mean",
                 "edge_density_std", "flatness_mean", "flatness_std", "smooth_share_mean",
                 "smooth_share_std", "portrait_nme68_mean_mean", "portrait_nme68_mean_std",
                 "portrait_identity_distance_mean_mean", "portrait_identity_distance_mean_std"]


def write_csv(path, columns, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, columns)
        w.writeheader()
        for r in rows:
            w.writerow(dict(zip(columns, r)))
    return path


@pytest.fixture
def csvs(tmp_path):
    study = write_csv(tmp_path / "study.csv", STUDY_COLUMNS, [
        ["a=0", 3, "1 2 3", 0.034305, 0.00754223, 0.391344, 0.029637, 1680.3, 310.1, 0.125183,
         0.014144, 0.0458759, 0.0061745, 0.139782, 0.0204447, 0.0266494, 0.00576034, 0.361503, 0.022317],
        ["a=1", 3, "1 2 3", 0.0215803, 0.00129071, 0.27501, 0.0414442, 1855.26, 48.2, 0.140408,
         0.00532341, 0.0520568, 0.00270066, 0.103864, 0.0160829, "", "", "", ""],
        ["theirs", 1, "", 0.0309729, "", 0.483504, "", 1159.78, "", 0.112244, "", 0.0395869,
         "", 0.310465, "", "", "", "", ""],
    ])
    paired = write_csv(tmp_path / "paired.csv",
                       ["seed", "configuration", "baseline", "metric", "improved", "worse", "tied",
                        "compared", "missing"], [
        [3, "a=1", "a=0", "nme68", 9, 0, 0, 9, 0],
        [1, "a=1", "a=0", "nme68", 8, 1, 0, 9, 0],
        [2, "a=1", "a=0", "nme68", 7, 2, 0, 9, 0],
        [2, "a=1", "a=0", "identity_distance", 9, 0, 0, 9, 0],
        [1, "a=1", "a=0", "identity_distance", 6, 3, 0, 9, 0],
        [3, "a=1", "a=0", "identity_distance", 8, 1, 0, 9, 0],
    ])
    return study, paired


def test_table_rows_by_hand(csvs):
    study, paired = csvs
    got = render_table(study, paired, [("a=0", "none"), ("a=1", "edge"), ("theirs", "theirs")], "a=0")
    assert got.splitlines() == [
        "| arm | runs | nme68 | identity | better than none, per seed (nme68 / identity, of 9) "
        "| colours | edge density | flatness | smooth share | portrait nme68 / identity |",
        "|---|---|---|---|---|---|---|---|---|---|",
        "| none | 3 | 0.0343 ± 0.0075 | 0.391 ± 0.030 |  | 1680 ± 310 | 0.125 ± 0.014 "
        "| 0.046 ± 0.006 | 0.140 ± 0.020 | 0.0266 ± 0.0058 / 0.362 ± 0.022 |",
        # seeds in order (the CSV has them 3, 1, 2); no portrait numbers, an empty cell
        "| edge | 3 | 0.0216 ± 0.0013 | 0.275 ± 0.041 | 8, 7, 9 / 6, 9, 8 | 1855 ± 48 "
        "| 0.140 ± 0.005 | 0.052 ± 0.003 | 0.104 ± 0.016 |  |",
        # one run: no ±
        "| theirs | 1 | 0.0310 | 0.484 |  | 1160 | 0.112 | 0.040 | 0.310 |  |",
    ]
    # without paired counts the column goes, the rest stays
    plain = render_table(study, None, [("theirs", "theirs")], None).splitlines()
    assert "better than" not in plain[0] and plain[2].startswith("| theirs | 1 | 0.0310 | 0.484 | 1160 |")


def test_an_unknown_configuration_names_the_ones_there(csvs):
    with pytest.raises(TableError, match=r"no configuration 'a=2' \(it has: 'a=0', 'a=1', 'theirs'\)"):
        render_table(csvs[0], csvs[1], [("a=2", "x")], None)


def test_marked_tables_are_rewritten_and_checked(csvs, tmp_path, monkeypatch):
    study, paired = csvs
    monkeypatch.setattr(study_table, "ROOT", tmp_path)
    page = tmp_path / "README.md"
    monkeypatch.setattr(study_table, "PAGES", [page])
    marker = (f"<!-- study-table: --study {study.name} --paired {paired.name} --baseline a=0 "
              f"--arm 'a=0:none' --arm \"theirs\" -->\n")
    page.write_text(f"intro\n\n{marker}| old | table |\n<!-- /study-table -->\n\nafter\n")
    runner = CliRunner()
    stale = runner.invoke(main, ["--check"])
    assert stale.exit_code == 1 and "README.md" in stale.output
    assert "| old | table |" in page.read_text()                # --check writes nothing
    assert runner.invoke(main, []).exit_code == 0
    text = page.read_text()
    expected = render_table(study, paired, [("a=0", "none"), ("theirs", "theirs")], "a=0")
    assert text == f"intro\n\n{marker}{expected}<!-- /study-table -->\n\nafter\n"
    assert render_page(text) == text
    assert runner.invoke(main, ["--check"]).exit_code == 0


@pytest.mark.parametrize("arm", [":label", "config:", ""])
def test_a_bad_arm_is_one_usage_line(csvs, arm):
    res = CliRunner().invoke(main, ["--study", str(csvs[0]), "--arm", arm])
    assert res.exit_code == 2 and "CONFIGURATION[:LABEL]" in res.output


def test_a_missing_csv_is_one_line(tmp_path):
    res = CliRunner().invoke(main, ["--study", str(tmp_path / "nope.csv"), "--arm", "a"])
    assert res.exit_code == 1 and "nope.csv" in res.output and "Traceback" not in res.output
