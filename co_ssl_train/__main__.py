"""`python -m co_ssl_train ...`: the entry point `torchrun` uses."""

from co_ssl_train.cli import main

if __name__ == "__main__":
    main()
