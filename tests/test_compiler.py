"""Plan compilation: targets share nodes with equal keys, and keys follow the inputs they read."""

from __future__ import annotations

import pytest

from sarvam_pipeline.compiler import compile_plan


def kinds(plan) -> list[str]:
    return sorted(plan.node(key).kind for key in plan.graph.nodes)


def test_single_target_stages(tiny_target):
    plan = compile_plan([tiny_target("runtime=onnxruntime", "quant=int8_static")])
    assert kinds(plan) == [
        "benchmark", "dataset", "export_onnx", "numeric_gap", "ort_calibrate", "ort_quantize", "reference", "validate",
    ]


def test_static_recipes_share_calibration_node(tiny_target):
    per_channel = tiny_target("runtime=onnxruntime", "quant=int8_static")
    per_tensor = tiny_target("runtime=onnxruntime", "quant=int8_static", "quant.per_channel=false", "quant.name=int8_static_pt")
    other_samples = tiny_target("runtime=onnxruntime", "quant=int8_static", "quant.calibration.samples=16", "quant.name=int8_static_16")

    plan = compile_plan([per_channel, per_tensor, other_samples])

    assert kinds(plan).count("ort_quantize") == 3
    assert kinds(plan).count("ort_calibrate") == 2


def test_smooth_quant_recipe_calibrates_inline(tiny_target):
    plan = compile_plan([tiny_target("runtime=onnxruntime", "quant=int8_static", "+quant.options.onnxruntime.SmoothQuant=true")])
    quantize = next(plan.node(key) for key in plan.graph.nodes if plan.node(key).kind == "ort_quantize")

    assert "ort_calibrate" not in kinds(plan)
    assert [name for name, _ in quantize.inputs] == ["model", "dataset"]


def test_gap_node_only_for_quantized_runnable_targets(tiny_target):
    assert "numeric_gap" in kinds(compile_plan([tiny_target("runtime=openvino", "quant=int8_static")]))
    assert "numeric_gap" not in kinds(compile_plan([tiny_target("runtime=onnxruntime", "quant=fp32")]))
    assert "numeric_gap" not in kinds(compile_plan([tiny_target("runtime=onnxruntime", "quant=int8_dynamic", "validation.gap_samples=0")]))


def test_accuracy_target_adds_dataset_input(tiny_target):
    plan = compile_plan([tiny_target("runtime=onnxruntime", "quant=int8_dynamic", "quant.accuracy_target.cosine_mean=0.99")])
    quantize = next(plan.node(key) for key in plan.graph.nodes if plan.node(key).kind == "ort_quantize")
    assert [name for name, _ in quantize.inputs] == ["model", "dataset"]
    assert quantize.params["accuracy_target"]["cosine_mean"] == 0.99


@pytest.mark.parametrize("runtime, quant", [("onnxruntime", "int8_dynamic"), ("openvino", "int8_static")])
def test_unused_accuracy_target_settings_keep_key(tiny_target, runtime, quant):
    def quantize_key(*extra: str) -> str:
        plan = compile_plan([tiny_target(f"runtime={runtime}", f"quant={quant}", *extra)])
        return next(key for key in plan.graph.nodes if plan.node(key).kind in ("ort_quantize", "openvino_compress"))

    # Without a bound the search is off, so its other settings must not rebuild the quantized model.
    assert quantize_key("quant.accuracy_target.max_float_nodes=3") == quantize_key()
    assert quantize_key("quant.accuracy_target.cosine_mean=0.99") != quantize_key()


def test_targets_share_upstream_nodes(tiny_target):
    first = tiny_target("runtime=onnxruntime", "quant=int8_dynamic")
    second = tiny_target("runtime=openvino", "quant=int8_static")
    plan = compile_plan([first, second])
    assert kinds(plan).count("export_onnx") == 1
    assert kinds(plan).count("dataset") == 1
    assert kinds(plan).count("reference") == 1
    assert kinds(plan).count("validate") == 2


def test_duplicate_target_adds_nothing(tiny_target):
    target = tiny_target("runtime=onnxruntime")
    assert compile_plan([target, target]).graph.number_of_nodes() == compile_plan([target]).graph.number_of_nodes()


def test_plan_is_acyclic_and_ordered(tiny_target):
    import networkx as nx

    plan = compile_plan([tiny_target("runtime=onnxruntime", "quant=int8_static")])
    assert nx.is_directed_acyclic_graph(plan.graph)
    order = [node.key for node in plan.order()]
    for upstream, downstream in plan.graph.edges:
        assert order.index(upstream) < order.index(downstream)


def test_recipe_change_keeps_shared_keys(tiny_target):
    base = compile_plan([tiny_target("runtime=onnxruntime", "quant=int8_static")])
    changed = compile_plan([tiny_target("runtime=onnxruntime", "quant=int8_static", "quant.calibration.samples=16")])
    by_kind = lambda plan: {plan.node(k).kind: k for k in plan.graph.nodes}  # noqa: E731
    before, after = by_kind(base), by_kind(changed)
    for kind in ("dataset", "export_onnx", "reference"):
        assert before[kind] == after[kind]
    for kind in ("ort_quantize", "validate", "benchmark", "numeric_gap"):
        assert before[kind] != after[kind]


def test_benchmark_change_touches_only_benchmark(tiny_target):
    base = compile_plan([tiny_target("runtime=onnxruntime")])
    changed = compile_plan([tiny_target("runtime=onnxruntime", "benchmark.iterations=7")])
    added = set(changed.graph.nodes) - set(base.graph.nodes)
    assert {changed.node(key).kind for key in added} == {"benchmark"}


def test_unrelated_recipe_field_keeps_ort_key(tiny_target):
    # The palettization settings are read by Core ML only.
    base = compile_plan([tiny_target("runtime=onnxruntime", "quant=int8_dynamic")])
    changed = compile_plan([tiny_target("runtime=onnxruntime", "quant=int8_dynamic", "quant.palettization.nbits=2")])
    assert set(base.graph.nodes) == set(changed.graph.nodes)


def test_data_seed_changes_downstream(tiny_target):
    base = compile_plan([tiny_target("runtime=onnxruntime")])
    changed = compile_plan([tiny_target("runtime=onnxruntime", "data.seed=3")])
    kinds_changed = {changed.node(k).kind for k in set(changed.graph.nodes) - set(base.graph.nodes)}
    assert kinds_changed == {"dataset", "reference", "validate", "benchmark", "numeric_gap"}


def test_weights_change_changes_export_key(tiny_target, tiny_model_dir, tmp_path):
    import shutil

    from conftest import build_tiny_bert

    other = build_tiny_bert(tmp_path / "other", seed=1)
    shutil.copy(tiny_model_dir / "config.json", other / "config.json")
    base = compile_plan([tiny_target("runtime=onnxruntime")])
    changed = compile_plan([tiny_target("runtime=onnxruntime", f"model.source={other}")])
    export = lambda plan: next(k for k in plan.graph.nodes if plan.node(k).kind == "export_onnx")  # noqa: E731
    assert export(base) != export(changed)
