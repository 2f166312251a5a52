"""StreamingBench, Real-Time Visual Understanding split (THUNLP-MT/StreamingBench)."""

from evaluation.benchmarks.streamingbench import task
from evaluation.registry import Benchmark, register_benchmark

BENCHMARK = register_benchmark(Benchmark.from_task("streamingbench", task))
