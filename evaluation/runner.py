"""The evaluation loop: load, shard, resume, feed frames to a host, record predictions, report.

Protocols (`protocol=`):
  streaming : questions on one video are asked in increasing query time; when the host
              `supports_incremental`, only the frames after the previous question are ingested
              (the stream is never reset inside a video). Falls back to `prefix` for hosts that
              cannot extend a stream and when `benchmark.max_frames` thins frames per query.
  prefix    : the upstream "offline" protocol: reset and ingest [0, query_time] for every question.
Whole-video questions (offline benchmarks) ingest the video once and answer all its questions, as
ReKV does, in both protocols.

Frames are decoded ahead in a background thread (`evaluation/frames.py`, `prefetch=`), so the host does
not wait for decord. Sharding is by video (all questions of a video stay in one shard, so streaming reuse holds);
`limit` keeps the first N samples of the annotation before sharding, so shards of a limited run
partition exactly the limited unsharded run.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict
from pathlib import Path
from typing import Optional, Sequence

from tqdm.auto import tqdm

from evaluation import predictions as P
from evaluation.common.paths import resolve_video
from evaluation.config import RunConfig, check_model, host_settings
from evaluation.frames import FrameFeed, Read, StreamState, next_read
from evaluation.registry import Benchmark, get_benchmark
from evaluation.report import write_outputs
from evaluation.scoring import build_metrics
from evaluation.types import Loaded, Rejected, Sample, VideoError
from evaluation.video import VideoSource, thin
from frameworks.protocol import StreamingVideoLLM


def plan(samples: Sequence[Sample], limit: int, shard_index: int, num_shards: int) -> list[list[Sample]]:
    """Group by video (first-appearance order), sort each group by query time (whole-video last),
    keep every num_shards-th group starting at shard_index."""
    if limit:
        samples = samples[:limit]
    groups: dict[str, list[Sample]] = {}
    for sample in samples:
        groups.setdefault(sample.video, []).append(sample)
    ordered = [sorted(g, key=lambda s: math.inf if s.query_time is None else s.query_time) for g in groups.values()]
    return ordered[shard_index::num_shards]


def select_tasks(samples: Sequence[Sample], tasks: Sequence[str]) -> list[Sample]:
    """Samples of the configured tasks only (`benchmark.tasks`; empty = all); unknown names raise."""
    if not tasks:
        return list(samples)
    present = {s.task for s in samples}
    unknown = sorted(set(tasks) - present)
    if unknown:
        raise ValueError(f"invalid benchmark setting tasks={list(tasks)}: {unknown} not in the annotation (tasks: {sorted(present)})")
    return [s for s in samples if s.task in set(tasks)]


def write_run_config(run: RunConfig, out_dir: Path) -> None:
    """config.json: what merge/score need to reproduce the report without the Hydra config."""
    record = {"settings": run.describe(), "benchmark": asdict(run.benchmark), "framework": run.framework,
              "compression": run.compression.settings(), "data_root": run.data.root, "num_shards": run.num_shards, "limit": run.limit}
    (out_dir / "config.json").write_text(json.dumps(record, indent=2, default=str) + "\n")


def check_resumable(run: RunConfig, out_dir: Path) -> None:
    """Refuse to append to predictions made with different settings (one error listing the differences)."""
    path = out_dir / "config.json"
    if not path.is_file():
        return
    before = json.loads(path.read_text())
    now = json.loads(json.dumps({"settings": run.describe(), "benchmark": asdict(run.benchmark), "framework": run.framework,
                                 "num_shards": run.num_shards}, default=str))
    ignore = {"progress"}
    diffs = [f"{part}.{k}: {before.get(part, {}).get(k)!r} -> {v!r}" for part in ("settings", "benchmark", "framework")
             for k, v in now[part].items() if k not in ignore and before.get(part, {}).get(k) != v]
    if before.get("num_shards") != now["num_shards"]:
        diffs.append(f"num_shards: {before.get('num_shards')} -> {now['num_shards']}")
    if diffs:
        raise ValueError(f"{out_dir} holds predictions made with other settings ({'; '.join(diffs)}); "
                         "use another output_dir/run_name or delete the old predictions")


def load_samples(run: RunConfig, benchmark: Benchmark) -> Loaded:
    """The configured benchmark's samples (task subset applied) and the records it rejected."""
    root = Path(run.data.root)
    annotation = Path(run.benchmark.annotation)
    loaded = benchmark.load(annotation if annotation.is_absolute() else root / annotation, run.benchmark, root)
    return Loaded(select_tasks(loaded.samples, run.benchmark.tasks), loaded.rejected)


