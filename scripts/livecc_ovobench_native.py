#!/usr/bin/env python
"""OVO-Bench with LiveCC's own protocol (frameworks/livecc/ovobench.py) on the LiveCC host.

    python scripts/livecc_ovobench_native.py --annotation /data/ovobench/ovo_bench_new.json \
        --video-dir /data/ovobench/src_videos --out results/eval/ovobench-livecc-native-none \
        --model-path /models/LiveCC-7B-Instruct [--compression stc --cache-interval 4 --tokens-per-frame 96]

Every item is one clip [start, end] read at 2 fps (at most 480 frames, uniformly thinned), given to the host
in clip mode with LiveCC's prompt; the answer is the restricted argmax over the 17 tokens; scoring is
LiveCC's prefix match. Writes predictions.jsonl (one line per item, per-item errors recorded),
metrics.json and report.md under --out. Re-running resumes (items already in predictions.jsonl are kept).
The project-wide protocol (official OVO prompts, comparable across hosts) is `python -m evaluation
framework=livecc benchmark=ovobench ...` instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--annotation", required=True, help="official ovo_bench_new.json")
    p.add_argument("--video-dir", required=True, help="folder the records' `video` paths are relative to")
    p.add_argument("--out", required=True)
    p.add_argument("--model-path", default=None, help="local LiveCC-7B-Instruct folder (omit: random weights)")
    p.add_argument("--preset", default="7b", help="random-weight size when --model-path is omitted")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--device", default="auto")
    p.add_argument("--fps", type=float, default=2.0)
    p.add_argument("--max-frames", type=int, default=480)
    p.add_argument("--compression", default="none", help="a configs/compression/<name>.yaml")
    p.add_argument("--cache-interval", type=int, default=None, help="override compression cacher.cache_interval")
    p.add_argument("--update-ratio", type=float, default=None, help="override compression cacher.update_ratio")
    p.add_argument("--tokens-per-frame", type=int, default=None, help="override compression pruner.tokens_per_frame")
    p.add_argument("--limit", type=int, default=0, help="first N items (0 = all)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra livecc host settings (YAML values)")
    return p.parse_args(argv)


def compression_mapping(args) -> dict:
    import yaml

    path = REPO / "configs" / "compression" / f"{args.compression}.yaml"
    if not path.is_file():
        raise SystemExit(f"--compression {args.compression!r}: no {path}")
    spec = yaml.safe_load(path.read_text()) or {}
    for method, knob, value in (("cacher", "cache_interval", args.cache_interval), ("cacher", "update_ratio", args.update_ratio),
                                ("pruner", "tokens_per_frame", args.tokens_per_frame)):
        if value is not None:
            if not spec.get(method):
                raise SystemExit(f"--{knob.replace('_', '-')} given but compression {args.compression!r} has no {method}")
            spec[method][knob] = value
    return spec


def host_mapping(args) -> dict:
    import yaml

    mapping = {"mode": "clip", "answer_mode": "restricted", "dtype": args.dtype, "device": args.device,
               "clip_max_frames": args.max_frames}
    if args.model_path:
        mapping["model_path"] = args.model_path
    else:
        mapping.update(random_weights=True, preset=args.preset)
    for entry in args.set:
        key, _, value = entry.partition("=")
        mapping[key] = yaml.safe_load(value)
    return mapping


def main(argv=None) -> dict:
    args = parse_args(argv)
    from evaluation.types import VideoError
    from evaluation.video import VideoSource, thin
    from frameworks.livecc import ovobench
    from frameworks.protocol import Query
    from frameworks.registry import build_host

    items = ovobench.expand(json.loads(Path(args.annotation).read_text()))
    if args.limit:
        items = items[:args.limit]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    predictions_path = out / "predictions.jsonl"
    done = {}
    if predictions_path.is_file():
        done = {p["id"]: p for p in map(json.loads, predictions_path.read_text().splitlines())}
    host = build_host("livecc", host_mapping(args), compression_mapping(args))
    sources: dict[str, VideoSource] = {}
    with predictions_path.open("a") as handle:
        for item in items:
            if item.id in done:
                continue
            response, error = None, None
            try:
                if item.video not in sources:
                    sources.clear()  # one open video at a time (items of a video are consecutive)
                    sources[item.video] = VideoSource(Path(args.video_dir) / item.video, args.fps)
                source = sources[item.video]
                positions = thin(source.window(item.start - 1e-3 if item.start > 0 else None, item.end), args.max_frames)
                frames, stamps = source.read(positions)
                host.reset()
                host.ingest(frames, stamps)
                response = host.answer(Query(prompt=item.prompt))
            except VideoError as err:
                error = str(err)
            except Exception as err:  # one failing item is recorded, the run goes on
                error = f"host error: {type(err).__name__}: {err}"
            record = {"id": item.id, "task": item.task, "answer": item.answer, "response": response, "error": error,
                      "start": item.start, "end": item.end, "timings": host.timings.to_dict() if error is None else None}
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            done[item.id] = record
    by_id = {item.id: item for item in items}
    scored = [(by_id[i], p["response"] or "") for i, p in done.items() if i in by_id]
    metrics = ovobench.score(scored)
    metrics["errors"] = sum(1 for i, p in done.items() if i in by_id and p["error"])
    metrics["settings"] = {"host": host_mapping(args), "compression": compression_mapping(args), "fps": args.fps}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    lines = ["# OVO-Bench, LiveCC protocol", "", "| task | accuracy |", "|---|---|"]
    lines += [f"| {t} | {a:.4f} |" for t, a in metrics["tasks"].items()]
    lines += ["", *[f"- {c}: {a:.4f}" for c, a in metrics["categories"].items()], f"- overall: {metrics['overall']:.4f}",
              f"- items: {metrics['items']}, errors: {metrics['errors']}", ""]
    (out / "report.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return metrics


if __name__ == "__main__":
    main()
