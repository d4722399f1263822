"""Artifact store: atomic publish, verification, corrupt entries rebuilt, interrupted builds leave nothing."""

from __future__ import annotations

import json
import os

import pytest

from sarvam_pipeline.node import Node
from sarvam_pipeline.store import MANIFEST, TEMP_PREFIX, ArtifactStore


@pytest.fixture
def node() -> Node:
    return Node("dataset", {"seed": 42}, label="dataset[test]")


def build(store: ArtifactStore, node: Node, content: bytes = b"payload") -> None:
    with store.build(node) as folder:
        (folder / "data.bin").write_bytes(content)
        store.write_manifest(folder, node, {"ok": True}, 0.1)


def test_built_node_verifies(tmp_path, node):
    store = ArtifactStore(tmp_path)
    build(store, node)
    manifest = store.read_manifest(node)
    assert manifest["key"] == node.key
    assert manifest["files"]["data.bin"]["bytes"] == 7
    assert manifest["result"] == {"ok": True}


def test_missing_node_reads_none(tmp_path, node):
    assert ArtifactStore(tmp_path).read_manifest(node) is None


def test_corrupt_file_deletes_entry(tmp_path, node, caplog):
    store = ArtifactStore(tmp_path)
    build(store, node)
    (store.path_for(node) / "data.bin").write_bytes(b"tampere")
    assert store.read_manifest(node) is None
    assert not store.path_for(node).exists()
    assert "corrupt" in caplog.text


def test_truncated_manifest_deletes_entry(tmp_path, node):
    store = ArtifactStore(tmp_path)
    build(store, node)
    (store.path_for(node) / MANIFEST).write_text("{", encoding="utf-8")
    assert store.read_manifest(node) is None


def test_manifest_of_other_key_rejected(tmp_path, node):
    store = ArtifactStore(tmp_path)
    build(store, node)
    manifest_path = store.path_for(node) / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["key"] = "0" * 16
    manifest_path.write_text(json.dumps(manifest))
    assert store.read_manifest(node) is None


def test_failed_build_leaves_nothing(tmp_path, node):
    store = ArtifactStore(tmp_path)
    with pytest.raises(RuntimeError):
        with store.build(node) as folder:
            (folder / "half.bin").write_bytes(b"x")
            raise RuntimeError("interrupted")
    assert not store.path_for(node).exists()
    assert list((tmp_path / "dataset").iterdir()) == []


def test_keyboard_interrupt_leaves_nothing(tmp_path, node):
    store = ArtifactStore(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        with store.build(node) as folder:
            (folder / "half.bin").write_bytes(b"x")
            raise KeyboardInterrupt
    assert not store.path_for(node).exists()


def test_stale_temporary_folder_cleaned(tmp_path, node):
    store = ArtifactStore(tmp_path)
    # A folder left by a killed process: pid 999999999 does not exist.
    stale = tmp_path / "dataset" / f"{TEMP_PREFIX}{node.key}-999999999-abcd1234"
    stale.mkdir(parents=True)
    live = tmp_path / "dataset" / f"{TEMP_PREFIX}{node.key}-{os.getpid()}-abcd1234"
    live.mkdir()
    assert store.clean_temporary() == 1
    assert not stale.exists()
    assert live.exists()


def test_unlisted_file_rejected(tmp_path, node):
    store = ArtifactStore(tmp_path)
    build(store, node)
    (store.path_for(node) / "stray.txt").write_text("x")
    assert store.read_manifest(node) is None
