"""``trainsim convert``: turn recorded traces into Chakra ETs (``convert pytorch``)."""

from __future__ import annotations

import argparse
import json
import warnings
from typing import Any

from trainsim.chakra_et.convert import (
    Conversion,
    ConversionWarning,
    TraceConversionError,
    convert_directory,
    convert_pytorch,
)

__all__ = ["ConvertUsageError", "register"]


class ConvertUsageError(TraceConversionError):
    """A ``trainsim convert`` invocation that names neither traces nor one directory."""


def register(sub: Any) -> None:
    """Add the ``convert`` subcommand group with its ``pytorch`` action."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "convert", help="convert recorded traces into Chakra ETs"
    )
    actions = parser.add_subparsers(dest="convert_command", metavar="FORMAT")
    pytorch = actions.add_parser(
        "pytorch",
        help="PyTorch host execution trace (+ Kineto device trace) -> Chakra ET",
        description="Convert one rank (--host [--kineto] -o OUT.et; --kineto alone converts "
        "a Kineto trace without its host trace) or a directory of host and Kineto traces "
        "(DIR -o OUTDIR, writing NAME.R.et; paired by rank and pid, whatever their names).",
    )
    pytorch.add_argument("directory", nargs="?", metavar="DIR", help="directory of rank traces")
    pytorch.add_argument("--host", metavar="HOST.json[.gz]", help="host execution trace")
    pytorch.add_argument("--kineto", metavar="DEVICE.json[.gz]", help="Kineto trace of the run")
    pytorch.add_argument(
        "-o", "--output", required=True, metavar="OUT", help="OUT.et, or OUTDIR with DIR"
    )
    pytorch.add_argument("--name", default="et", help="file stem in directory mode (NAME.R.et)")
    pytorch.add_argument("--rank", type=int, help="rank of a single trace (default: from it)")
    pytorch.add_argument(
        "--no-host-gaps",
        action="store_true",
        help="do not add idle CPU time between ops to the next op's duration",
    )
    pytorch.add_argument(
        "--force",
        action="store_true",
        help="convert a host trace with a Kineto trace that looks like another run's",
    )
    pytorch.add_argument("--json", action="store_true", help="print the report as one JSON object")
    pytorch.set_defaults(func=_pytorch)


def _pytorch(args: argparse.Namespace) -> int:
    single = args.host is not None or args.kineto is not None
    if (args.directory is None) == (not single):
        raise ConvertUsageError("convert pytorch: give either DIR or --host/--kineto (not both)")
    if args.directory is not None and args.rank is not None:
        raise ConvertUsageError("convert pytorch: --rank applies to --host/--kineto, not to DIR")
    host_gaps = not args.no_host_gaps
    with warnings.catch_warnings():
        # The report carries every warning; printing them twice would only add noise.
        warnings.simplefilter("ignore", ConversionWarning)
        if args.directory is not None:
            results = convert_directory(
                args.directory, args.output, name=args.name, host_gaps=host_gaps, force=args.force
            )
        else:
            results = [
                convert_pytorch(
                    args.host,
                    args.kineto,
                    args.output,
                    rank=args.rank,
                    host_gaps=host_gaps,
                    force=args.force,
                )
            ]
    _print(results, as_json=args.json)
    return 0


def _print(results: list[Conversion], *, as_json: bool) -> None:
    if as_json:
        reports = [r.report.to_dict() for r in results]
        payload: dict[str, Any] = reports[0] if len(reports) == 1 else {"ranks": reports}
        print(json.dumps(payload, indent=2))
        return
    for result in results:
        print(result.report.format())
        print(f"  wrote {result.report.output}")
