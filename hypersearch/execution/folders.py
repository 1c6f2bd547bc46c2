"""Trial folders (command outputs, checkpoints): ``<root>/<safe study name>/<trial>``.

A study name is any text (it may come from another user's database), so the folder is named
after a safe form of it and is checked to lie inside the output root: no name can write outside.
"""

from __future__ import annotations

import hashlib
import os
import re

MAX_NAME = 100  # characters of the study name kept in its folder name (file systems allow 255)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_name(name: str) -> str:
    """A folder name for `name`: the same name when it is already safe (letters, digits, ``.``,
    ``_``, ``-``; no leading dot; at most `MAX_NAME` characters), else the other characters
    replaced by ``_``, leading dots replaced, cut to `MAX_NAME`, plus ``-`` and a hash of the
    whole name, so two names that differ only in what was replaced get two folders.

    >>> safe_name("mnist-v2"), safe_name("../x")
    ('mnist-v2', '___x-d6b96a97d1')
    """
    cleaned = _UNSAFE.sub("_", name)
    stripped = cleaned.lstrip(".")
    cleaned = "_" * (len(cleaned) - len(stripped)) + stripped  # no '.', '..' or hidden folder
    if cleaned == name and 0 < len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode("utf-8", errors="surrogatepass")).hexdigest()[:10]
    return f"{cleaned[:MAX_NAME]}-{digest}" if cleaned else digest


def contained(root: str, *parts: str) -> str:
    """The absolute path of `parts` under `root`; ValueError when it would resolve (symbolic
    links followed) to a place outside `root`."""
    path = os.path.abspath(os.path.join(root, *parts))
    base, resolved = os.path.realpath(root), os.path.realpath(path)
    if os.path.commonpath([base, resolved]) != base:
        raise ValueError(f"output folder {resolved!r} is outside the output root {base!r}")
    return path


def trial_output_dir(root: str, study_name: str, number: int) -> str:
    """The folder of trial `number` of `study_name` under `root` (not created here)."""
    return contained(root, safe_name(study_name), str(int(number)))
