"""What `bigbird train` shows while it runs: a progress bar (or plain lines off a terminal), warnings as one line
each in the command's own format, and Transformers' loading reports and progress bars kept quiet."""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings

from tqdm import tqdm
from transformers.utils import logging as transformers_logging


class Progress:
    """A tqdm bar with loss and throughput on the main process's terminal; plain lines otherwise."""

    def __init__(self, main: bool, total_steps: int, done: int):
        self.live = main and sys.stderr.isatty()
        self.main = main
        self.bar = tqdm(total=total_steps, initial=done, unit="step", file=sys.stderr, disable=not self.live,
                        dynamic_ncols=True)

    def step(self, loss: float, tokens_per_second: float) -> None:
        self.bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tokens_per_second:,.0f}", refresh=False)
        self.bar.update(1)

    def line(self, text: str) -> None:
        if self.live:
            self.bar.write(text, file=sys.stderr)
        elif self.main:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.close()


class _LineHandler(logging.Handler):
    def __init__(self, command: str):
        super().__init__(logging.WARNING)
        self.command = command

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(f"{self.command}: warning: {record.getMessage()}", file=sys.stderr)


@contextlib.contextmanager
def warnings_as_lines(command: str = "bigbird train"):
    """Inside, Python warnings and Transformers' logged warnings are printed as they happen, one
    `COMMAND: warning: MESSAGE` line each on standard error (above a progress bar)."""
    def show(message, category, filename, lineno, file=None, line=None):
        tqdm.write(f"{command}: warning: {message}", file=sys.stderr)

    handler = _LineHandler(command)
    transformers_logging.disable_default_handler()
    transformers_logging.add_handler(handler)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = show
            yield
    finally:
        transformers_logging.remove_handler(handler)
        transformers_logging.enable_default_handler()
