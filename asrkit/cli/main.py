"""`attnasr`: the Typer application. Each command lives in its own module and registers here."""

from __future__ import annotations

import typer

from asrkit import __version__

app = typer.Typer(
    name="attnasr",
    help="Attention-based speech recognition: prepare data, train, transcribe, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"attnasr {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Attention-based speech recognition: prepare data, train, transcribe, evaluate."""


def _register() -> None:
    # Imported here so that `attnasr --help` stays fast and each module owns its command.
    from asrkit.cli import demo, evaluate, export, lm, prepare, train, transcribe

    prepare.register(app)
    train.register(app)
    lm.register(app)
    evaluate.register(app)
    transcribe.register(app)
    demo.register(app)
    export.register(app)


_register()


if __name__ == "__main__":  # `python -m asrkit.cli.main` (e.g. under torchrun)
    app()
