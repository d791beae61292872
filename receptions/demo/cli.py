"""`flask demo load`."""

from __future__ import annotations

import click
from flask.cli import AppGroup

demo_cli = AppGroup("demo", help="Demo data for trying the service out.")


@demo_cli.command("load")
def load_command() -> None:
    """Create or refresh regions, districts, institutions and one account per role."""
    from .services import DEMO_ACCOUNTS, DEMO_PASSWORD, load_demo

    created = load_demo()
    click.echo(", ".join(f"{name}: {count} new" for name, count in created.items()))
    click.echo(f"Demo accounts (password '{DEMO_PASSWORD}'):")
    for account in DEMO_ACCOUNTS:
        click.echo(f"  {account.email:32} {account.role.value}")
