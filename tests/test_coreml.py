"""Core ML runtime on the tiny model with real coremltools: convert, compress, estimate, plan.

Core ML prediction needs macOS, so these tests check the converted packages by their spec and weights
and the accuracy by the host-side estimate.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_SEQUENCE_LENGTH, run_stage

PALETTIZATION = {"nbits": 4, "granularity": "per_tensor", "group_size": 16, "mode": "kmeans"}
RECIPES = {
    "int8_weight_only": {"method": "weight_only", "precision": "int8", "weight_bits": 8},
    "int4_weight_only": {
        "method": "weight_only",
        "precision": "int4",
        "weight_bits": 4,
        "block_size": 32,
        "per_channel": False,
    },
    "palettize_4bit": {"method": "palettize", "precision": "palettized", "weight_bits": 4},
}
# Lowest mean cosine to the float reference that each recipe's estimate may give on the tiny model.
MIN_COSINE = {"int8_weight_only": 0.999, "int4_weight_only": 0.99, "palettize_4bit": 0.99}
# Largest share of the fp16 weight file that each recipe may keep.
MAX_WEIGHT_RATIO = {"int8_weight_only": 0.6, "int4_weight_only": 0.35, "palettize_4bit": 0.35}


def recipe(name: str, **changes) -> dict:
    return {"palettization": dict(PALETTIZATION), **RECIPES[name], **changes}


def weight_bytes(folder: Path) -> int:
    """Return the size of the weight files of the model.mlpackage in ``folder``."""
    return sum(path.stat().st_size for path in (folder / "model.mlpackage" / "Data").rglob("weight.bin"))


def convert_params(model: dict, precision: str) -> dict:
    from sarvam_pipeline.runtimes.coreml import input_shapes

    graph = model["graphs"][0]
    return {
        "compute_precision": precision,
        "minimum_deployment_target": "macOS15",
        "inputs": input_shapes(model, graph),
        "outputs": graph["outputs"],
    }


@pytest.fixture(scope="module")
def converted(tmp_path_factory, tiny_shared):
    """The tiny model converted at fp16 and fp32: precision -> (folder, stage result)."""
    root = tmp_path_factory.mktemp("coreml_convert")
    packages = {}
    for precision in ("fp16", "fp32"):
        folder = root / precision
        result = run_stage("coreml_convert", convert_params(tiny_shared.model, precision), {"model": tiny_shared.torchscript}, folder)
        packages[precision] = (folder, result)
    return packages


@pytest.fixture(scope="module")
def compressed(tmp_path_factory, converted):
    """The fp16 package compressed by each recipe: recipe name -> (folder, stage result)."""
    root = tmp_path_factory.mktemp("coreml_compress")
    source = converted["fp16"][0]
    return {name: (root / name, run_stage("coreml_compress", recipe(name), {"model": source}, root / name)) for name in RECIPES}


def load_spec(folder: Path):
    import coremltools as ct

    # skip_model_load: loading compiles the model, which needs macOS.
    return ct.models.MLModel(str(folder / "model.mlpackage"), skip_model_load=True).get_spec()


def test_convert_declares_int32_inputs(converted):
    from coremltools.proto import FeatureTypes_pb2

    array_types = FeatureTypes_pb2.ArrayFeatureType
    folder, result = converted["fp16"]
    description = load_spec(folder).description

    assert [feature.name for feature in description.input] == ["input_ids", "attention_mask"]
    for feature in description.input:
        assert feature.type.multiArrayType.dataType == array_types.INT32
        assert list(feature.type.multiArrayType.shape) == [1, TINY_SEQUENCE_LENGTH]
    assert [feature.name for feature in description.output] == ["sentence_embedding"]
    assert description.output[0].type.multiArrayType.dataType == array_types.FLOAT32

    assert result["inputs"][0] == {"name": "input_ids", "dtype": "int32", "shape": [1, TINY_SEQUENCE_LENGTH]}
    assert result["outputs"][0]["name"] == "sentence_embedding"
    assert result["outputs"][0]["dtype"] == "float32"
    assert result["minimum_deployment_target"] == "macOS15"
    # macOS15 and iOS18 write specification version 9.
    assert result["specification_version"] == 9


def test_convert_precision_sets_weight_dtype(converted):
    import coremltools as ct
    import coremltools.optimize.coreml as cto

    for precision, dtype in (("fp16", np.float16), ("fp32", np.float32)):
        folder, result = converted[precision]
        assert result["compute_precision"] == precision
        mlmodel = ct.models.MLModel(str(folder / "model.mlpackage"), skip_model_load=True)
        weights = cto.get_weights_metadata(mlmodel, weight_threshold=0)
        float_dtypes = {metadata.val.dtype for metadata in weights.values() if np.issubdtype(metadata.val.dtype, np.floating)}
        assert float_dtypes == {np.dtype(dtype)}

    ratio = weight_bytes(converted["fp32"][0]) / weight_bytes(converted["fp16"][0])
    assert 1.9 < ratio < 2.1


@pytest.mark.parametrize("name", list(RECIPES))
def test_compress_shrinks_weights(name, compressed, converted):
    folder, result = compressed[name]
    ratio = weight_bytes(folder) / weight_bytes(converted["fp16"][0])

    assert ratio < MAX_WEIGHT_RATIO[name]
    # Only the word embeddings exceed coremltools' 2048-element threshold in the tiny model.
    assert result["compressed_weights"] == 1
    assert result["float_weights_over_threshold"] == 0
    load_spec(folder)


@pytest.mark.parametrize("name", list(RECIPES))
def test_estimate_reports_emulated_accuracy(name, tiny_shared, tmp_path):
    graph = tiny_shared.model["graphs"][0]
    params = {**recipe(name), "model": tiny_shared.model, "graph": graph, "compute_precision": "fp16"}
    result = run_stage(
        "coreml_estimate", params, {"dataset": tiny_shared.dataset, "reference": tiny_shared.reference}, tmp_path
    )

    assert result["method"] == "estimated"
    assert "not a Core ML prediction" in result["how"]
    assert "macOS" in result["how"]
    assert "measured" not in result["how"]
    assert result["compressed_layers"] == ["embeddings.word_embeddings"]
    assert MIN_COSINE[name] < result["cosine_mean"] < 1.0
    assert result["cosine_worst"] > MIN_COSINE[name] - 0.01
    assert result["max_abs_diff"] > 0.0
    assert (tmp_path / "outputs.npy").is_file()


def test_estimate_fp32_recipe_is_exact(tiny_shared, tmp_path):
    graph = tiny_shared.model["graphs"][0]
    params = {"method": "none", "precision": "fp32", "weight_bits": 32, "model": tiny_shared.model, "graph": graph, "compute_precision": "fp32"}
    result = run_stage(
        "coreml_estimate", params, {"dataset": tiny_shared.dataset, "reference": tiny_shared.reference}, tmp_path
    )

    assert result["method"] == "estimated"
    assert result["max_abs_diff"] == 0.0


def dequantized_weights(folder: Path) -> dict[str, np.ndarray]:
    """Return each quantized weight of a package as Core ML computes it, data times scale, by constexpr op name."""
    import coremltools as ct
    import coremltools.optimize.coreml as cto

    mlmodel = ct.models.MLModel(str(folder / "model.mlpackage"), skip_model_load=True)
    parts: dict[str, dict[str, np.ndarray]] = {}
    for metadata in cto.get_weights_metadata(mlmodel, weight_threshold=0).values():
        for op in metadata.child_ops:
            if op.op_type == "constexpr_blockwise_shift_scale":
                role = "scale" if np.issubdtype(metadata.val.dtype, np.floating) else "data"
                parts.setdefault(op.name, {})[role] = metadata.val

    weights = {}
    for name, part in parts.items():
        scale = part["scale"]
        for axis, size in enumerate(part["data"].shape):
            scale = np.repeat(scale, size // scale.shape[axis], axis=axis)
        weights[name] = (part["data"].astype(np.float16) * scale).astype(np.float32)
    return weights


def test_estimate_weights_match_coreml(tiny_shared, converted, tmp_path):
    from sarvam_pipeline.models import get_adapter
    from stages import coreml_emulation as emulation
    from stages.coreml_estimate import CoreMLEstimateParams, probe_inputs
    from stages.dataset import load_split

    # A threshold of 512 elements makes Core ML also quantize the 32x32 linear weights and the folded
    # [1, 32, 32] position and token-type constants of the tiny model. Blocks of 16 give two per row.
    changes = {"block_size": 16, "options": {"weight_threshold": 512}}
    run_stage("coreml_compress", recipe("int4_weight_only", **changes), {"model": converted["fp16"][0]}, tmp_path)
    expected = dequantized_weights(tmp_path)

    params = CoreMLEstimateParams(**recipe("int4_weight_only", **changes))
    module = copy.deepcopy(get_adapter("hf_sentence_encoder").build_module(tiny_shared.model, "encoder"))
    emulation.round_parameters_to_float16(module)
    evaluation = load_split(tiny_shared.dataset, "evaluation")
    lookups = emulation.constant_lookups(module, probe_inputs(evaluation, ["input_ids", "attention_mask"]))
    assert sorted(lookups) == ["embeddings.position_embeddings", "embeddings.token_type_embeddings"]
    selected, _ = emulation.select_layers(module, params, 512, skip=set(lookups))
    module, layers = emulation.compress_weights(module, selected, params, fp16=True)
    assert layers == selected

    for name in layers:
        actual = module.get_submodule(name).weight.detach().numpy()
        np.testing.assert_array_equal(actual, expected.pop(f"{name.replace('.', '_')}_weight_to_fp16_quantized"))

    # What remains are the folded lookup constants, whose names coremltools makes up.
    assert len(expected) == len(lookups)
    for name, indices in lookups.items():
        constant = module.get_submodule(name).weight[indices].detach()
        emulated = emulation.compress_constant(constant, params, fp16=True).numpy()
        assert any(np.array_equal(emulated, weight) for weight in expected.values()), name


@pytest.mark.skipif(sys.platform == "darwin", reason="checks the reason given on hosts without Core ML")
def test_backend_reports_macos_reason(compressed):
    from sarvam_pipeline.backends import get_backend

    backend = get_backend("coreml")
    reason = backend.unavailable_reason({"compute_units": "ALL"})
    assert reason is not None
    assert reason.startswith("Core ML prediction needs macOS (this host is Linux")
    assert backend.max_batch_size == 1
    folder = compressed["int8_weight_only"][0]
    assert backend.artifact_file(folder) == folder / "model.mlpackage"


def test_session_casts_to_declared_dtypes(compressed):
    import coremltools as ct

    from sarvam_pipeline.backends.coreml import CoreMLSession

    package = compressed["int8_weight_only"][0] / "model.mlpackage"
    session = CoreMLSession(ct.models.MLModel(str(package), skip_model_load=True), "CPU_AND_NE")

    assert session.input_dtypes == {"input_ids": np.int32, "attention_mask": np.int32}
    assert session.placement() == {"compute_units": "CPU_AND_NE"}


@pytest.mark.skipif(sys.platform == "darwin", reason="checks the reason given on hosts without Core ML")
def test_benchmark_records_size_only(compressed, tiny_shared, tmp_path):
    from sarvam_pipeline.backends import get_backend

    reason = get_backend("coreml").unavailable_reason({})
    folder = compressed["int8_weight_only"][0]

    options = {"compute_units": "ALL", "minimum_deployment_target": "macOS15"}
    result = run_stage(
        "benchmark", {"runtime": "coreml", "options": options}, {"artifact": folder, "dataset": tiny_shared.dataset}, tmp_path
    )
    assert result["status"] == "needs_device"
    assert result["reason"] == reason
    assert result["artifact_bytes"] > weight_bytes(folder)


def test_planner_shares_convert_node(tiny_target):
    from sarvam_pipeline.compiler import SharedNodes
    from sarvam_pipeline.runtimes import get_planner

    planner = get_planner("coreml")
    shared = SharedNodes()
    int8 = tiny_target("runtime=coreml", "quant=int8_weight_only")
    palettize = tiny_target("runtime=coreml", "quant=palettize_4bit")
    fp32 = tiny_target("runtime=coreml", "quant=fp32")
    artifacts = {target.quant["name"]: planner.plan_artifact(target, shared) for target in (int8, palettize, fp32)}

    assert {node.kind for node in artifacts.values()} == {"coreml_compress"}
    convert = {name: node.upstream["model"] for name, node in artifacts.items()}
    assert convert["int8_weight_only"].key == convert["palettize_4bit"].key
    assert convert["fp32"].key != convert["int8_weight_only"].key
    assert artifacts["int8_weight_only"].key != artifacts["palettize_4bit"].key
    assert convert["int8_weight_only"].params["compute_precision"] == "fp16"
    assert convert["fp32"].params["compute_precision"] == "fp32"
    assert convert["int8_weight_only"].params["inputs"][0]["shape"] == [1, TINY_SEQUENCE_LENGTH]
    assert convert["int8_weight_only"].upstream["model"].kind == "export_torchscript"


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS measures accuracy with the validate stage")
def test_planner_estimates_off_macos(tiny_target):
    from sarvam_pipeline.compiler import SharedNodes
    from sarvam_pipeline.runtimes import get_planner

    planner = get_planner("coreml")
    shared = SharedNodes()
    target = tiny_target("runtime=coreml", "quant=int4_weight_only")
    node = planner.plan_validation(target, planner.plan_artifact(target, shared), shared)

    assert node.kind == "coreml_estimate"
    assert sorted(node.upstream) == ["dataset", "reference"]
    assert node.params["compute_precision"] == "fp16"
    assert node.params["block_size"] == 32
    assert node.params["model"]["fingerprint"] == shared.identity(target)["fingerprint"]


def recipe_with(name: str, **changes) -> dict:
    from sarvam_pipeline.target import load_recipe

    quant = load_recipe(name)
    for key, value in changes.items():
        if key in quant["palettization"] and key not in quant:
            quant["palettization"][key] = value
        else:
            quant[key] = value
    return quant


@pytest.mark.parametrize(
    ("name", "changes", "target", "expected"),
    [
        ("int8_weight_only", {"weight_bits": 6}, None, "weight_bits 4 or 8"),
        ("int8_dynamic", {}, None, "method 'dynamic' is not one of"),
        ("palettize_4bit", {"nbits": 5, "weight_bits": 5}, None, "palettization.nbits must be one of"),
        ("palettize_4bit", {"nbits": 9, "weight_bits": 9}, None, "palettization.nbits must be one of"),
        ("palettize_4bit", {"weight_bits": 8}, None, "does not match palettization.nbits"),
        ("palettize_4bit", {"mode": "uniform"}, None, "palettization.mode must be kmeans"),
        ("int4_weight_only", {}, "macOS14", "int4 weights need minimum_deployment_target iOS18/macOS15"),
        ("int8_weight_only", {"block_size": 32}, "iOS17", "per-block quantization needs minimum_deployment_target iOS18/macOS15"),
        ("palettize_4bit", {"granularity": "per_grouped_channel"}, "macOS14", "grouped palettization needs"),
        ("int8_weight_only", {}, "macOS12", "weight compression needs minimum_deployment_target iOS16/macOS13"),
        ("fp16", {}, "macOS11", "first with mlprogram models"),
        ("fp16", {}, "macOS99", "unknown minimum_deployment_target 'macOS99'"),
    ],
)
def test_check_recipe_rejects(name, changes, target, expected):
    from sarvam_pipeline.runtimes import get_planner

    options = None if target is None else {"minimum_deployment_target": target}
    problem = get_planner("coreml").check_recipe(recipe_with(name, **changes), options)

    assert problem is not None
    assert expected in problem


@pytest.mark.parametrize(
    ("name", "target"),
    [("int8_weight_only", "macOS14"), ("int4_weight_only", "macOS15"), ("int4_weight_only", "iOS26"), ("fp32", "iOS15")],
)
def test_check_recipe_accepts(name, target):
    from sarvam_pipeline.runtimes import get_planner

    assert get_planner("coreml").check_recipe(recipe_with(name), {"minimum_deployment_target": target}) is None


def test_plan_artifact_rejects_old_target(tiny_target):
    from sarvam_pipeline.compiler import SharedNodes
    from sarvam_pipeline.errors import ConfigError
    from sarvam_pipeline.runtimes import get_planner

    target = tiny_target("runtime=coreml", "quant=int4_weight_only", "runtime.options.minimum_deployment_target=macOS14")
    with pytest.raises(ConfigError, match="int4 weights need minimum_deployment_target iOS18/macOS15"):
        get_planner("coreml").plan_artifact(target, SharedNodes())


def test_validate_target_rejects_old_target(tiny_target):
    from sarvam_pipeline.errors import ConfigError
    from sarvam_pipeline.validation import validate_target

    target = tiny_target(
        "chipset=m3", "runtime=coreml", "quant=palettize_4bit", "quant.palettization.granularity=per_grouped_channel",
        "runtime.options.minimum_deployment_target=iOS17",
    )
    with pytest.raises(ConfigError, match="grouped palettization needs minimum_deployment_target iOS18/macOS15"):
        validate_target(target)


def test_deployment_targets_match_coremltools():
    import coremltools as ct

    from sarvam_pipeline.runtimes.coreml import DEPLOYMENT_TARGETS

    for name, ios_version in DEPLOYMENT_TARGETS.items():
        assert getattr(ct.target, name) == getattr(ct.target, f"iOS{ios_version}"), name
