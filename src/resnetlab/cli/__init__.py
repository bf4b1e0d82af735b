"""The ``resnetlab`` command line.

Each sub-command lives in a module of its own that defines ``register(subparsers)``; the list below
is the one place that names them. A user error (``resnetlab.errors.UserError``, a bad option) is
printed as one line with exit code 2, and so is an ``OSError`` (a path that cannot be read or
written, a full disk); ``--debug`` shows the traceback instead. A warning is one line on stderr
(``resnetlab: warning: ...``, never Python's file, line number and source line), and what the
library logs at INFO (``logging``: a test split held out of a folder, ...) is a line on stdout,
except under ``--json``, whose stdout is the JSON alone.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from resnetlab.errors import UserError

# Sub-command modules, imported lazily so that `resnetlab --help` stays fast (+ `list`: summary).
COMMANDS = ["summary", "train", "data", "eval", "predict", "export", "bench", "experiment", "plot"]
COMMANDS += ["embed", "explain"]  # using a trained network: features, Grad-CAM


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")


def build_parser() -> ArgumentParser:
    """The full parser with every sub-command registered."""
    parser = ArgumentParser(
        prog="resnetlab", description="Residual networks from the paper to production."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"resnetlab.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        with _console(json_out=bool(getattr(args, "json", False))):
            return int(args.func(args) or 0)
    except UserError as err:
        if debug:
            raise
        print(f"resnetlab: error: {one_line(str(err))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `resnetlab summary ... | head`: the reader left; not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (keeps Python's exit flush quiet)
        return 0
    except OSError as err:  # a path the user gave, or the disk, failed: name it in one line
        if debug:
            raise
        where = f"{err.filename}: " if err.filename is not None else ""
        print(f"resnetlab: error: {one_line(where + (err.strerror or str(err)))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("resnetlab: interrupted", file=sys.stderr)
        return 130


@contextlib.contextmanager
def _console(json_out: bool) -> Iterator[None]:
    """One-line warnings and the library's INFO log on stdout, while a command runs."""
    logger = logging.getLogger("resnetlab")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level, format_warning = logger.level, warnings.formatwarning
    if not json_out:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    # formatwarning, not showwarning: warnings recorded by a caller (pytest.warns) still are.
    warnings.formatwarning = _format_warning
    try:
        yield
    finally:
        warnings.formatwarning = format_warning
        logger.removeHandler(handler)
        logger.setLevel(level)


def _format_warning(message, category, filename, lineno, line=None) -> str:
    if Path(filename).resolve().is_relative_to(Path(__file__).resolve().parents[1]):
        return f"resnetlab: warning: {one_line(str(message))}\n"  # ours: the message says it all
    where = f"{category.__name__} at {filename}:{lineno}"
    return f"resnetlab: warning: {one_line(str(message))} ({where})\n"


def one_line(message: str) -> str:
    """``message`` with line breaks escaped (a file name may hold one): errors are one line."""
    return message.replace("\r", "\\r").replace("\n", "\\n")


def _version() -> str:
    from resnetlab import __version__

    return f"resnetlab {__version__}"
