"""``tslcd-monitor inventory ...``: validate, import, scaffold and generate inventories."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from monitor.common.exits import EXIT_BAD_INPUT, EXIT_OK


def register(subparsers: Any) -> None:
    """Add the ``inventory`` command group to the main parser's subparsers."""
    from inventory import generate

    group = subparsers.add_parser("inventory", help="validate, import, scaffold inventories")
    sub = group.add_subparsers(dest="inventory_command", required=True, metavar="ACTION")

    p = sub.add_parser("validate", help="check an inventory; one line per problem, exit 2 if bad")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(handler=cmd_validate)

    p = sub.add_parser("import", help="turn the spreadsheet of assigned IPs into an inventory")
    p.add_argument("file", metavar="FILE.xlsx|FILE.csv")
    p.add_argument("-o", "--output", required=True, metavar="FILE.yaml")
    p.set_defaults(handler=cmd_import)

    p = sub.add_parser("scaffold", help="skeleton listing every commune of a province")
    p.add_argument("--province", required=True, metavar="CODE", help="official province code")
    p.add_argument("-o", "--output", required=True, metavar="FILE.yaml")
    p.set_defaults(handler=cmd_scaffold)

    p = sub.add_parser("generate", help="synthetic inventory on loopback addresses (tests, demo)")
    generate.add_arguments(p)
    p.set_defaults(handler=cmd_generate)


def cmd_validate(args: argparse.Namespace) -> int:
    from inventory.loader import validate

    inventory, problems = validate(args.file)
    _report(problems)
    if inventory is None:
        return EXIT_BAD_INPUT
    communes = sum(len(p.communes) for p in inventory.provinces)
    print(f"{args.file}: hợp lệ / valid: {len(inventory.provinces)} tỉnh / provinces, "
          f"{communes} xã / communes, {inventory.host_count} máy / hosts, "
          f"{len(problems)} cảnh báo / warnings")
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    from inventory.importer import import_spreadsheet

    text, problems = import_spreadsheet(args.file)
    _report(problems)
    if text is None:
        return EXIT_BAD_INPUT
    Path(args.output).write_text(text, encoding="utf-8")
    return EXIT_OK


def cmd_scaffold(args: argparse.Namespace) -> int:
    from inventory.scaffold import scaffold

    try:
        text = scaffold(args.province)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    Path(args.output).write_text(text, encoding="utf-8")
    return EXIT_OK


def cmd_generate(args: argparse.Namespace) -> int:
    from inventory import generate

    return generate.run(args)


def _report(problems: Iterable[object]) -> None:
    for problem in problems:
        print(problem, file=sys.stderr)
