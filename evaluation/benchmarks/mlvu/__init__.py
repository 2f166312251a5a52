"""MLVU dev multiple-choice (JUNJIE99/MLVU), 7 question types."""

from evaluation.benchmarks.mlvu import task
from evaluation.registry import Benchmark, register_benchmark

BENCHMARK = register_benchmark(Benchmark.from_task("mlvu", task))
