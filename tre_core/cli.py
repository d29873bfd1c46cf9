"""The ``tre`` command: what admins and data stewards run on the TRE's host.

The command is assembled from the ``tre.commands`` entry points (pyproject.toml): each package
registers its own sub-commands (``datasets``: db, catalogue, datasets, projects, checkers, audit;
``images``; ``hub``: firewall; ``demo``; ``egress_review``: check), so that no package imports the
ones built on it. An entry point names either a Typer app (a group of commands under the entry
point's name) or a function (one command). What the commands share (console, failure, the host
account) is in ``tre_core.terminal``, which they import instead of this module.
"""

from __future__ import annotations

import typer

from tre_core import process
from tre_core.terminal import host_user

app = typer.Typer(help="Trusted research environment: catalogue, demo and images.", no_args_is_help=True)


@app.callback()
def _every_command() -> None:
    # --as names the person acted for; the audit log also keeps which host account ran the command
    process.set_context(via="tre", host_user=host_user())


def _add_registered_commands() -> None:
    """Add what each package registers under the ``tre.commands`` entry-point group."""
    from importlib.metadata import entry_points

    for entry in entry_points(group="tre.commands"):
        registered = entry.load()
        if isinstance(registered, typer.Typer):
            app.add_typer(registered, name=entry.name)
        else:
            app.command(entry.name)(registered)


_add_registered_commands()
