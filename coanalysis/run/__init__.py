"""How an analysis is run: from command-line options to stored cells.

- `session`: the models, data and results store of one command (`Session`, `open_model`);
- `probe_fitting`: the probe a session fits once (sharded under torchrun) and every analysis shares;
- `cell_runner`: runs an analysis cell by cell, stores each finished cell, resumes;
- `pipeline`: the sequence of analyses a command asks for, over every model;
- `end_to_end`: the demo (train two models, analyse them, render the report);
- `environment`: versions and device recorded with every result.

May import: every room below it (`results`, `models`, `features`, `data`, `probes`,
`distributed`, `analyses`) and the report (the demo renders one). Never `commands` or `cli`.
"""
