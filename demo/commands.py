"""The ``tre demo`` commands: the demo installation (synthetic data, demo catalogue, local accounts)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Optional

import typer

from datasets.commands import catalogue_load, catalogue_url, db_upgrade
from tre_core.db import session_scope
from tre_core.settings import TRESettings, installation_secret
from tre_core.terminal import console, fail

DEMO_CATALOGUE = Path(__file__).resolve().parent / "demo_catalogue.yaml"

app = typer.Typer(help="The demo installation (synthetic data, local accounts).", no_args_is_help=True)


def demo_password(secrets_dir: Path) -> str:
    """This installation's demo password, created on first use (readable by root only)."""
    return installation_secret(secrets_dir, "demo-password", lambda: secrets.token_urlsafe(12))


@app.command("data")
def demo_data(
    scale: Annotated[float, typer.Option(help="Multiplies the demo's 200,000 claims rows.")] = 1.0,
    rows: Annotated[Optional[int], typer.Option(help="Claims rows (overrides --scale); 100000000 for national scale.")] = None,
) -> None:
    """Generate the synthetic SNDS-shaped datasets as partitioned Parquet (deterministic; reused when there)."""
    from datasets.version_commands import byte_progress
    from demo.snds import DEMO_ROWS, GeneratorError, generate

    settings = TRESettings()
    wanted = rows or max(1000, round(DEMO_ROWS * scale))
    progress, advance = byte_progress(f"Generating {wanted:,} claims rows", in_bytes=False)
    try:
        with progress:
            generated = generate(settings.data_root, rows=wanted, progress=advance)
    except GeneratorError as exc:
        fail(str(exc))
    for dataset in generated.values():
        console.print(f"  {dataset.slug}: {dataset.row_count:,} rows in {dataset.files} files under {dataset.directory}")


@app.command("init")
def demo_init(scale: Annotated[float, typer.Option(help="Size of the synthetic data.")] = 1.0,
              rows: Annotated[Optional[int], typer.Option(help="Claims rows (overrides --scale).")] = None) -> None:
    """Database, synthetic data, demo catalogue and demo password: everything the demo hub needs."""
    from sqlalchemy import select

    from datasets.models import Project

    settings = TRESettings()
    db_upgrade()
    demo_data(scale=scale, rows=rows)
    with session_scope(catalogue_url()) as session:
        loaded = session.scalars(select(Project.slug).limit(1)).first() is not None
    if loaded:
        # Loading again would put back what stewards have since changed (a revoked grant, a
        # suspended project, a removed member): the demo keeps its history.
        console.print("The demo catalogue is loaded already; what stewards changed since is kept "
                      "(./setup.sh reset starts the demo again from scratch).")
    else:
        catalogue_load(DEMO_CATALOGUE)
    demo_password(settings.secrets_dir)


@app.command("password")
def demo_password_command() -> None:
    """Print the demo accounts' password."""
    print(demo_password(TRESettings().secrets_dir))
