"""Parsing and checking the values of command-line options, for both command lines.

Every number a user types goes through here. Floats must be finite (`nan`, `inf` are refused); a
fraction `a/b` is read wherever a number is (`--eps linf=1/255`), and `1/0` is refused; a number
outside its range (a count below 1, a fraction above 1) is refused with the range it must lie in.
`Number` and `NumberList` are argparse `type=` callables (they raise `ArgumentTypeError`), and
also check values that reach the code without argparse (`Number.check` raises `UserError`), so
one definition of a range serves the parser, a config's validation and the library calls.
`OneLineParser` is the parser class of both command lines: a usage error is one line, exit code 2.
`writable_dir` and `writable_file` check an output location before any work is done.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from co_ssl_train.errors import UserError


def _text(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class Number:
    """A finite int or float in `[low, high]` (`low_open` / `high_open` exclude that end)."""

    kind: type = float
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    @property
    def __name__(self) -> str:  # argparse names the type in some messages
        return self.describe()

    def describe(self) -> str:
        what = "an integer" if self.kind is int else "a finite number"
        if self.kind is int and self.low is not None and self.high is None and not self.low_open:
            return f"an integer of at least {_text(self.low)}"
        if self.low is not None and self.high is not None and not (self.low_open or self.high_open):
            return f"{what} from {_text(self.low)} to {_text(self.high)}"
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {_text(self.low)}")
        if self.high is not None:
            bounds.append(f"{'<' if self.high_open else '<='} {_text(self.high)}")
        return what + (f" {' and '.join(bounds)}" if bounds else "")

    def parse(self, text: str) -> float | int:
        """`text` as a checked number; raises ValueError with a message saying what was expected."""
        raw = str(text).strip()
        try:
            if self.kind is int:
                value: float | int = int(raw)
            elif "/" in raw:
                num, den = raw.split("/", 1)
                value = float(num) / float(den)
            else:
                value = float(raw)
        except ZeroDivisionError:
            raise ValueError(f"{raw!r} divides by zero; expected {self.describe()}") from None
        except (ValueError, OverflowError):
            raise ValueError(f"expected {self.describe()}, got {raw!r}") from None
        return self._checked(value, raw)

    def _checked(self, value: float | int, shown: str) -> float | int:
        if not math.isfinite(value) or not self.contains(value):
            raise ValueError(f"expected {self.describe()}, got {shown}")
        return value

    def contains(self, value: float | int) -> bool:
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            return False
        return True

    def check(self, value: float | int | None, flag: str) -> float | int | None:
        """`value` unchanged when it is None or in range; else a UserError naming `flag`."""
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                (self.kind is int and not isinstance(value, int)):
            raise UserError(f"{flag}: expected {self.describe()}, got {value!r}")
        try:
            return self._checked(value, repr(value))
        except ValueError as e:
            raise UserError(f"{flag}: {e}") from None

    def value(self, text: str, flag: str) -> float | int:
        """`parse`, with a UserError naming `flag` (for values parsed outside argparse)."""
        try:
            return self.parse(text)
        except ValueError as e:
            raise UserError(f"{flag}: {e}") from None

    def __call__(self, text: str) -> float | int:
        try:
            return self.parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None


@dataclass(frozen=True)
class NumberList:
    """Comma-separated numbers, each a `Number`; at least one; repeats dropped, order kept."""

    item: Number

    @property
    def __name__(self) -> str:
        return f"comma-separated list of {self.item.describe()}"

    def parse(self, text: str) -> tuple:
        parts = [p.strip() for p in str(text).split(",")]
        if not any(parts):
            raise ValueError(f"expected comma-separated numbers ({self.item.describe()}), got {text!r}")
        if not all(parts):
            raise ValueError(f"empty entry in {text!r}; write numbers separated by single commas")
        return tuple(dict.fromkeys(self.item.parse(p) for p in parts))

    def value(self, text: str, flag: str) -> tuple:
        try:
            return self.parse(text)
        except ValueError as e:
            raise UserError(f"{flag}: {e}") from None

    def __call__(self, text: str) -> tuple:
        try:
            return self.parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None


FINITE = Number(float)
POSITIVE = Number(float, low=0, low_open=True)
NON_NEGATIVE = Number(float, low=0)
UNIT = Number(float, low=0, high=1)  # a fraction in [0, 1]
UNIT_OPEN_LOW = Number(float, low=0, high=1, low_open=True)  # (0, 1]
INTEGER = Number(int)
COUNT = Number(int, low=1)  # how many of something; at least one
NON_NEGATIVE_INT = Number(int, low=0)
SEED = Number(int, low=0, high=2 ** 32 - 1)  # numpy's seeds must fit in 32 bits


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (`prog: error: ...`) and exit code 2, and
    which reads `-inf`, `-nan`, `-1e-3` and `-1/255` as values (refused or taken by their option's
    type), not as unknown flags."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(
            r"^-(\d+\.?\d*|\d*\.\d+)(e[-+]?\d+)?(/\S+)?$|^-(inf|infinity|nan)$", re.IGNORECASE)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _probe_write(folder: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".write-check.", dir=folder)
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def writable_dir(path: str | os.PathLike, flag: str) -> Path:
    """`path` as a folder that exists (created if needed) and can be written; else a UserError."""
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{flag} {folder} exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _probe_write(folder)
    except OSError as e:
        raise UserError(f"{flag} {folder} cannot be written: {e.strerror or e}") from None
    return folder


def writable_file(path: str | os.PathLike, flag: str) -> Path:
    """`path` as a file that can be written (its folder created if needed); else a UserError."""
    file = Path(path).expanduser()
    if file.is_dir():
        raise UserError(f"{flag} {file} is a folder; give the file to write")
    writable_dir(file.parent, f"{flag} {file}: folder")
    if file.exists() and not os.access(file, os.W_OK):
        raise UserError(f"{flag} {file} cannot be written: permission denied")
    return file


__all__ = ["COUNT", "FINITE", "INTEGER", "NON_NEGATIVE", "NON_NEGATIVE_INT", "POSITIVE", "SEED", "UNIT",
           "UNIT_OPEN_LOW", "Number", "NumberList", "OneLineParser", "writable_dir", "writable_file"]
