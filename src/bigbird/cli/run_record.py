"""The progress record of a `bigbird` run under torchrun: the folder OUT.partial next to the output OUT.

`run.json` says what the run computes: the command's settings and a digest of its documents. Each process
appends to `rank-R.jsonl` one line per group of documents it finished, `{"results": [[input index, result],
...]}`, written and flushed at once, so that the same command started again skips what is done. A line cut
short by a kill is dropped, and its documents run again. When every document is done, process 0 writes OUT
from the results and removes the folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

# what does not change the results: the device (a restart may use other GPUs), where they go, argparse's handler
UNCHECKED = {"device", "output", "run"}
SETTING_NAMES = {"command": "the command", "inputs": "the inputs"}


def identity(args, documents) -> dict:
    """What a run computes: the settings in `args` and a digest of `documents` (any JSON-able description)."""
    settings = {key: value for key, value in vars(args).items() if key not in UNCHECKED}
    digest = hashlib.sha256(json.dumps(documents, ensure_ascii=False).encode()).hexdigest()
    return json.loads(json.dumps({"settings": settings, "documents": digest}, default=str))


def _shown(value) -> str:
    if value is None:
        return "not given"
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def _changes(found: dict, wanted: dict) -> list[str]:
    """What differs between two identities, as a user reads it."""
    old, new = found["settings"], wanted["settings"]
    changes = [f"{SETTING_NAMES.get(key, '--' + key.replace('_', '-'))} {_shown(new.get(key))} (was "
               f"{_shown(old.get(key))})" for key in sorted(old.keys() | new.keys()) if old.get(key) != new.get(key)]
    if found["documents"] != wanted["documents"]:
        changes.append("the documents changed")
    return changes


def _drop_cut_line(part: Path) -> None:
    """Cut a last line that a kill left unfinished, so that new lines start on a line of their own."""
    data = part.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(part, "r+b") as file:
            file.truncate(data.rfind(b"\n") + 1)


class RunRecord:
    """The folder `output`.partial of the run `wanted` (an `identity`)."""

    def __init__(self, output: str, wanted: dict):
        self.folder = Path(f"{output}.partial")
        self.wanted = wanted
        self._file = None

    def open(self) -> str | None:
        """Start the record of a new run, or take up the one there if it is this run's; else say why not."""
        saved = self.folder / "run.json"
        try:
            if not saved.is_file():
                self.folder.mkdir(exist_ok=True)
                temporary = self.folder / "run.json.tmp"
                temporary.write_text(json.dumps(self.wanted), encoding="utf-8")
                os.replace(temporary, saved)
                return None
            found = json.loads(saved.read_text(encoding="utf-8"))
            for part in self.folder.glob("rank-*.jsonl"):
                _drop_cut_line(part)
        except (OSError, ValueError) as error:
            return f"cannot keep the progress record {self.folder}: {error}"
        if found == self.wanted:
            return None
        changes = _changes(found, self.wanted) if isinstance(found, dict) and found.keys() == self.wanted.keys() \
            else ["it was not written by this version of bigbird"]
        return (f"{self.folder} holds the progress of an interrupted run that differs: {'; '.join(changes)}; run "
                f"that command again to finish it, or delete {self.folder} to start over")

    def finished(self) -> dict[int, object]:
        """The results recorded so far, by input index."""
        results = {}
        for part in sorted(self.folder.glob("rank-*.jsonl")):
            with open(part, encoding="utf-8") as lines:
                for line in lines:
                    if line.endswith("\n"):
                        results.update((index, value) for index, value in json.loads(line)["results"])
        return results

    def add(self, rank: int, results: list[tuple[int, object]]) -> None:
        """Record the (input index, result) pairs that process `rank` finished, flushed at once."""
        if self._file is None:
            self._file = open(self.folder / f"rank-{rank}.jsonl", "a", encoding="utf-8")
        self._file.write(json.dumps({"results": results}, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def remove(self) -> None:
        shutil.rmtree(self.folder)
