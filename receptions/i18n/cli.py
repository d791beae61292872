"""`flask i18n check`: report untranslated or fuzzy catalogue entries."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from .catalogues import problems

i18n_cli = AppGroup("i18n", help="Translation catalogues.")


@i18n_cli.command("check")
@click.argument("languages", nargs=-1)
def check_command(languages: tuple[str, ...]) -> None:
    """Fail when a catalogue has untranslated or fuzzy entries."""
    found = [line for lang in languages or ("kk", "ru", "en") for line in problems(lang)]
    for line in found:
        click.echo(line)
    if found:
        raise SystemExit(1)
    click.echo("catalogues complete")
