"""EgoSchema (egoschema/EgoSchema): 500-question subset with answers; full set -> submission CSV."""

from evaluation.benchmarks.egoschema import task
from evaluation.registry import Benchmark, register_benchmark

BENCHMARK = register_benchmark(
    Benchmark(
        name="egoschema",
        load=task.load,
        build_query=task.build_query,
        score_item=task.score_item,
        aggregate=task.aggregate,
        scorings=task.SCORINGS,
        prompts=task.PROMPTS,
        write_artifacts=task.write_submission,
    )
)
