"""The ``tre`` command: what admins and data stewards run on the TRE's host.

The command is assembled from the ``tre.commands`` entry points (pyproject.toml): each package
registers its own sub-commands (``datasets``: db, catalogue, datasets, projects, checkers, audit;
``images``; ``hub``: firewall; ``demo``; ``egress_review``: check), so that no package imports the
ones built on it. An entry point names either a Typer app (a group of commands under the entry
point's name) or a function (one command). What the commands share (console, failure, the host
account) is in ``tre_core.terminal``, which they import instead of this module.

An entry point is loaded only when its command runs (Click's lazy-group pattern): ``tre datasets
add`` imports the datasets commands, not the hub's, the images' and the package index's, which
made every run pay a second of imports before it did anything. ``tre --help`` loads them all, to
show each one's help line.
"""

from __future__ import annotations

import click
import typer
from typer.core import TyperGroup

from tre_core import process
from tre_core.terminal import host_user


_all_entry_points: list = []


def _entry_points(group: str) -> list:
    """The entry points of one group; the installed packages' metadata is read once (each
    ``entry_points()`` call reads every package's, a tenth of a second)."""
    from importlib.metadata import entry_points

    if not _all_entry_points:
        _all_entry_points.append(entry_points())
    return list(_all_entry_points[0].select(group=group))


def _registered() -> dict[str, object]:
    """The ``tre.commands`` entry points by name (reading the metadata imports nothing)."""
    return {entry.name: entry for entry in _entry_points("tre.commands")}


def _as_click(name: str, registered: object) -> click.Command:
    """The Click command of an entry point's Typer app (a group, with the commands other packages
    add to it under ``tre.commands.<name>``) or function (one command)."""
    if not isinstance(registered, typer.Typer):
        single = typer.Typer()
        single.command(name)(registered)
        command = typer.main.get_command(single)
        command.name = name
        return command
    group = typer.main.get_group(registered)
    group.name = name
    for extra in _entry_points(f"tre.commands.{name}"):
        group.add_command(_as_click(extra.name, extra.load()), extra.name)
    return group


class RegisteredCommands(TyperGroup):
    """The commands defined here, then each entry point's, loaded on first use."""

    _entries: dict[str, object] | None = None
    _loaded: dict[str, click.Command] = {}

    def _entry_points(self) -> dict[str, object]:
        if RegisteredCommands._entries is None:
            RegisteredCommands._entries = _registered()
        return RegisteredCommands._entries

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._entry_points()))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        if name not in RegisteredCommands._loaded:
            entry = self._entry_points().get(name)
            if entry is None:
                return None
            RegisteredCommands._loaded[name] = _as_click(name, entry.load())  # type: ignore[attr-defined]
        return RegisteredCommands._loaded[name]


app = typer.Typer(help="Trusted research environment: catalogue, demo and images.", no_args_is_help=True,
                  cls=RegisteredCommands)


@app.callback()
def _every_command() -> None:
    # --as names the person acted for; the audit log also keeps which host account ran the command
    process.set_context(via="tre", host_user=host_user())
