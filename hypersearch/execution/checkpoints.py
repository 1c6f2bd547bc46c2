"""Where trials keep checkpoints, and the safe hand-over of one to a PBT successor.

Layout under the study's `checkpoint_dir` setting (default ``hypersearch-checkpoints``)::

    <root>/<study>/trial-<n>/                  trial n's own checkpoint (it writes there)
    <root>/<study>/snapshots/<donor>-<step>-<stopped>/   a copy handed to a successor

A hand-over never shows a partial checkpoint: the donor's files are copied into a hidden
temporary folder, each file fsynced, a manifest of sizes and SHA-256 sums written, and only
then is the folder renamed to its final name (one atomic step) and the successor queued with
that name. A worker killed mid-copy leaves a hidden temporary folder nobody points to. The
successor's worker checks the manifest before the objective starts. A donor that writes while
it is being copied is copied again (its listing must not change during the copy). Nothing here
deletes a checkpoint: a donor's folder is still there for every copy that may be taken of it.

Example::

    layout = CheckpointLayout("hypersearch-checkpoints", "mnist")
    name = layout.snapshot(donor=3, step=10, stopped=7)  # None: trial 3 saved nothing yet
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from hypersearch.errors import HypersearchError
from hypersearch.execution.folders import contained, safe_name
from hypersearch.trial import FrozenTrial

MANIFEST = ".hypersearch-manifest.json"
_CHUNK = 1 << 20


class CheckpointError(HypersearchError):
    """A checkpoint cannot be handed over or is damaged (the message says which and why)."""


@dataclass(frozen=True)
class Workspace:
    """The folders a running trial is given: its own checkpoint folder, and the verified copy
    of its donor's checkpoint to start from (None: start afresh)."""

    checkpoint_dir: str
    restore_from: str | None = None


class CheckpointLayout:
    """The checkpoint folders of one study (nothing is created until it is needed)."""

    def __init__(self, root: str, study_name: str) -> None:
        self.root = contained(root, safe_name(study_name))

    def trial_dir(self, number: int) -> str:
        return os.path.join(self.root, f"trial-{int(number)}")

    def workspace(self, trial: FrozenTrial) -> Workspace:
        """Trial `trial`'s folders (its own is made when first used); the copy it restores
        from checked against its manifest (CheckpointError when damaged)."""
        own = self.trial_dir(trial.number)
        restore = (trial.lineage or {}).get("restore")
        if not restore:
            return Workspace(own)
        path = contained(self.root, str(restore))
        verify(Path(path))
        return Workspace(own, path)

    def snapshot(self, donor: int, step: int, stopped: int) -> str | None:
        """Copy trial `donor`'s checkpoint for the trial that replaces trial `stopped`; the
        copy's name (relative to the study's folder), or None when the donor saved nothing."""
        name = f"snapshots/{int(donor)}-{int(step)}-{int(stopped)}"
        target = Path(contained(self.root, name))
        if target.exists():  # taken before this process died: reuse it if whole
            verify(target)
            return name
        if not copy_atomically(Path(self.trial_dir(donor)), target):
            return None
        return name


def _listing(source: Path) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime in ns) of every regular file under `source`, sorted."""
    out = []
    for folder, _dirs, files in os.walk(source):
        for name in files:
            path = Path(folder, name)
            if path.is_symlink() or not path.is_file():
                continue
            stat = path.stat()
            out.append((str(path.relative_to(source)), stat.st_size, stat.st_mtime_ns))
    return sorted(out)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def copy_atomically(source: Path, target: Path, attempts: int = 5) -> bool:
    """Copy the files under `source` to `target` so that `target` appears whole or not at all
    (temporary folder, fsync, manifest, rename). False when `source` holds no file; a
    CheckpointError when `source` kept changing during `attempts` copies."""
    for attempt in range(attempts):
        before = _listing(source) if source.is_dir() else []
        if not before:
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.parent / f".tmp-{target.name}-{uuid.uuid4().hex[:8]}"
        manifest = {}
        for relative, _size, _mtime in before:
            destination = temporary / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with open(source / relative, "rb") as src, open(destination, "wb") as dst:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            manifest[relative] = {"size": destination.stat().st_size, "sha256": digest.hexdigest()}
        if _listing(source) != before:  # the donor wrote meanwhile: this copy may mix states
            shutil.rmtree(temporary, ignore_errors=True)
            time.sleep(0.05 * (attempt + 1))
            continue
        with open(temporary / MANIFEST, "w") as f:
            json.dump({"files": manifest, "source": str(source)}, f)
            f.flush()
            os.fsync(f.fileno())
        for folder in {(temporary / r).parent for r in manifest} | {temporary}:
            _fsync_dir(folder)
        os.rename(temporary, target)
        _fsync_dir(target.parent)
        return True
    raise CheckpointError(
        f"the checkpoint in {source} kept changing while it was copied ({attempts} tries); "
        "save checkpoints before reporting, e.g. write to a temporary file and os.replace it"
    )


def verify(path: Path) -> None:
    """Raise CheckpointError unless every file of `path`'s manifest is there with its size
    and SHA-256 sum."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(
            f"the checkpoint copy {path} has no readable manifest ({error}); it is not a "
            "complete hand-over"
        ) from None
    for relative, expected in manifest.items():
        file = path / relative
        if not file.is_file() or file.stat().st_size != expected["size"]:
            raise CheckpointError(f"the checkpoint copy {path} lacks {relative} or it is cut short")
        if _sha256(file) != expected["sha256"]:
            raise CheckpointError(f"the checkpoint copy {path}: {relative} fails its checksum")