def write_rejected(out_dir: Path, rejected: Sequence[Rejected]) -> None:
    """rejected.json: the annotation records the loader rejected (merge and score read it back).
    Every shard loads the same file, so every shard writes the same content (atomic replace)."""
    tmp = out_dir / f".rejected.{os.getpid()}.tmp"
    tmp.write_text(json.dumps([asdict(r) for r in rejected], indent=1) + "\n")
    os.replace(tmp, out_dir / "rejected.json")


def read_rejected(out_dir: Path) -> list[dict]:
    path = Path(out_dir) / "rejected.json"
    return json.loads(path.read_text()) if path.is_file() else []


def drop_failed(pred_path: Path, log=print) -> int:
    """Remove failed items from a predictions file so the run retries them (the video may be fixed now)."""
    records = P.read_predictions(pred_path)
    kept = [r for r in records if r.get("error") is None]
    failed = len(records) - len(kept)
    if failed:
        tmp = pred_path.with_suffix(".retry.tmp")
        P.write_all(tmp, kept)
        os.replace(tmp, pred_path)
        log(f"retrying {failed} item(s) that failed in an earlier run of {pred_path} (retry_failed=false keeps them)")
    return failed


def evaluate(run: RunConfig, host: Optional[StreamingVideoLLM] = None, log=print) -> dict:
    """Run (or resume) one shard; returns the metrics of the finished predictions of this shard.

    Unsharded runs also write metrics.json and report.md; sharded runs leave that to `merge`.
    A rerun retries the items that failed before (missing or corrupt video, host error) unless
    `retry_failed=false`: otherwise fixing a video would silently change nothing.
    """
    benchmark = get_benchmark(run.benchmark.name)
    benchmark.check(run.benchmark)
    check_model(run.framework)
    root = Path(run.data.root)
    loaded = load_samples(run, benchmark)
    out_dir = Path(run.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pred_path = out_dir / P.shard_file_name(run.shard_index, run.num_shards)
    if pred_path.is_file():
        check_resumable(run, out_dir)
        if run.retry_failed:
            drop_failed(pred_path, log)
    done = {p["id"] for p in P.read_predictions(pred_path)}
    write_run_config(run, out_dir)
    write_rejected(out_dir, loaded.rejected)
    if loaded.rejected:
        log(f"{len(loaded.rejected)} annotation record(s) rejected (first: {loaded.rejected[0].message}); "
            "they are listed in the report")
    groups = plan(loaded.samples, run.limit, run.shard_index, run.num_shards)
    todo = [g for g in ([s for s in g if s.id not in done] for g in groups) if g]
    if todo:
        if host is None:
            from frameworks.registry import build_host

            host = build_host(run.framework_name, host_settings(run.framework), run.compression)
        _run_groups(host, todo, run, benchmark, root, pred_path)
    rejected = [asdict(r) for r in loaded.rejected]
    metrics, scored = build_metrics(benchmark, P.read_predictions(pred_path), run.benchmark, run.describe(), rejected)
    if run.num_shards == 1:
        write_outputs(out_dir, metrics, benchmark, scored, run.benchmark)
    return metrics


def _run_groups(host, todo: list[list[Sample]], run: RunConfig, benchmark: Benchmark, root: Path, pred_path: Path) -> None:
    cfg = run.benchmark
    incremental = (run.protocol == "streaming" and getattr(host, "supports_incremental", False) and cfg.max_frames == 0)
    video_dir = root / cfg.video_dir if cfg.video_dir else root
    precut_dir = (root / cfg.precut_dir) if cfg.precut_dir else None

    def locate(sample: Sample) -> tuple[Path, bool]:
        return resolve_video(sample.video, video_dir, sample.precut, precut_dir)

    def opener(path: Path) -> VideoSource:
        v = run.video
        return VideoSource(path, cfg.fps, v.height, v.width, v.num_threads)

    def planner(key: int, open_grid):
        """The reads of group `key` if nothing fails (what the worker decodes ahead)."""
        state = StreamState()
        for sample in todo[key]:
            path, is_precut = locate(sample)
            grid = open_grid(path)
            if grid is None:
                state = StreamState()
                continue
            if is_precut:
                state = StreamState()
                yield path, [tuple(thin(grid.window(None, None), cfg.max_frames))]
                continue
            read = next_read(sample, state, grid, incremental, cfg.max_frames)
            state = StreamState(True, read.until)
            if read.positions:
                yield path, [read.positions]

    total = sum(len(g) for g in todo)
    feed = FrameFeed(opener, planner, range(len(todo)), depth=run.prefetch)
    try:
        with P.open_for_append(pred_path) as handle, tqdm(total=total, disable=not run.progress,
                                                         desc=f"{benchmark.name} shard {run.shard_index}/{run.num_shards}") as bar:
            for key, group in enumerate(todo):
                _run_video(host, key, group, run, benchmark, feed, locate, incremental, handle, bar)
    finally:
        feed.close()


def _run_video(host, key: int, group: list[Sample], run: RunConfig, benchmark: Benchmark, feed: FrameFeed, locate,
               incremental: bool, handle, bar) -> None:
    cfg = run.benchmark
    state, base = StreamState(), {}
    for sample in group:
        path, is_precut = locate(sample)
        new_frames, error, response, cost = 0, None, None, None
        waited_before = feed.waited
        try:
            grid = feed.grid(key, path)
            if is_precut:
                state = StreamState()
                read = Read(tuple(thin(grid.window(None, None), cfg.max_frames)), True, math.inf)
            else:
                read = next_read(sample, state, grid, incremental, cfg.max_frames)
            if read.reset:
                host.reset()
                base = {}
            for frames, timestamps in feed.read(key, path, read.positions):
                host.ingest(frames, timestamps)
            new_frames = len(read.positions)
            if not is_precut:
                state = StreamState(True, read.until)
            response = host.answer(benchmark.build_query(sample, cfg))
            cost, base = _cost_since(base, host.timings.to_dict())
        except VideoError as err:
            error, state = str(err), StreamState()
        except Exception as err:  # a host failure on one item is recorded and counted, the run goes on
            error, state = f"host error: {type(err).__name__}: {err}", StreamState()
        record = _record(sample, response, error, new_frames, cost)
        record["decode_wait_ms"] = 1000.0 * (feed.waited - waited_before)
        P.append(handle, record)
        bar.update(1)


def _cost_since(base: dict, now: dict) -> tuple[dict, dict]:
    """Numeric timing fields added since the previous answer on this stream (all of them after a reset);
    returns (cost, new base). Timings are cumulative between resets."""
    delta = {k: v - base.get(k, 0) for k, v in now.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
             and k != "peak_memory_mb"}
    delta["peak_memory_mb"] = now.get("peak_memory_mb")
    return delta, {k: v for k, v in now.items() if isinstance(v, (int, float))}


def _record(sample: Sample, response, error, new_frames: int, cost: Optional[dict]) -> dict:
    """One predictions.jsonl line; `timings` = host cost added by this item (ingest since the previous
    answer + answering), so sums over items are the run's total cost."""
    return {"id": sample.id, "video": sample.video, "task": sample.task, "category": sample.category,
            "group": sample.group, "query_time": sample.query_time, "gold": sample.gold, "response": response,
            "error": error, "new_frames": new_frames, "meta": sample.meta, "timings": cost}
