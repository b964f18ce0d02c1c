"""Loss terms of the white-box recipe plus the landmark loss, one file per term.

Each file holds the term as a pure function (shapes and value ranges in its docstring, named
defaults instead of numbers inside the expression) and ``term(state)``,
the adapter the trainer calls. Terms are *unweighted*: the trainer weights, sums and logs
them, and never computes a term whose weight is 0. The image operators they use (surface,
texture, structure) live in ``representations/``.

To add a term: write ``losses/<term>.py`` with the function and ``term(state)``;
add one ``Term`` entry to ``losses/registry.py`` (name, flag: None for a new term, whose
option and config.json key are then ``--w-<name>`` / ``w_<name>``; default weight per preset,
help; the config field and the objective follow from it); test the function against a
hand-computed value. A term that reads a frozen pretrained network names it
(``Term.network``, a key of ``NETWORKS``): the trainer builds it once, before the run folder.
The face-network terms (``landmark_regressor``, ``identity``) share losses/face_points.py.
"""
