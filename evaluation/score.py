"""Re-score existing outputs: `python -m evaluation.score benchmark=streamingbench file=real_output_rekv.json`.

`file` may be our predictions.jsonl (any benchmark) or an upstream result file:
StreamingBench's questions JSON with responses under a model-named key (`model_key=` to choose, else
detected), or OVO-Bench's per-task result JSON {"backward", "realtime", "forward"}. Options:
`scoring=<variant>` (default: the benchmark's official one), `out=<dir>` to also write
metrics.json/report.md there, plus `fps=` / `protocol=` / `framework=` / `model=` labels for the report
when the file does not carry them.

The file's benchmark is detected from its shape and a mismatch is refused; a `model_key` that matches
no question is an error; malformed records are rejected and counted, never fatal.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

from evaluation import detect
from evaluation import predictions as P
from evaluation.cli import key_values, user_errors
from evaluation.common.annotations import read_json
from evaluation.config import BenchmarkConfig
from evaluation.registry import get_benchmark
from evaluation.report import render, write_outputs
from evaluation.runner import read_rejected
from evaluation.scoring import build_metrics

_KEYS = {"benchmark", "file", "scoring", "model_key", "out", "fps", "protocol", "framework", "model", "response_last_line"}


def parse_args(argv: list[str]) -> dict:
    args = key_values(argv, _KEYS)
    for required in ("benchmark", "file"):
        if required not in args:
            raise ValueError(f"missing {required}=...; usage: python -m evaluation.score benchmark=NAME file=PATH")
    return args


def rescore(args: dict) -> dict:
    benchmark = get_benchmark(args["benchmark"])
    path = Path(args["file"])
    if not path.is_file():
        raise FileNotFoundError(f"file={path}: no such file")
    run_config = path.parent / "config.json"
    recorded = json.loads(run_config.read_text()) if path.suffix == ".jsonl" and run_config.is_file() else None
    default_scoring = recorded["benchmark"]["scoring"] if recorded else benchmark.scorings[0]
    cfg = BenchmarkConfig(name=benchmark.name, scoring=args.get("scoring", default_scoring),
                          prompt=benchmark.prompts[0], fps=float(args.get("fps", 1.0)),
                          response_last_line=args.get("response_last_line", "false").lower() in ("1", "true", "yes"))
    benchmark.check(cfg)
    if recorded:
        cfg = replace(cfg, response_last_line=recorded["benchmark"].get("response_last_line", False))
    rejected: list = []
    if path.suffix == ".jsonl":
        predictions = P.read_predictions(path)
        detect.check_benchmark(benchmark.name, recorded["benchmark"]["name"] if recorded else detect.from_predictions(predictions), path)
        rejected = read_rejected(path.parent) if recorded else []
    elif benchmark.read_upstream is not None:
        detect.check_benchmark(benchmark.name, detect.from_upstream(read_json(path, missing="file not found")), path)
        loaded = benchmark.read_upstream(path, cfg, args.get("model_key"))
        predictions, rejected = loaded.samples, [asdict(r) for r in loaded.rejected]
    else:
        raise ValueError(f"benchmark {benchmark.name} has no upstream result format; pass a predictions.jsonl")
    if recorded:  # our own run: its recorded settings (fps, protocol, STC N/r/k)
        settings = {**recorded["settings"], "scoring": cfg.scoring}
    else:
        settings = {"framework": args.get("framework", "unknown (re-scored file)"), "model": args.get("model", "unknown (re-scored file)"),
                    "benchmark": benchmark.name, "scoring": cfg.scoring, "fps": args.get("fps", "unknown (not recorded in file)"),
                    "protocol": args.get("protocol", "unknown")}
    settings["source_file"] = str(path)
    metrics, scored = build_metrics(benchmark, predictions, cfg, settings, rejected)
    if "out" in args:
        write_outputs(args["out"], metrics, benchmark, scored, cfg)
    return metrics


def main(argv=None) -> None:
    with user_errors():
        print(render(rescore(parse_args(sys.argv[1:] if argv is None else argv))))


if __name__ == "__main__":
    main()
