"""Typed configuration: one schema (with field help) that drives validation, CLI help and the docs."""
from tuneforge.config.loader import apply_overrides, load_config, to_yaml
from tuneforge.config.schema import (
    DataConfig,
    EvalConfig,
    FinetuneConfig,
    ModelConfig,
    PipelineConfig,
    PretrainConfig,
    RuntimeConfig,
    TrackingConfig,
    TrainConfig,
)

__all__ = [
    "DataConfig", "EvalConfig", "FinetuneConfig", "ModelConfig", "PipelineConfig", "PretrainConfig", "RuntimeConfig",
    "TrackingConfig", "TrainConfig",
    "apply_overrides", "load_config", "to_yaml",
]
