"""co_ssl_train: a compact PyTorch trainer for CO-SSL and baseline self-supervised methods.

`train(cfg) -> Path` trains one model and writes a run directory that follows the checkpoint
contract of `co_ssl_train.checkpoint`. The command line lives in `co_ssl_train.cli`.
"""

__version__ = "0.1.0"
