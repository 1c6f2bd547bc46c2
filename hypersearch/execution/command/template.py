"""The command template: ``:name:`` placeholders inside any token of a command line.

``python train.py --lr=:lr: --out runs/:lr:/m.pt`` is split like a shell would (`shlex.split`),
then each ``:name:`` is replaced by the parameter's value; ``::`` is a literal colon. No shell
string is built unless ``shell=True``, and then every value is quoted.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from hypersearch.space import Choice, Distribution, Space

_PLACEHOLDER = re.compile(r":([A-Za-z_][A-Za-z0-9_.\-/]*):")


class TemplateError(ValueError):
    """A command template refers to something that is not in the space."""


# Placeholders that name a trial's folders rather than a parameter (a parameter of the same
# name wins): its own checkpoint folder, and the copy of a better trial's to start from (PBT).
TRIAL_FOLDERS = frozenset({"checkpoint_dir", "restore_dir"})


def value_paths(tree: Any, prefix: str = "") -> set[str]:
    """Every path a placeholder may name: the keys of the nested values the objective would get
    (``optimizer/name``, ``optimizer/momentum``), whichever branch they live in."""
    paths = {prefix} if prefix else set()
    if isinstance(tree, Choice):
        for option in tree.options:
            paths |= value_paths(option, prefix)
    elif isinstance(tree, Distribution):
        pass
    elif isinstance(tree, Mapping):
        for key, value in tree.items():
            paths |= value_paths(value, f"{prefix}/{key}" if prefix else str(key))
    elif isinstance(tree, (list, tuple)):
        for index, value in enumerate(tree):
            paths |= value_paths(value, f"{prefix}/{index}" if prefix else str(index))
    return paths


def _lookup(values: Any, path: str) -> Any:
    """The value at `path` in nested values, or KeyError when that branch was not taken."""
    node = values
    for part in path.split("/"):
        if isinstance(node, Mapping):
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(path)
    return node


def format_value(value: Any) -> str:
    """How a parameter value appears in a command token."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, (int, str)):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def flatten_values(values: Any, prefix: str = "") -> dict[str, Any]:
    """Leaf values by path, for environment variables: ``{"optimizer/momentum": 0.9, ...}``."""
    if isinstance(values, Mapping):
        out: dict[str, Any] = {}
        for key, value in values.items():
            out.update(flatten_values(value, f"{prefix}/{key}" if prefix else str(key)))
        return out
    return {prefix or "value": values}


class CommandTemplate:
    """A command line with ``:name:`` placeholders.

    >>> t = CommandTemplate(["python", "train.py", "--lr=:lr:", "--out", "runs/:lr:/m.pt"])
    >>> t.render({"lr": 0.01})
    ['python', 'train.py', '--lr=0.01', '--out', 'runs/0.01/m.pt']

    A token whose placeholder names a parameter of a branch not taken is dropped, so write
    conditional flags as one token: ``--momentum=:optimizer/momentum:``.
    """

    def __init__(self, argv: Sequence[str] | str, shell: bool = False) -> None:
        if isinstance(argv, str):
            argv = [argv] if shell else shlex.split(argv)
        if not argv:
            raise TemplateError("the command is empty; give it after `--`, e.g. -- python train.py")
        self.argv = tuple(argv)
        self.shell = shell

    def placeholders(self) -> list[str]:
        found: list[str] = []
        for token in self.argv:
            for kind, text in _split_token(token):
                if kind == "name" and text not in found:
                    found.append(text)
        return found

    def uses_checkpoints(self) -> bool:
        """True when a placeholder names a trial's checkpoint or restore folder."""
        return any(name in TRIAL_FOLDERS for name in self.placeholders())

    def check(self, space: Any) -> list[str]:
        """Raise TemplateError for placeholders naming nothing; return the names of parameters
        no placeholder uses (for a warning: they still reach the command as env vars)."""
        known = value_paths(space.tree if isinstance(space, Space) else space) | TRIAL_FOLDERS
        used = self.placeholders()
        unknown = [name for name in used if name not in known]
        if unknown:
            listing = ", ".join(f":{k}:" for k in sorted(known - TRIAL_FOLDERS) if k) or "(none)"
            folders = ", ".join(f":{k}:" for k in sorted(TRIAL_FOLDERS))
            raise TemplateError(
                f"the command uses {', '.join(f':{n}:' for n in unknown)} but the space has no "
                f"such parameter; placeholders available: {listing}, and the trial's folders "
                f"{folders} (write :: for a literal colon)"
            )
        space_obj = space if isinstance(space, Space) else Space(space)
        leaves = {re.sub(r"\[\d+\]", "", name) for name in space_obj.names}
        return sorted(name for name in leaves if not any(_covers(u, name) for u in used))

    def render(self, values: Any, folders: Mapping[str, str | None] | None = None) -> list[str]:
        """The argv for these parameter values and the trial's `folders` (``checkpoint_dir``,
        ``restore_dir``: a token naming one that is None is dropped, so ``--resume=:restore_dir:``
        is left out for a trial that starts afresh). With ``shell=True`` each substituted value
        is quoted for the shell, so it stays one word whatever it contains."""
        folders = folders or {}
        quote = shlex.quote if self.shell else (lambda text: text)
        argv: list[str] = []
        for token in self.argv:
            pieces: list[str] = []
            try:
                for kind, text in _split_token(token):
                    if kind == "name" and text in TRIAL_FOLDERS and not _has(values, text):
                        folder = folders.get(text)
                        if folder is None:
                            raise KeyError(text)
                        pieces.append(quote(folder))
                    elif kind == "name":
                        pieces.append(quote(format_value(_lookup(values, text))))
                    else:
                        pieces.append(text)
            except KeyError:
                continue  # a parameter of a branch not taken: drop the token
            argv.append("".join(pieces))
        return ["/bin/sh", "-c", " ".join(argv)] if self.shell else argv


def _has(values: Any, path: str) -> bool:
    try:
        _lookup(values, path)
    except KeyError:
        return False
    return True


def _covers(placeholder: str, name: str) -> bool:
    """A placeholder uses a parameter when it names it, a value inside it, or a whole subtree."""
    return (
        name == placeholder
        or name.startswith(placeholder + "/")
        or placeholder.startswith(name + "/")
    )


def _split_token(token: str) -> list[tuple[str, str]]:
    """``"--lr=:lr:"`` → [("text", "--lr="), ("name", "lr")]; ``::`` is a literal colon."""
    parts: list[tuple[str, str]] = []
    text: list[str] = []
    i = 0
    while i < len(token):
        if token.startswith("::", i):
            text.append(":")
            i += 2
            continue
        match = _PLACEHOLDER.match(token, i) if token[i] == ":" else None
        if match:
            if text:
                parts.append(("text", "".join(text)))
                text = []
            parts.append(("name", match.group(1)))
            i = match.end()
            continue
        text.append(token[i])
        i += 1
    if text:
        parts.append(("text", "".join(text)))
    return parts
