"""The subcommands of `coanalysis`, one module each; `COMMANDS` lists them in help order.

Each module has `HELP` (one line), `EXAMPLES`, `add_arguments(parser)` and `run(args)`.

May import: every room. Nothing but `cli` imports a command.
"""

from coanalysis.commands import bagssl, compare, demo, erf, inspect, probe, redundancy, report, robustness, similarity, zoo

COMMANDS = {
    "demo": demo,
    "probe": probe,
    "compare": compare,
    "inspect": inspect,
    "robustness": robustness,
    "redundancy": redundancy,
    "erf": erf,
    "bagssl": bagssl,
    "similarity": similarity,
    "report": report,
    "zoo": zoo,
}
