"""Video-MME (BradyFU/Video-MME), without subtitles: duration buckets, domains, task types."""

from evaluation.benchmarks.videomme import task
from evaluation.registry import Benchmark, register_benchmark

BENCHMARK = register_benchmark(Benchmark.from_task("videomme", task))
