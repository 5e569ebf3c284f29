"""``treadle plugins``: what discovery found, and what each plugin registers."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse


def add_parsers(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> dict[str, argparse.ArgumentParser]:
    """Add the ``plugins`` command; return its parser by command name."""
    parser = subparsers.add_parser(
        "plugins", help="list discovered plugins, their distributions and components"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(func=_run)
    return {"plugins": parser}


def _run(args: argparse.Namespace) -> int:
    from treadle.core.plugins import list_plugins

    infos = list_plugins()
    if args.json:
        rows = []
        for info in infos:
            row = asdict(info)
            row.pop("exception", None)
            rows.append(row)
        print(json.dumps(rows, indent=2))
        return 0
    for info in infos:
        dist = f"{info.distribution} {info.version}" if info.distribution else "-"
        print(f"{info.name}  [{info.status}]  {dist}  ({info.target})")
        for registry, names in sorted(info.components.items()):
            print(f"    {registry}: {', '.join(names)}")
        if info.error:
            print(f"    error: {info.error}")
        if info.hint:
            print(f"    hint: {info.hint}")
    return 0
