"""The ``facestream`` command line. Each sub-command lives in its own module with ``register()``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from stream import __version__
from stream.cli.proctitle import mask_own_cmdline
from stream.errors import FacestreamError
from stream.sources.credentials import mask_text

log = logging.getLogger("stream.cli")

# Order is the order of `facestream --help`.
COMMAND_MODULES = (
    "stream.cli.run_cmd",
    "stream.cli.enroll_cmd",
    "stream.cli.forget_cmd",
    "stream.cli.cluster_cmd",
    "stream.cli.search_cmd",
    "stream.cli.history_cmd",
    "stream.cli.site_cmd",
    "stream.cli.embed_cmd",
    "stream.cli.eval_cmd",
    "stream.cli.subscribe_cmd",
    "stream.cli.serve_cmd",
    "stream.cli.keys_cmd",
    "stream.cli.models_cmd",
    "stream.cli.engine_cmd",
    "stream.cli.train_cmd",
)


class _Parser(argparse.ArgumentParser):
    """argparse quotes what it could not parse ("invalid int value: 'rtsp://admin:...'"): mask it.
    Sub-command parsers are made of the same class."""

    def error(self, message: str):  # type: ignore[override]
        super().error(mask_text(message))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="facestream",
        description="Real-time face recognition for video streams.",
    )
    parser.add_argument("--version", action="version", version=f"facestream {__version__}")
    parser.add_argument(
        "--log-level", default="WARNING", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level for stderr (default WARNING)",
    )
    parser.add_argument("-v", "--verbose", action="store_const", const="INFO", dest="log_level",
                        help="same as --log-level INFO")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    return parser


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _command_at(argv: list[str]) -> int:
    """Index of the command in ``argv``: global options come first."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] == "--log-level" else 1
    return i


def _with_cluster_default(argv: list[str]) -> list[str]:
    """``cluster DIR`` is ``cluster faces DIR``: the command was that before it had sub-commands. ``cluster run``
    and ``cluster batch`` (the Ray commands before they were ``site ...``) say their new name."""
    from stream.cli.cluster_cmd import RENAMED, SUBCOMMANDS

    i = _command_at(argv)
    if i + 1 < len(argv) and argv[i] == "cluster":
        if argv[i + 1] in RENAMED:
            raise FacestreamError(f"cluster {argv[i + 1]}: renamed: use `facestream {RENAMED[argv[i + 1]]}`")
        if argv[i + 1] not in (*SUBCOMMANDS, "-h", "--help"):
            return [*argv[:i + 1], "faces", *argv[i + 1:]]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    mask_own_cmdline()  # first: a password in argv is readable by every user until this runs
    parser = build_parser()
    try:
        argv = _with_cluster_default(list(sys.argv[1:] if argv is None else argv))
    except FacestreamError as exc:
        print(f"facestream: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    try:
        return int(args.func(args) or 0)
    except FacestreamError as exc:
        print(f"facestream: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facestream: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `facestream embed ... | head` closes stdout early; that is not an error.
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
