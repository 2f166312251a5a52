"""Video-MME (BradyFU/Video-MME), without subtitles: duration buckets, domains, task types."""

from evaluation.benchmarks.videomme import task
from evaluation.registry import Benchmark, register_benchmark

BENCHMARK = register_benchmark(
    Benchmark(
        name="videomme",
        load=task.load,
        build_query=task.build_query,
        score_item=task.score_item,
        aggregate=task.aggregate,
        scorings=task.SCORINGS,
        prompts=tuple(task.TEMPLATES),
    )
)
