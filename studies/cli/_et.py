"""``trainsim et``: inspect, validate and convert Chakra ET files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from trainsim import chakra_et
from trainsim.chakra_et import ETGraph

__all__ = ["load_any", "register"]


def load_any(path: str) -> ETGraph:
    """Load an ``.et`` file, or its JSON dump when the name ends in ``.json``/``.json.gz``."""
    if path.endswith((".json", ".json.gz")):
        return chakra_et.load_json(path)
    return chakra_et.load(path)


def register(sub: Any) -> None:
    """Add the ``et`` subcommand group: info, validate, to-json, from-json."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "et", help="inspect, validate and convert Chakra ET files"
    )
    actions = parser.add_subparsers(dest="et_command", metavar="ACTION")

    info = actions.add_parser(
        "info", help="nodes by type, collectives and bytes, compute time, critical path"
    )
    info.add_argument("files", nargs="+", metavar="FILE", help=".et, .et.gz or .json ET files")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=_info)

    check = actions.add_parser("validate", help="check ids, dependencies, cycles and attributes")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.set_defaults(func=_validate)

    to_json = actions.add_parser("to-json", help="dump an .et file as chakra_jsonizer does")
    to_json.add_argument("file", metavar="FILE")
    to_json.add_argument("-o", "--output", metavar="OUT.json", help="default: standard output")
    to_json.set_defaults(func=_to_json)

    from_json = actions.add_parser("from-json", help="write an .et file from its JSON dump")
    from_json.add_argument("file", metavar="FILE.json")
    from_json.add_argument("-o", "--output", metavar="OUT.et", required=True)
    from_json.set_defaults(func=_from_json)


def _info(args: argparse.Namespace) -> int:
    summaries = [chakra_et.summarize(load_any(path), source=path) for path in args.files]
    if args.json:
        payload: Any = [s.to_dict() for s in summaries]
        print(json.dumps(payload[0] if len(payload) == 1 else {"files": payload}, indent=2))
    else:
        print("\n\n".join(s.format() for s in summaries))
    return 0


def _validate(args: argparse.Namespace) -> int:
    report: dict[str, Any] = {}
    failed = False
    for path in args.files:
        problems = chakra_et.check(load_any(path))
        errors = [p for p in problems if p.severity == "error"]
        failed = failed or bool(errors)
        report[path] = {
            "valid": not errors,
            "errors": [str(p) for p in errors],
            "warnings": [str(p) for p in problems if p.severity != "error"],
        }
        if not args.json:
            status = "ok" if not errors else f"INVALID ({len(errors)} error(s))"
            warned = len(problems) - len(errors)
            note = f", {warned} warning(s)" if warned else ""
            print(f"{path}: {status}{note}")
            for problem in problems[:20]:
                print(f"  {problem}")
            if len(problems) > 20:
                print(f"  ... and {len(problems) - 20} more")
    if args.json:
        print(json.dumps(report, indent=2))
    if failed:
        bad = [path for path, row in report.items() if not row["valid"]]
        print(f"trainsim: error: invalid ET: {', '.join(bad)}", file=sys.stderr)
        return 2
    return 0


def _to_json(args: argparse.Namespace) -> int:
    graph = chakra_et.load(args.file)
    if args.output:
        chakra_et.save_json(graph, args.output)
    else:
        sys.stdout.write(chakra_et.to_json(graph))
        sys.stdout.write("\n")
    return 0


def _from_json(args: argparse.Namespace) -> int:
    graph = chakra_et.load_json(args.file)
    out = Path(args.output)
    chakra_et.save(graph, out)
    return 0
