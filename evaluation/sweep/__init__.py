"""Ablation sweeps and studies as data: option sets over base train options, run one after
another, evaluated on the same held-out faces, summarised side by side.

A sweep named NAME lives in ``<checkpoints_dir>/NAME/``: one run folder per configuration
(``<checkpoints_dir>/NAME/<run id>``, the run id spelling the options that differ between the
configurations, e.g. ``w5=0_seed=1``), one pretraining run per seed when the sweep file has a
pretrain stage (``<checkpoints_dir>/NAME/pretrain-seed<N>``), plus ``summary.csv``,
``comparison.png``, ``metrics.png``, ``sweep.json`` (what ran) and ``index.html``.

Configurations: the product of every ``--grid key=v1,v2`` and, when given, of a JSON/YAML
sweep file: a list of option sets (``[{"w5": 0}, {"w5": 1, "w4": 0}]``) or a mapping::

    base:     {train options every run shares}
    pretrain: {pretrain.py options}   # optional: one pretraining per distinct seed
    runs:     [{options of one configuration}, ...]

Keys are train.py option names (``w5``, ``w-landmark``, ``total_iter``...); the whole file is
checked against its schema, within bounds, before anything runs (``schema``: one line per
problem; aliases bounded by what they expand to). Precedence, lowest
first: the file's ``base``, the command line's base options (``sweep.py ... -- OPTIONS``), a
configuration's own options. Every configuration is parsed by train.py's own option table
(pretrainings by pretrain.py's), and held-out people are checked against the photo folder,
before anything runs, so unknown keys, ill-typed values and missing or leaking held-out people
stop the sweep at once.

Pretrain stage: a pretraining gets the base options pretrain.py knows (file, then command line),
then the ``pretrain`` section, then the seed; every train run without its own ``--init`` starts
from ``pretrain-seed<N>/generator/latest.pt`` of its seed, so the configurations of one seed
share their starting generator.

Resumable: a run (pretraining or training) whose ``generator/latest.pt`` reached
``total_iter`` is skipped, one with a ``ckpt/latest.pt`` is continued with ``--resume``, and an
evaluation whose ``metrics.json`` covers the same photos is reused.

Modules: ``schema`` (the file read and checked), ``plan`` (option sets, commands, validation;
nothing runs), ``run`` (the sweep:
training in order), ``evaluate_runs`` (scoring the runs), ``report`` (summaries and figures).
"""
from evaluation.sweep.plan import (RESERVED, SweepFile, SweepPlan, canonical,
                                   check_heldout_people, convert, fmt_value, option_names,
                                   parse_grid, plan, plan_sweep, read_configs, read_sweep_file,
                                   run_dir, run_id, run_state, to_args)
from evaluation.sweep.report import (FIGURE_FACES, METRIC_COLUMNS, by_configuration,
                                     comparison_figure, mean_std, metric_bars, paired_counts,
                                     paired_table, row_label, summarise)
from evaluation.sweep.run import command, sweep
from evaluation.sweep.evaluate_runs import evaluate_all, evaluate_sweep

__all__ = ["RESERVED", "SweepFile", "SweepPlan", "canonical", "check_heldout_people",
           "convert", "fmt_value", "option_names", "parse_grid", "plan", "plan_sweep", "read_configs",
           "read_sweep_file", "run_dir", "run_id", "run_state", "to_args", "FIGURE_FACES",
           "METRIC_COLUMNS", "comparison_figure", "metric_bars", "row_label", "summarise", "command",
           "sweep", "evaluate_all", "evaluate_sweep", "mean_std", "paired_counts",
           "by_configuration", "paired_table"]
