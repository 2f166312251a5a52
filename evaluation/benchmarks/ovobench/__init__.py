"""OVO-Bench (JoeLeelyf/OVO-Bench): 12 tasks in 3 categories, forward tasks expanded per probe."""

from evaluation.benchmarks.ovobench import task
from evaluation.registry import Benchmark, register_benchmark

BENCHMARK = register_benchmark(Benchmark.from_task("ovobench", task))
