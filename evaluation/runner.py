"""The evaluation loop: load, shard, resume, feed frames to a host, record predictions, report.

Protocols (`protocol=`):
  streaming : questions on one video are asked in increasing query time; when the host
              `supports_incremental`, only the frames after the previous question are ingested
              (the stream is never reset inside a video). Falls back to `prefix` for hosts that
              cannot extend a stream and when `benchmark.max_frames` thins frames per query.
  prefix    : the upstream "offline" protocol: reset and ingest [0, query_time] for every question.
Whole-video questions (offline benchmarks) ingest the video once and answer all its questions, as
ReKV does, in both protocols.

Sharding is by video (all questions of a video stay in one shard, so streaming reuse holds);
`limit` keeps the first N samples of the annotation before sharding, so shards of a limited run
partition exactly the limited unsharded run.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Optional, Sequence

from tqdm.auto import tqdm

from evaluation import predictions as P
from evaluation.common.paths import resolve_video
from evaluation.config import RunConfig
from evaluation.registry import Benchmark, get_benchmark
from evaluation.report import write_outputs
from evaluation.scoring import build_metrics
from evaluation.types import Sample, VideoError
from evaluation.video import VideoSource, thin
from frameworks.protocol import StreamingVideoLLM

INGEST_CHUNK = 128  # frames decoded and handed to the host at once (bounds host RAM on long videos)


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


def evaluate(run: RunConfig, host: Optional[StreamingVideoLLM] = None) -> dict:
    """Run (or resume) one shard; returns the metrics of the finished predictions of this shard.

    Unsharded runs also write metrics.json and report.md; sharded runs leave that to `merge`.
    """
    benchmark = get_benchmark(run.benchmark.name)
    benchmark.check(run.benchmark)
    root = Path(run.data.root)
    annotation = Path(run.benchmark.annotation)
    samples = select_tasks(benchmark.load(annotation if annotation.is_absolute() else root / annotation, run.benchmark, root),
                           run.benchmark.tasks)
    out_dir = Path(run.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pred_path = out_dir / P.shard_file_name(run.shard_index, run.num_shards)
    done = {p["id"] for p in P.read_predictions(pred_path)}
    if done:
        check_resumable(run, out_dir)
    write_run_config(run, out_dir)
    groups = plan(samples, run.limit, run.shard_index, run.num_shards)
    todo = [[s for s in g if s.id not in done] for g in groups]
    if any(todo):
        if host is None:
            from frameworks.registry import build_host

            host = build_host(run.framework_name, run.framework, run.compression)
        total = sum(len(g) for g in todo)
        with P.open_for_append(pred_path) as handle, tqdm(total=total, disable=not run.progress,
                                                         desc=f"{benchmark.name} shard {run.shard_index}/{run.num_shards}") as bar:
            for group in todo:
                if group:
                    _run_video(host, group, run, benchmark, root, handle, bar)
    metrics, scored = build_metrics(benchmark, P.read_predictions(pred_path), run.benchmark, run.describe())
    if run.num_shards == 1:
        write_outputs(out_dir, metrics, benchmark, scored, run.benchmark)
    return metrics


class _Stream:
    """Where the host's stream currently is for the open video (valid=False: reset before use).

    `base` holds the host timings right after the previous answer on this stream, so each prediction
    records only the cost it added (timings are cumulative between resets).
    """

    def __init__(self):
        self.until: Optional[float] = None  # seconds ingested up to; math.inf = whole video
        self.valid = False
        self.base: dict = {}


class _VideoGroup:
    """The open source video of one group; opening fails once and every item records the reason."""

    def __init__(self, run: RunConfig, root: Path):
        cfg = run.benchmark
        self.run = run
        self.video_dir = root / cfg.video_dir if cfg.video_dir else root
        self.precut_dir = (root / cfg.precut_dir) if cfg.precut_dir else None
        self.source: Optional[VideoSource] = None
        self.error: Optional[str] = None

    def open(self, path: Path) -> VideoSource:
        v = self.run.video
        return VideoSource(path, self.run.benchmark.fps, v.height, v.width, v.num_threads)

    def shared(self, path: Path) -> VideoSource:
        if self.source is None and self.error is None:
            try:
                self.source = self.open(path)
            except VideoError as err:
                self.error = str(err)
        if self.error is not None:
            raise VideoError(self.error)
        return self.source


def _run_video(host, group: list[Sample], run: RunConfig, benchmark: Benchmark, root: Path, handle, bar) -> None:
    cfg = run.benchmark
    incremental = (run.protocol == "streaming" and getattr(host, "supports_incremental", False) and cfg.max_frames == 0)
    videos = _VideoGroup(run, root)
    stream = _Stream()
    for sample in group:
        path, is_precut = resolve_video(sample.video, videos.video_dir, sample.precut, videos.precut_dir)
        new_frames, error, response, cost = 0, None, None, None
        try:
            if is_precut:
                clip = videos.open(path)
                stream.valid = False
                new_frames = _ingest(host, clip, thin(clip.window(None, None), cfg.max_frames), stream, reset=True)
            else:
                new_frames = _advance(host, videos.shared(path), sample, stream, incremental, cfg.max_frames)
            response = host.answer(benchmark.build_query(sample, cfg))
            cost = _cost_since(stream, host.timings.to_dict())
        except VideoError as err:
            error, stream.valid = str(err), False
        except Exception as err:  # a host failure on one item is recorded and counted, the run goes on
            error, stream.valid = f"host error: {type(err).__name__}: {err}", False
        P.append(handle, _record(sample, response, error, new_frames, cost))
        bar.update(1)


def _cost_since(stream: _Stream, now: dict) -> dict:
    """Numeric timing fields added since the previous answer on this stream (all of them after a reset)."""
    delta = {k: v - stream.base.get(k, 0) for k, v in now.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
             and k != "peak_memory_mb"}
    delta["peak_memory_mb"] = now.get("peak_memory_mb")
    stream.base = {k: v for k, v in now.items() if isinstance(v, (int, float))}
    return delta


def _advance(host, source: VideoSource, sample: Sample, stream: _Stream, incremental: bool, max_frames: int) -> int:
    """Bring the host's stream to the sample's query time; returns the number of frames ingested."""
    end = math.inf if sample.query_time is None else sample.query_time
    start = None if sample.start_time <= 0 else sample.start_time - 1e-3
    if stream.valid and stream.until == math.inf and end == math.inf:
        return 0  # another whole-video question on the same video: reuse (ReKV offline)
    if incremental and stream.valid and start is None and stream.until is not None and end >= stream.until:
        positions = source.window(stream.until, None if end == math.inf else end)
        count = _ingest(host, source, positions, stream, reset=False)
    else:
        positions = thin(source.window(start, None if end == math.inf else end), max_frames)
        count = _ingest(host, source, positions, stream, reset=True)
    stream.until, stream.valid = end, True
    return count


def _ingest(host, source: VideoSource, positions: list[int], stream: _Stream, reset: bool) -> int:
    if reset:
        host.reset()
        stream.base = {}
    for i in range(0, len(positions), INGEST_CHUNK):
        frames, timestamps = source.read(positions[i:i + INGEST_CHUNK])
        host.ingest(frames, timestamps)
    return len(positions)


def _record(sample: Sample, response, error, new_frames: int, cost: Optional[dict]) -> dict:
    """One predictions.jsonl line; `timings` = host cost added by this item (ingest since the previous
    answer + answering), so sums over items are the run's total cost."""
    return {"id": sample.id, "video": sample.video, "task": sample.task, "category": sample.category,
            "group": sample.group, "query_time": sample.query_time, "gold": sample.gold, "response": response,
            "error": error, "new_frames": new_frames, "meta": sample.meta, "timings": cost}
