"""The content-addressed artifact store under ``artifacts/<kind>/<key>/``.

A node is built when its folder exists, ``manifest.json`` parses, and every file listed there has the
recorded size and SHA-256. Builds go to a temporary folder beside the final one and are renamed into place
only after the manifest is written, so an interrupted build leaves no folder at its key. A file lock per key
makes concurrent processes that need the same node wait for one build instead of building it twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from filelock import FileLock

from sarvam_pipeline.node import Node
from sarvam_pipeline.versions import host_summary, tool_versions

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
TEMP_PREFIX = ".tmp-"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_files(folder: Path) -> dict[str, dict[str, Any]]:
    """Return size and SHA-256 of every file under a folder, keyed by POSIX relative path."""
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if relative == MANIFEST:
            continue
        files[relative] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
    return files


class ArtifactStore:
    """Reads, verifies and atomically writes node folders."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def path_for(self, node: Node) -> Path:
        return self.root / node.kind / node.key

    def lock_for(self, node: Node) -> FileLock:
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        return FileLock(str(locks / f"{node.kind}-{node.key}.lock"))

    def read_manifest(self, node: Node) -> dict[str, Any] | None:
        """Return the manifest of a built, verified node; delete the folder and return None if corrupt."""
        folder = self.path_for(node)
        if not folder.is_dir():
            return None
        problem = self.verify(folder, node)
        if problem is None:
            return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        log.warning("cache entry %s is corrupt (%s); deleting it so it is rebuilt", folder, problem)
        self._remove(folder)
        return None

    def verify(self, folder: Path, node: Node) -> str | None:
        """Return why a node folder cannot be trusted, or None when every file matches its manifest."""
        manifest_path = folder / MANIFEST
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            return f"unreadable manifest: {error}"
        if manifest.get("key") != node.key:
            return f"manifest key {manifest.get('key')} does not match the folder's key {node.key}"
        listed = manifest.get("files", {})
        for relative, record in listed.items():
            path = folder / relative
            if not path.is_file():
                return f"missing file {relative}"
            if path.stat().st_size != record["bytes"]:
                return f"size of {relative} changed"
            if sha256_file(path) != record["sha256"]:
                return f"SHA-256 of {relative} changed"
        present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {MANIFEST}
        extra = present - set(listed)
        if extra:
            return f"unlisted files {sorted(extra)[:3]}"
        return None

    @contextmanager
    def build(self, node: Node) -> Iterator[Path]:
        """Yield an empty temporary folder to build the node in; publish it only if the block succeeds."""
        final = self.path_for(node)
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary = final.parent / f"{TEMP_PREFIX}{node.key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        temporary.mkdir()
        try:
            yield temporary
        except BaseException:
            self._remove(temporary)
            raise
        if final.exists():
            # A corrupt entry that another process left after this one checked; it was verified away.
            self._remove(final)
        os.replace(temporary, final)

    def write_manifest(self, folder: Path, node: Node, result: dict[str, Any], seconds: float) -> dict[str, Any]:
        manifest = {
            "key": node.key,
            "kind": node.kind,
            "label": node.label,
            "key_material": node.key_material(),
            "files": describe_files(folder),
            "result": result,
            "seconds": round(seconds, 3),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host": host_summary(),
            "toolchain": tool_versions(),
        }
        text = json.dumps(manifest, indent=2, sort_keys=True, default=str)
        (folder / MANIFEST).write_text(text + "\n", encoding="utf-8")
        return manifest

    def clean_temporary(self) -> int:
        """Remove build folders left by interrupted runs whose process no longer exists."""
        removed = 0
        if not self.root.is_dir():
            return removed
        for folder in self.root.glob(f"*/{TEMP_PREFIX}*"):
            parts = folder.name[len(TEMP_PREFIX):].split("-")
            pid = int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else -1
            if pid > 0 and _process_alive(pid):
                continue
            log.info("removing %s left by an interrupted build", folder)
            self._remove(folder)
            removed += 1
        return removed

    @staticmethod
    def _remove(folder: Path) -> None:
        # Rename first so a half-deleted folder never sits at a key path.
        doomed = folder.with_name(f"{TEMP_PREFIX}deleting-{uuid.uuid4().hex[:8]}")
        try:
            os.replace(folder, doomed)
        except OSError:
            doomed = folder
        shutil.rmtree(doomed, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
