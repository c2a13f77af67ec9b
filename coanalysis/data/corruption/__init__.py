"""Corrupted images for the common-corruptions analysis (PROTOCOLS.md section 4), one job per module.

- `pool`: the worker processes, and the one place that calls `imagecorruptions` (numpy only);
- `outcome`: what a source returns for one cell, `Corrupted` images or `Missing` with the reason;
- `generated`: imagecorruptions on the evaluation images, with per-image seeds;
- `folders` and `npy`: pre-rendered sets (ImageNet-C / Tiny-ImageNet-C folders, CIFAR-10-C /
  CIFAR-100-C `.npy` files), and `sources` to tell them apart and build the right source;
- `provider`: a source behind the uint8 disk cache, with one cell of look-ahead, and the
  `CorruptionSettings` (worker processes, cache folder) the command passes to the analysis.

The corruption names, groups, severities and per-image seeds are `coanalysis.results.corruption_names`
(torch-free: the report reads them too).
"""
