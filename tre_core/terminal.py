"""What every ``tre`` command shares: the console, the way a command fails, who runs it."""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Sequence

import typer
from rich.console import Console
from rich.table import Table

console = Console(soft_wrap=True)


def host_user() -> str:
    """Who runs this command on the host (through sudo: the person, not root)."""
    return os.environ.get("SUDO_USER") or getpass.getuser()


def fail(message: str) -> None:
    console.print(f"[red]Error:[/red] {message}")
    raise typer.Exit(1)


def progress(status, prefix: str):
    """Show a long step's output: live in a terminal, one line per build step in a log (CI)."""

    def show(line: str) -> None:
        line = line.strip()
        if console.is_terminal:
            status.update(f"{prefix}: {line[:110]}")
        elif line.startswith(("Step ", "I: Retrieving", "I: Base system installed", "importing", "packing")):
            console.print(f"    {prefix}: {line}", highlight=False)

    return show


def shown_url(url: str) -> str:
    """A database URL fit for a terminal or a log: a PostgreSQL password never shows."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


JSON_HELP = "Print JSON (one object per row, whole values) for scripts."


def print_table(columns: Sequence[str], rows: Sequence[Sequence[str]], *, as_json: bool = False) -> None:
    """A listing for a person in a terminal, and whole values for machines: JSON with ``--json``,
    tab-separated lines (header first) when the output goes to a file or a pipe, never cut at the
    terminal's width, so that ``tre images list | grep`` sees whole names and digests."""
    if as_json:
        print(json.dumps([dict(zip(columns, row)) for row in rows], indent=2, ensure_ascii=False))
    elif not console.is_terminal:
        for line in (columns, *rows):
            print("\t".join(str(cell).replace("\t", " ").replace("\n", " ") for cell in line))
    else:
        table = Table(*columns)
        for row in rows:
            table.add_row(*(str(cell) for cell in row))
        console.print(table)
