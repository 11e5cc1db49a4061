"""Prometheus metrics across processes: each process writes its own files, any process reads them all."""

from .metrics import Metrics
from .reader import CONTENT_TYPE, MetricSample, metrics_dir, prepare_dir, process_gone, read_samples, render
from .requests import METHODS, RequestMetrics

__all__ = ["CONTENT_TYPE", "METHODS", "MetricSample", "Metrics", "RequestMetrics", "metrics_dir", "prepare_dir",
           "process_gone", "read_samples", "render"]
