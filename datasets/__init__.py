"""Training data: image folders, the AnimeGAN layout, landmarks (detection, cache, maps), demo data.

To add a data source: produce a list of readable image paths (``datasets.folders.
collect_images`` skips and reports bad files) and wrap them in ``ImageFolderDataset``; items
are indexed by ``(index, aug_seed)`` from ``InfiniteSampler`` so resumed runs see the same
batches. Landmark detection never runs inside a loader worker: fill the cache first
(prepare.py), then pass the looked-up points to the dataset. Files are listed and decoded by
:mod:`media` (the one decoder of every path).
"""
