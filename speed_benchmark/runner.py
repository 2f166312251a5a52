"""Run every enabled case of one harness configuration and write results.json, table.md, speed.png.

    from speed_benchmark.config import SpeedConfig
    from speed_benchmark.runner import run
    result, paths = run(cfg, command="python -m speed_benchmark preset=tiny")

Cases run in one process on one set of weights: (1) ViT one stream, (2) multi-stream ViT share the
towers; they are freed before (3) builds the LLM, which is freed before (4) builds the hosts (one per
variant; (5) long-stream answers reuse them).
"""

from __future__ import annotations

import dataclasses
import gc
import time
import traceback
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import torch
from tqdm.auto import tqdm

from speed_benchmark import case_e2e, case_multistream, case_prefill, case_vit, plot, report, roofline, targets
from speed_benchmark.config import SpeedConfig, SpeedConfigError, validate
from speed_benchmark.models import build_llm, build_vision_tower, resolve_device_dtype, resolve_spec
from speed_benchmark.records import Row, RunContext
from speed_benchmark.timing import environment

SCHEMA_VERSION = 1


def _free(ctx: RunContext) -> None:
    walls = ctx.shared.get("case_wall_s", {})
    ctx.shared.clear()
    ctx.shared["case_wall_s"] = walls
    gc.collect()
    if ctx.cuda:
        torch.cuda.empty_cache()


def _notes(ctx: RunContext) -> list[str]:
    notes = []
    if not ctx.cuda:
        notes.append("CPU run: numbers show the harness works and the relative work done; they say nothing about GPU latency.")
    else:
        notes.append("Read each pre-fill row against its floor (max of FLOPs/peak and weight bytes/bandwidth, "
                     "measured in this run): at one frame per call the eager decoder step sits far above it "
                     "(that the excess is host-side time is inferred, not profiled), so pruning 196->64 pays "
                     "only with several frames per call.")
    if ctx.cfg.model.path is None:
        notes.append("Random weights at the released sizes (latency does not depend on weight values).")
    return notes


def _timed(ctx: RunContext, name: str, fn, default=None):
    """Run one case, record its wall time in ctx.shared["case_wall_s"]. A crash (OOM, capture error ...)
    is recorded as a failed case with its cause and the run goes on: earlier cases are not lost."""
    t0 = time.perf_counter()
    try:
        out = fn()
    except SpeedConfigError:
        raise
    except Exception as error:  # noqa: BLE001 - reported in results.json/table.md and on stderr
        traceback.print_exc()
        ctx.skip(name, "all", f"FAILED: {type(error).__name__}: {error}")
        ctx.failures.append(name)
        out = default
    ctx.shared.setdefault("case_wall_s", {})[name] = round(time.perf_counter() - t0, 2)
    return out


def _cases(ctx: RunContext, bar, checkpoint) -> list[Row]:
    """Run the enabled cases; `checkpoint(rows)` after each one writes what is measured so far."""
    cfg, rows = ctx.cfg, []
    if cfg.vit.enabled or cfg.multistream.enabled:
        tower = _timed(ctx, "build_vision", lambda: build_vision_tower(ctx.spec, cfg, ctx.device, ctx.dtype))
        if tower is not None:
            ctx.shared["base_tower"] = tower
            if cfg.vit.enabled:
                bar.set_description("vit one stream")
                rows += _timed(ctx, "vit", lambda: case_vit.run(ctx, bar), [])
                checkpoint(rows)
            if cfg.multistream.enabled:
                bar.set_description("vit multi-stream")
                rows += _timed(ctx, "multistream", lambda: case_multistream.run(ctx, bar), [])
                checkpoint(rows)
        del tower
        _free(ctx)
    if cfg.prefill.enabled:
        bar.set_description("llm pre-fill")
        llm = _timed(ctx, "build_llm", lambda: build_llm(ctx.spec, cfg, ctx.device, ctx.dtype))
        if llm is not None:
            rows += _timed(ctx, "prefill", lambda: case_prefill.run(ctx, llm, bar), [])
            checkpoint(rows)
        del llm
        _free(ctx)
    if cfg.e2e.enabled:
        bar.set_description("end-to-end")
        rows += _timed(ctx, "e2e", lambda: case_e2e.run(ctx, bar), [])
        _free(ctx)
    return rows


