"""Settlement commands: allocate (compare keys on a file), settle, balances, statement,
certificates. Heavy imports stay inside the command bodies."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer


def _fail(message: str, code: int = 2) -> typer.Exit:
    print(message, file=sys.stderr)
    return typer.Exit(code)


def allocate_cmd(
    input_file: Path = typer.Argument(..., metavar="INPUT.json", help="interval to allocate"),
    key: str = typer.Option("prorata", "--key", help="prorata | static | priority"),
) -> None:
    """Allocate one interval's local exports to local imports with an allocation key."""
    from community.settlement.allocation import AllocationError, allocate, parse_input

    try:
        doc = json.loads(input_file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _fail(f"cannot read {input_file}: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(f"{input_file} is not valid JSON: {exc}") from None
    try:
        result = allocate(parse_input(doc, key), key)
    except AllocationError as exc:
        raise _fail(f"{input_file}: {exc}") from None
    print(json.dumps(result.to_json(), indent=2))


def register(app: typer.Typer) -> None:
    app.command("allocate")(allocate_cmd)
