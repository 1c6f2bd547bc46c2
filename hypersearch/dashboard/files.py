"""A trial's output folder as the dashboard lists it: files named by ids the server issues.

A download names an id from the listing, never a path: the id is a hash of the file's path
inside the folder, found again by listing the folder. Symbolic links are not listed (one could
point anywhere), and every listed path is checked to resolve inside the folder, so `../`,
absolute paths and links cannot reach a file outside it.

The folder is `<output_dir>/<study>/<trial>`, with the study's stored `output_dir`; a relative
one is taken from the dashboard's working directory (start it where the search ran).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from hypersearch.execution.folders import contained, safe_name, trial_output_dir
from hypersearch.storage import Storage
from hypersearch.study.study import load_study
from hypersearch.trial import FrozenTrial

MAX_FILES = 1000  # files listed per trial

__all__ = ["MAX_FILES", "Listing", "OutputFile", "listing", "safe_name"]


@dataclass(frozen=True)
class OutputFile:
    id: str
    path: str  # inside the trial folder, with '/'
    size: int
    absolute: str


@dataclass(frozen=True)
class Listing:
    root: str | None  # None: the trial has no output folder (yet)
    files: list[OutputFile]
    more: bool  # files were left out by MAX_FILES

    def find(self, file_id: str) -> OutputFile | None:
        return next((f for f in self.files if f.id == file_id), None)


def _file_id(relative: str) -> str:
    return hashlib.sha256(relative.encode("utf-8", errors="surrogatepass")).hexdigest()[:20]


def listing(storage: Storage, study_name: str, trial: FrozenTrial) -> Listing:
    """The regular files of `trial`'s output folder, in path order, at most MAX_FILES."""
    study = load_study(study_name, storage)
    root_setting = study.definition.settings.get("output_dir") or "hypersearch-runs"
    try:
        root = trial_output_dir(os.path.abspath(str(root_setting)), study_name, trial.number)
    except ValueError:
        return Listing(None, [], False)
    if not os.path.isdir(root) or os.path.islink(root):
        return Listing(None, [], False)
    found: list[OutputFile] = []
    more = False
    for folder, dirs, names in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(folder, d)))
        for name in sorted(names):
            path = os.path.join(folder, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            relative = os.path.relpath(path, root).replace(os.sep, "/")
            try:
                contained(root, relative)
                size = os.path.getsize(path)
            except (ValueError, OSError):
                continue
            if len(found) == MAX_FILES:
                more = True
                break
            found.append(OutputFile(_file_id(relative), relative, size, path))
        if more:
            break
    return Listing(root, found, more)