@contextmanager
def _compile_options(cfg: SpeedConfig):
    """stc.autotune: Inductor's max_autotune only while the cases run (the fused layers compile lazily,
    at their first call inside a case); `config.patch` restores the previous setting on exit."""
    if not cfg.stc.autotune:
        yield
        return
    import torch._inductor.config as inductor_config

    with inductor_config.patch(max_autotune=True):
        yield


def _total_steps(cfg: SpeedConfig) -> int:
    return ((cfg.repeats if cfg.vit.enabled else 0) + (len(cfg.multistream.streams) if cfg.multistream.enabled else 0)
            + (len(cfg.prefill.frames_per_chunk) if cfg.prefill.enabled else 0) + (len(cfg.e2e.frames_per_chunk) if cfg.e2e.enabled else 0))


def _peaks(ctx: RunContext):
    """This GPU's measured GEMM and copy ceilings (None on CPU, or with the reason if measuring fails)."""
    try:
        return roofline.measure_peaks(ctx.device, ctx.dtype)
    except Exception as error:  # noqa: BLE001 - floors are optional; the measurements are not
        ctx.notes.append(f"no roofline floors: measuring the peaks failed ({type(error).__name__}: {error})")
        return None


def _result(ctx: RunContext, rows: list[Row], command: str, started: str, t0: float, env: dict, peaks) -> dict:
    cfg, spec = ctx.cfg, ctx.spec
    roofline.annotate(rows, ctx, peaks)
    return {
        "schema_version": SCHEMA_VERSION,
        "command": command,
        "started_utc": started,
        "wall_s": round(time.perf_counter() - t0, 2),
        "case_wall_s": dict(ctx.shared.get("case_wall_s", {})),
        "environment": env,
        "peaks": peaks.to_dict() if peaks is not None else None,
        "config": dataclasses.asdict(cfg),
        "model": {**ctx.info(), "vision_config": spec.vision_config.to_dict(), "text_config": spec.text_config.to_dict()},
        "rows": [r.to_dict() for r in rows],
        "targets": targets.evaluate(rows, cfg),
        "failed_cases": list(ctx.failures),
        "skipped": list(ctx.skipped),
        "notes": _notes(ctx) + ctx.notes,
    }


def run(cfg: SpeedConfig, command: str = "") -> tuple[dict, dict[str, Path]]:
    """Validate, measure, write. Returns the result dict (as in results.json) and the output paths.
    results.json/table.md are rewritten after every case, so a run cut short keeps what it measured
    (`"complete": false` until the end)."""
    validate(cfg, torch.cuda.is_available())
    spec = resolve_spec(cfg.preset, cfg.model.path)
    device, dtype = resolve_device_dtype(cfg)
    torch.manual_seed(cfg.seed)
    ctx = RunContext(cfg, spec, device, dtype)
    out_dir = Path(cfg.out_dir)
    env = environment(device, dtype, cfg.model.attn_implementation)
    started, t0 = datetime.now(timezone.utc).isoformat(timespec="seconds"), time.perf_counter()
    peaks = _peaks(ctx)

    def checkpoint(rows: list[Row]) -> None:
        report.write(out_dir, dict(_result(ctx, rows, command, started, t0, env, peaks), complete=False), rows)

    with tqdm(total=_total_steps(cfg), disable=not cfg.progress, desc="speed", unit="step") as bar, \
            _compile_options(cfg):
        rows = _cases(ctx, bar, checkpoint)
    result = dict(_result(ctx, rows, command, started, t0, env, peaks), complete=True)
    paths = report.write(out_dir, result, rows)
    if cfg.plot:
        title = f"{cfg.preset.name} on {env['device_name']} ({env['dtype']})"
        try:
            png = plot.plot(rows, title, out_dir / "speed.png")
        except ImportError as error:  # measurements are already written; a missing matplotlib must not lose them
            result["notes"].append(f"no plot: matplotlib is not installed ({error})")
            paths = report.write(out_dir, result, rows)
        else:
            if png is not None:
                paths["plot"] = png
    return result, paths
