"""The commands egress_review adds to ``tre`` (entry-point group ``tre.commands``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def check(
    paths: Annotated[list[Path], typer.Argument(help="Files to check (tables, notebooks, figures, models, text).")],
    project: Annotated[Optional[str], typer.Option(help="Use this project's parameters, identifier index and "
                                                       "earlier releases from the catalogue.")] = None,
    index: Annotated[Optional[Path], typer.Option(help="An identifier index (.arrow) when no project is given.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    lang: Annotated[Optional[str], typer.Option(help="The report's language, en or fr (default: the terminal's "
                                                    "locale, LC_ALL, LC_MESSAGES or LANG).")] = None,
) -> None:
    """Run the egress review's automatic disclosure checks on files, before submitting or to re-run them."""
    from egress_review.checks import CheckContext
    from egress_review.checks.cli import check_paths, render
    from tre_core.i18n import _messages
    from egress_review.checks.i18n import language_of, use_catalogue
    from egress_review.checks.identifiers import IdentifierIndex

    use_catalogue(_messages)  # on the hub, the platform's catalogue
    try:
        language = language_of(lang)
    except ValueError as wrong:
        typer.echo(str(wrong), err=True)
        raise typer.Exit(64) from None
    notes: list = []
    if project:
        from tre_core.settings import TRESettings
        from egress_review.__main__ import airlock_from
        from egress_review.errors import NotFound

        try:
            notes, context = airlock_from(TRESettings()).check_context_of(project)
        except NotFound as missing:
            typer.echo(str(missing), err=True)
            raise typer.Exit(1) from None
    else:
        context = CheckContext("", identifiers=IdentifierIndex.load(index) if index else None)
    text, status = render(check_paths(paths, context, notes), as_json, language)
    typer.echo(text)
    raise typer.Exit(status)
