"""How ranks share work under `torchrun` or on several nodes writing one `--out`.

- `sharding`: `Shards`, the rank/world of a command, dealing cells and joining ranks;
- `sharded_features`: feature extraction split over ranks and gathered;
- `image_split`: which images a rank evaluates, built once per split.

May import: `results`, `models`, `features`, `probes`, torch. Never an analysis, the run layer or
the render side.
"""
