"""The ``tre firewall`` commands: the host firewall rules around the workspaces (``hub.firewall``)."""

from __future__ import annotations

import typer

from hub import firewall
from tre_core.settings import TRESettings
from tre_core.terminal import console, fail

firewall_app = typer.Typer(help="Host firewall rules around the workspaces.", no_args_is_help=True)


@firewall_app.command("install")
def firewall_install() -> None:
    """Let workspaces reach the hub's API and package index ports on the host and nothing else (idempotent)."""
    settings = TRESettings()
    try:
        firewall.install(settings.instance, settings.hub_port, settings.package_index_port)
    except RuntimeError as exc:
        fail(f"{exc}. The rules need root.")
    console.print(f"Firewall rules of instance {settings.instance}: workspaces reach ports {settings.hub_port} "
                  f"(hub API) and {settings.package_index_port} (package index) only.")


@firewall_app.command("remove")
def firewall_remove() -> None:
    """Remove this installation's firewall rules (idempotent)."""
    settings = TRESettings()
    firewall.remove(settings.instance)
    console.print(f"Firewall rules of instance {settings.instance} removed.")


@firewall_app.command("show")
def firewall_show() -> None:
    """Print this installation's rules as iptables lists them."""
    for line in firewall.installed_rules(TRESettings().instance) or ["(no rules installed)"]:
        print(line)
