"""MLVU dev multiple-choice (JUNJIE99/MLVU), 7 question types."""

from evaluation.benchmarks.mlvu import task
from evaluation.registry import Benchmark, register_benchmark

BENCHMARK = register_benchmark(
    Benchmark(
        name="mlvu",
        load=task.load,
        build_query=task.build_query,
        score_item=task.score_item,
        aggregate=task.aggregate,
        scorings=task.SCORINGS,
        prompts=task.PROMPTS,
    )
)
