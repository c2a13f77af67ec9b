"""How a model is read: checkpoint → encoder.

- `loading`: `load_encoder(spec)`, the one strict loader for our checkpoints and third-party files;
- `formats/`: one adapter per published checkpoint layout (`FORMATS`, `detect`), safe reading;
- `readout`: a checkpoint's own global readout (ViT CLS / patch mean, BagSSL bag) over a trunk;
- `zoo` and `zoo_table`: published checkpoints by name, their downloads and digests;
- `trainer` and `trainer_io`: the door to `co_ssl_train` (architectures, the checkpoint contract,
  atomic writes, `UserError`). No other coanalysis module imports `co_ssl_train`.

May import: `co_ssl_train` (only `trainer`, `trainer_io`), torch. Never `coanalysis.analyses`,
`run`, `figures` or `report`.
"""
