"""OVO-Bench (JoeLeelyf/OVO-Bench): 12 tasks in 3 categories, forward tasks expanded per probe."""

from evaluation.benchmarks.ovobench import task
from evaluation.registry import Benchmark, register_benchmark

BENCHMARK = register_benchmark(
    Benchmark(
        name="ovobench",
        load=task.load,
        build_query=task.build_query,
        score_item=task.score_item,
        aggregate=task.aggregate,
        scorings=task.SCORINGS,
        prompts=tuple(task.TEMPLATES),
        read_upstream=task.read_upstream,
    )
)
