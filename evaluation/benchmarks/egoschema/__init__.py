"""EgoSchema (egoschema/EgoSchema): 500-question subset with answers; full set -> submission CSV."""

from evaluation.benchmarks.egoschema import task
from evaluation.registry import Benchmark, register_benchmark

BENCHMARK = register_benchmark(Benchmark.from_task("egoschema", task, write_artifacts=task.write_submission))
