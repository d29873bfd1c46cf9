"""``tre audit verify | checkpoint | checkpoints | install``: the audit log and its signed checkpoints."""

from __future__ import annotations

from collections.abc import Callable

import typer
from rich.console import Console
from rich.table import Table

from datasets import anchor
from tre_core.db import session_scope
from tre_core.settings import TRESettings


def register(audit_app: typer.Typer, catalogue_url: Callable[[], str], fail: Callable[[str], None],
             console: Console) -> None:
    """Add the commands to ``audit_app`` (the ``tre audit`` group)."""

    @audit_app.command("verify")
    def verify() -> None:
        """Check the chain and every signed checkpoint; exit 1 naming each cut, rewrite or forgery."""
        url, settings = catalogue_url(), TRESettings()
        path = anchor.checkpoints_path(settings.home)
        has_key = (settings.secrets_dir / f"{anchor.KEY_NAME}.pub").exists()
        with session_scope(url) as session:
            result = anchor.verify(session, path, anchor.public_key(settings.secrets_dir) if has_key else None)
        if not result.ok:
            fail("the audit log was tampered with:\n  - " + "\n  - ".join(result.problems) +
                 "\nKeep the database and the checkpoints file as they are and alert the security officer.")
        anchored = f" {result.checkpoints} signed checkpoint(s) agree." if result.checkpoints else ""
        console.print(f"Audit log intact: {result.rows} rows.{anchored}")

    @audit_app.command("checkpoint")
    def checkpoint() -> None:
        """Sign the log's head now and append it to the checkpoints file."""
        settings = TRESettings()
        written = anchor.write_checkpoint(catalogue_url(), settings.secrets_dir,
                                          anchor.checkpoints_path(settings.home), reason="command")
        console.print(f"Checkpoint {written['checkpoint']}: {written['rows']} rows, head {written['head'][:16]}…")

    @audit_app.command("checkpoints")
    def checkpoints() -> None:
        """List the signed checkpoints, oldest first."""
        settings = TRESettings()
        path = anchor.checkpoints_path(settings.home)
        table = Table("checkpoint", "at", "rows", "head", "why", "key")
        for c in anchor.read_checkpoints(path):
            table.add_row(str(c["checkpoint"]), c["at"], str(c["rows"]), c["head"][:16] + "…", c["reason"], c["key"])
        console.print(table)
        console.print(f"File: {path}. Copy it off the host (see the README, “Audit checkpoints”).")

    @audit_app.command("install")
    def install() -> None:
        """Create the signing key (0600, in the secrets folder) and the append-only checkpoints file."""
        settings = TRESettings()
        created = anchor.create_key(settings.secrets_dir)
        path = anchor.checkpoints_path(settings.home)
        why_not = anchor.make_append_only(path)
        console.print(("Created" if created else "Kept") + f" the audit key {settings.secrets_dir / anchor.KEY_NAME}.")
        console.print(f"Checkpoints file {path}: " + ("append-only (chattr +a)." if why_not is None else
                                                      f"opened O_APPEND only: {why_not}."))
