"""Evaluation: metrics, benchmark loaders and the runner behind `mats eval`."""

from mats.evaluate.benchmarks import BenchmarkError, benchmark_names, load_benchmark
from mats.evaluate.metrics import (
    MetricError,
    aqa_accuracy,
    binary_accuracy,
    caption_metrics,
    classification_accuracy,
    mcq_accuracy,
    mean_average_precision,
)
from mats.evaluate.runner import EvaluationError, evaluate

__all__ = [
    "BenchmarkError",
    "EvaluationError",
    "MetricError",
    "aqa_accuracy",
    "benchmark_names",
    "binary_accuracy",
    "caption_metrics",
    "classification_accuracy",
    "evaluate",
    "load_benchmark",
    "mcq_accuracy",
    "mean_average_precision",
]
