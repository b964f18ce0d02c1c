"""Loss terms of the white-box recipe plus the landmark loss, one file per term.

Each term is a function plus a thin ``nn.Module`` that returns an *unweighted* scalar; the
trainer (training/loop.py) weights, sums and logs them, and skips a term whose weight is 0.

To add a term: write ``losses/<term>.py`` (function with shapes and value ranges in its
docstring, named defaults instead of numbers inside the expression), give it a weight flag in
training/config.py's OPTIONS table, compute it in ``TrainLoop.run_step`` under its weight,
and test it against a hand-computed value.
"""
