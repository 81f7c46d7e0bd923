"""``stream-backend completion SHELL``: the shell's completion script, from click's own."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

from . import main

SHELLS = ("bash", "zsh", "fish")


@main.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
def completion_cmd(shell):
    """Print the completion script for SHELL (commands, options, choices).

    \b
    Example:
      stream-backend completion bash > ~/.local/share/bash-completion/completions/stream-backend
      stream-backend completion zsh > "${fpath[1]}/_stream-backend"
      stream-backend completion fish > ~/.config/fish/completions/stream-backend.fish
      eval "$(stream-backend completion bash)"      # this shell only
    """
    cls = get_completion_class(shell)
    click.echo(cls(main, {}, "stream-backend", "_STREAM_BACKEND_COMPLETE").source())
