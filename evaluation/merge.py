"""Combine shard predictions of one run: `python -m evaluation.merge results/eval/<run> [--allow-partial]`.

Reads config.json (written by every shard), checks that all `predictions.shard-i-of-n.jsonl` exist,
concatenates them (an id never counted twice) into predictions.jsonl and writes metrics.json + report.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evaluation import predictions as P
from evaluation.cli import user_errors
from evaluation.config import BenchmarkConfig
from evaluation.registry import get_benchmark
from evaluation.runner import read_rejected
from evaluation.report import render, write_outputs
from evaluation.scoring import build_metrics


def merge(run_dir: str | Path, allow_partial: bool = False) -> dict:
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found: is {run_dir} an evaluation run folder?")
    config = json.loads(config_path.read_text())
    total = int(config["num_shards"])
    shard_paths = [run_dir / P.shard_file_name(i, total) for i in range(total)]
    missing = [str(p) for p in shard_paths if not p.is_file()]
    if missing and not allow_partial:
        raise FileNotFoundError(f"missing shard prediction files: {missing} (rerun them, or pass --allow-partial)")
    merged, seen = [], set()
    for path in shard_paths:
        for record in P.read_predictions(path):
            if record["id"] not in seen:
                seen.add(record["id"])
                merged.append(record)
    if total > 1:
        P.write_all(run_dir / "predictions.jsonl", merged)
    cfg = BenchmarkConfig(**config["benchmark"])
    benchmark = get_benchmark(cfg.name)
    settings = {**config["settings"], "shards_merged": total - len(missing), "num_shards": total}
    metrics, scored = build_metrics(benchmark, merged, cfg, settings, read_rejected(run_dir))
    write_outputs(run_dir, metrics, benchmark, scored, cfg)
    return metrics


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run_dir")
    parser.add_argument("--allow-partial", action="store_true", help="report on the shards that exist")
    args = parser.parse_args(argv)
    with user_errors():
        print(render(merge(args.run_dir, args.allow_partial)))


if __name__ == "__main__":
    main()
