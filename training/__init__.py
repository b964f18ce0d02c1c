"""Training: the loops (``pretrain(cfg)``, ``train(cfg)``), configuration, checkpoints, stats
and the side-by-side grids. Entry points (pretrain.py, train.py) only parse flags and call in.
"""
