"""StreamingBench, Real-Time Visual Understanding split (THUNLP-MT/StreamingBench)."""

from evaluation.benchmarks.streamingbench import task
from evaluation.registry import Benchmark, register_benchmark

BENCHMARK = register_benchmark(
    Benchmark(
        name="streamingbench",
        load=task.load,
        build_query=task.build_query,
        score_item=task.score_item,
        aggregate=task.aggregate,
        scorings=task.SCORINGS,
        prompts=tuple(task.TEMPLATES),
        read_upstream=task.read_upstream,
    )
)
