"""The `bigbird` command: one module per group of subcommands, `main` parses and dispatches."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
