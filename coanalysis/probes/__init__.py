"""Readouts fitted on frozen features: how a representation is scored (PROTOCOLS §2).

- `linear`: the linear probe (`LinearProbe`, `fit_probe`, `probe_accuracy`) and its files;
- `knn`: the cosine kNN classifier.

May import: `models`, `features`, `results`, torch. Never `data`, `distributed`, an analysis, the
run layer or the render side. The probe a session fits once and shares is `run.probe_fitting`.
"""
