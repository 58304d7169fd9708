"""The `whopfunnel` command line: click commands, the terminal chat and the offline demo."""

from .main import cli, main

__all__ = ["cli", "main"]
