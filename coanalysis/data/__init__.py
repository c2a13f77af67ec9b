"""The evaluation images an analysis is fed, before any model sees them.

- `sample_images`: small image sets read from folders (ERF overlays, `--images`);
- `shift_sets`: ImageNet-R/-A/-Sketch/-V2 readers and their class lists (`classlists/`);
- `seeding`: per-image seeds, so a draw does not depend on batch size or rank;
- `corruption/`: ImageNet-C style corrupted images, generated or pre-rendered.

May import: `results`, `models` (the trainer door: errors, atomic writes), `features` (the
corruption provider works on `EvalData`), numpy, torch. Never `probes`, an analysis, the run layer
or the render side.
"""
