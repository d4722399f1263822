"""Cache keys: equal inputs give equal keys, and any change to what a node reads changes its key."""

from __future__ import annotations

import hashlib

import pytest

from sarvam_pipeline import node as node_module
from sarvam_pipeline.node import KEY_LENGTH, Node, canonical_json


def dataset_node(**changes) -> Node:
    params = {"source": "chatterbot_corpus", "languages": ["english"], "calibration_samples": 8,
              "evaluation_samples": 8, "seed": 0, "model": {"name": "m", "fingerprint": "abc"}}
    params.update(changes)
    return Node("dataset", params, label="dataset")


def test_key_is_deterministic():
    assert dataset_node().key == dataset_node().key


def test_key_ignores_dict_order():
    first = Node("dataset", {"seed": 0, "source": "chatterbot_corpus"})
    second = Node("dataset", {"source": "chatterbot_corpus", "seed": 0})
    assert first.key == second.key


def test_key_ignores_label():
    assert Node("dataset", {"seed": 0}, label="a").key == Node("dataset", {"seed": 0}, label="b").key


@pytest.mark.parametrize("change", [{"seed": 1}, {"calibration_samples": 9}, {"model": {"name": "m", "fingerprint": "abd"}}])
def test_key_changes_with_params(change):
    assert dataset_node(**change).key != dataset_node().key


def test_key_changes_with_upstream():
    first = Node("reference", {"graph": {}}, (("dataset", dataset_node()),))
    second = Node("reference", {"graph": {}}, (("dataset", dataset_node(seed=5)),))
    assert first.key != second.key


def test_key_material_records_tools_and_code():
    material = dataset_node().key_material()
    assert "chatterbot-corpus" in material["tools"]
    assert len(material["code"]) == 64


def test_key_material_survives_source_edit(monkeypatch):
    node = dataset_node()
    key = node.key

    # A stage file edited while the node builds: the manifest must still record what the key hashed.
    monkeypatch.setattr(node_module, "code_hash", lambda kind: "0" * 64)
    material = node.key_material()
    assert material["code"] != "0" * 64
    assert hashlib.sha256(canonical_json(material).encode()).hexdigest()[:KEY_LENGTH] == key


def test_unknown_kind_rejected():
    with pytest.raises(KeyError, match="unknown stage kind"):
        Node("no_such_stage", {})
