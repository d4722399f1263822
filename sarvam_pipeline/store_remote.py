"""Share built nodes between machines through a DVC remote (``store.remote``).

The remote contains the artifact store's own layout, ``<remote>/<kind>/<key>/`` with the node's files and its
``manifest.json``, and is read and written through DVC's filesystem layer (``dvc.fs.get_cloud_fs`` and
``dvc_objects.fs.generic.copy``). So every remote type DVC supports works, with the credentials of the DVC
config. Node keys already hash everything a node reads, so a folder name is as content-addressed as DVC's own
object layout.

Before building a node, the executor fetches ``<kind>/<key>`` from the remote into a temporary folder of the
local store. The entry is published only if every file matches the manifest (``ArtifactStore.verify``). An
entry without a manifest, which is an upload in progress or one cut off, counts as absent. After a build the
executor pushes the node, with the manifest last, so a reader never sees a manifest without its files.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sarvam_pipeline.errors import ConfigError
from sarvam_pipeline.node import Node
from sarvam_pipeline.store import MANIFEST, ArtifactStore

log = logging.getLogger(__name__)


class RemoteEntryRejected(Exception):
    """A remote entry whose files do not match its manifest."""


def _is_remote_name(spec: str) -> bool:
    # A URL has a scheme and a folder path has a separator; anything else names a remote of the DVC config.
    return "://" not in spec and "/" not in spec and os.sep not in spec


class StoreRemote:
    """Fetches node folders from a DVC remote and pushes built ones to it."""

    def __init__(self, spec: str) -> None:
        from dvc.config import Config
        from dvc.exceptions import DvcException
        from dvc.fs import get_cloud_fs

        # The DVC config of the working directory's repository, plus the global and system configs, names the
        # remotes and contains their credentials.
        config = Config.from_cwd()
        if _is_remote_name(spec):
            names = sorted(config["remote"])
            if spec.lower() not in names:
                raise ConfigError.invalid_choice(
                    "store.remote",
                    spec,
                    names,
                    reason="no DVC remote of that name in the DVC config of the working directory; give a remote name, a URL or a folder path",
                )
            location = {"name": spec}
        elif "://" in spec:
            location = {"url": spec}
        else:
            # Workers may start in other folders, so a relative folder is fixed here.
            location = {"url": str(Path(spec).expanduser().resolve())}
        try:
            fs_class, fs_config, self.path = get_cloud_fs(config, **location)
            self.fs = fs_class(**fs_config)
        except (DvcException, ImportError) as error:
            # ImportError: the DVC plugin of the URL's scheme (dvc-s3, dvc-ssh, ...) is not installed.
            raise ConfigError(f"invalid store.remote '{spec}': {type(error).__name__}: {error}") from error
        self.spec = spec
        # Keys whose remote entry failed verification in this process, so the next push replaces it.
        self._rejected: set[str] = set()

    def entry(self, node: Node) -> str:
        return self.fs.join(self.path, node.kind, node.key)

    def fetch(self, node: Node, store: ArtifactStore) -> bool:
        """Copy the node's verified remote entry into the local store; return False when there is none."""
        from dvc_objects.fs import LocalFileSystem, generic

        entry = self.entry(node)
        try:
            if not self.fs.exists(self.fs.join(entry, MANIFEST)):
                return False
            sources = sorted(self.fs.find(entry))
        except OSError as error:
            log.warning("store remote %s: listing %s failed (%s: %s); building %s here", self.spec, entry, type(error).__name__, error, node.label)
            return False

        try:
            with store.build(node) as folder:
                targets = [folder.joinpath(*self.fs.relparts(source, entry)) for source in sources]
                for target in targets:
                    target.parent.mkdir(parents=True, exist_ok=True)
                generic.copy(self.fs, sources, LocalFileSystem(), [str(target) for target in targets])
                problem = store.verify(folder, node)
                if problem is not None:
                    raise RemoteEntryRejected(problem)
        except RemoteEntryRejected as error:
            self._rejected.add(node.key)
            log.warning("rejected %s from store remote %s: %s; building it here", entry, self.spec, error)
            return False
        except OSError as error:
            log.warning("store remote %s: fetching %s failed (%s: %s); building %s here", self.spec, entry, type(error).__name__, error, node.label)
            return False
        log.info("fetched %-60s %s from store remote %s", node.label, node.key, self.spec)
        return True

    def push(self, node: Node, store: ArtifactStore) -> None:
        """Upload a built node unless the remote already has an entry for its key.

        An upload that fails with OSError (an unreachable remote, a full disk) is logged, and the node stays in
        the local store only.
        """
        from dvc_objects.fs import LocalFileSystem, generic

        folder = store.path_for(node)
        entry = self.entry(node)
        try:
            if node.key in self._rejected:
                self.fs.rm(entry, recursive=True)
                self._rejected.discard(node.key)
            elif self.fs.exists(self.fs.join(entry, MANIFEST)):
                # Another worker published the same key first; equal keys mean equal inputs.
                return
            files = sorted(path for path in folder.rglob("*") if path.is_file() and path != folder / MANIFEST)
            destinations = [self.fs.join(entry, *path.relative_to(folder).parts) for path in files]
            generic.copy(LocalFileSystem(), [str(path) for path in files], self.fs, destinations)
            # The manifest goes last, so an entry is complete once its manifest exists.
            generic.copy(LocalFileSystem(), str(folder / MANIFEST), self.fs, self.fs.join(entry, MANIFEST))
        except OSError as error:
            log.warning("store remote %s: pushing %s failed (%s: %s); it stays in the local store only", self.spec, entry, type(error).__name__, error)
            return
        log.info("pushed  %-60s %s to store remote %s", node.label, node.key, self.spec)
