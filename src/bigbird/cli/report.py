"""What the `bigbird` command says on standard error: problems and warnings naming the document, printed as
they happen above a progress bar, which is drawn only on a terminal."""

from __future__ import annotations

import contextlib
import sys
import time
import warnings

from tqdm import tqdm

from ..pipelines.loading import TruncationWarning

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class Reporter:
    """Problems and warnings as `bigbird COMMAND: error|warning: ...` lines; counts what worked and what failed.

    With `hold`, the lines are kept in `held` instead of printed (under torchrun, process 0 prints what all the
    processes held, each line once: see `sharding.Processes.settle`)."""

    def __init__(self, command: str, hold: bool = False):
        self.command = command
        self.done = 0
        self.failed = 0
        self.held: list[str] | None = [] if hold else None

    def say(self, line: str) -> None:
        if self.held is None:
            tqdm.write(line, file=sys.stderr)
        else:
            self.held.append(line)

    def problem(self, name, message: str) -> None:
        self.failed += 1
        self.say(f"bigbird {self.command}: error: {name}: {message}")

    def error(self, message: str) -> None:
        self.say(f"bigbird {self.command}: error: {message}")

    def note(self, message: str) -> None:
        self.say(f"bigbird {self.command}: {message}")

    def warning(self, warning: Warning | str, ids: list | None = None) -> None:
        """One warning; a `TruncationWarning` is named by `ids[its index]`."""
        if isinstance(warning, TruncationWarning) and ids:
            warning = f"{ids[warning.index]}: {warning.detail}"
        self.say(f"bigbird {self.command}: warning: {warning}")

    @contextlib.contextmanager
    def live(self, ids: list):
        """Within the block, every warning is printed when it is raised (documents named by `ids`)."""
        def show(message, category, filename, lineno, file=None, line=None):
            self.warning(message, ids)

        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = show
            yield


class Progress:
    """A bar of documents done with the tokens read per second; `progress(documents, tokens)` after each batch."""

    def __init__(self, total: int):
        self.bar = tqdm(total=total, unit="doc", file=sys.stderr, disable=not sys.stderr.isatty())
        self.tokens = 0
        self.start = time.perf_counter()

    def __call__(self, documents: int, tokens: int) -> None:
        self.tokens += tokens
        rate = self.tokens / max(time.perf_counter() - self.start, 1e-9)
        self.bar.set_postfix_str(f"{rate:,.0f} tokens/s", refresh=False)
        self.bar.update(documents)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()
