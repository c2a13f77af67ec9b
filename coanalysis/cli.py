"""`coanalysis`: analyse SSL checkpoints and render reports.

Bad input ends with one line on stderr and exit code 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

EXAMPLES = """examples:
  coanalysis demo                                           # the main job, end to end
  coanalysis probe --ckpt checkpoints/demo-co-byol
  coanalysis robustness --ckpt checkpoints/demo-byol --ckpt checkpoints/demo-co-byol --out reports/cmp
  coanalysis report reports/cmp

run 'coanalysis COMMAND --help' for the options of each command.
"""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; with `command`, only that one's options are built (the others
    keep their name and help), so `coanalysis report` never imports the model side for help texts."""
    from coanalysis.commands import COMMANDS
    from coanalysis.models.trainer_io import OneLineParser

    parser = OneLineParser(prog="coanalysis", formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description="What did a self-supervised model learn, and how robust is it?",
                                     epilog=EXAMPLES)
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")
    for name, module in COMMANDS.items():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP[0].upper() + module.HELP[1:] + ".",
                           epilog=module.EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks instead of one-line errors")
        if command is None or command == name:
            module.add_arguments(p)
        p.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")  # foolbox imports GitPython
    from coanalysis.commands import COMMANDS
    from coanalysis.models.trainer_io import UserError

    words = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    parser = build_parser(words[0] if words and words[0] in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        sys.exit(0)
    try:
        args.run(args)
        from coanalysis.distributed.sharding import leave_shards

        leave_shards()  # under torchrun: the ranks finish together
    except UserError as e:
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(f"coanalysis: error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # a file or folder that cannot be read or written, found only mid-run
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(f"coanalysis: error: {e.filename or 'a file'}: {e.strerror or e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("coanalysis: interrupted; finished results are kept (re-run the command to continue)", file=sys.stderr)
        sys.exit(130)
