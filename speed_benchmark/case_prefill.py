"""Case (3): LLM pre-fill of F frames x k visual tokens in chunks of `frames_per_chunk` frames, plus the
cost of STC-Pruner itself.

Per repeat and chunk size c: a fresh `DynamicCache` holding `prompt_tokens` of system prompt (not
timed), then ceil(F/c) forward calls with `inputs_embeds` of c·k tokens. Baseline k = the preset's
tokens per frame (196 for LLaVA-OV); STC k = stc.tokens_per_frame. The pruner is timed the way a
host runs it: `STCPruner.compress` on each chunk's [c, 196, D] projector features, reset per video.
Rows: baseline, stc (LLM only), pruner, stc+pruner (what STC really costs). Theory: the FLOP ratio of
the two pre-fills (linear + causal attention), printed beside the plain token ratio.
"""

from __future__ import annotations

import math

import torch

from frameworks.common.timing import EventTimer
from speed_benchmark import flops
from speed_benchmark.records import Row, RunContext, compare
from speed_benchmark.timing import peak_memory_mb, reset_peak_memory


def _cache(ctx: RunContext, llm, prompt: torch.Tensor):
    from transformers import DynamicCache

    cache = DynamicCache(config=llm.config)
    if prompt.shape[1]:
        llm(inputs_embeds=prompt, past_key_values=cache, use_cache=True)
    return cache


def _prefill(ctx, llm, prompt, embeds: torch.Tensor, per_frame: int, chunk: int, rec: EventTimer) -> float:
    cache = _cache(ctx, llm, prompt)
    step = per_frame * chunk
    for start in range(0, embeds.shape[1], step):
        part = embeds[:, start:start + step]
        rec.call(lambda: llm(inputs_embeds=part, past_key_values=cache, use_cache=True))
    ms = rec.finish()
    return sum(ms)


def _prune(pruner, features: torch.Tensor, chunk: int, rec: EventTimer) -> float:
    pruner.reset()
    for start in range(0, features.shape[0], chunk):
        rec.call(lambda: pruner.compress(features[start:start + chunk]))
    return sum(rec.finish())


def _pruner(ctx: RunContext):
    try:
        from stc import PrunerConfig, STCPruner
    except ImportError as error:
        ctx.skip("pruner", "stc pruner", f"stc.STCPruner not importable: {error}")
        return None
    return STCPruner(PrunerConfig(tokens_per_frame=ctx.cfg.stc.tokens_per_frame,
                                  strategy=ctx.cfg.stc.pruner_strategy))


def run(ctx: RunContext, llm, progress) -> list[Row]:
    cfg, rows = ctx.cfg, []
    full, kept, frames = ctx.cfg.preset.llm_tokens_per_frame, cfg.stc.tokens_per_frame, cfg.frames
    d = llm.config.hidden_size
    gen = torch.Generator().manual_seed(cfg.seed)
    embeds = (torch.randn(1, frames * full, d, generator=gen) * 0.02).to(ctx.device, ctx.dtype)
    pruned = embeds.view(frames, full, d)[:, :kept].reshape(1, frames * kept, d).contiguous()
    prompt = (torch.randn(1, cfg.prefill.prompt_tokens, d, generator=gen) * 0.02).to(ctx.device, ctx.dtype)
    features = embeds.view(frames, full, d)
    pruner = _pruner(ctx)
    shape = flops.llm_shape_from_config(llm.config)
    rec = EventTimer(ctx.device)
    for chunk in cfg.prefill.frames_per_chunk:
        chunk = min(chunk, frames)
        jobs = {"baseline": lambda: _prefill(ctx, llm, prompt, embeds, full, chunk, rec),
                "stc": lambda: _prefill(ctx, llm, prompt, pruned, kept, chunk, rec)}
        if pruner is not None:
            jobs["pruner"] = lambda: _prune(pruner, features, chunk, rec)
        samples = {name: [] for name in jobs}
        with torch.no_grad():
            for job in jobs.values():
                for _ in range(max(1, cfg.warmup)):
                    job()
            reset_peak_memory(ctx.device)
            for _ in range(cfg.repeats):
                for name, job in jobs.items():
                    samples[name].append(job())
        rows += _rows(ctx, shape, chunk, samples, peak_memory_mb(ctx.device))
        progress.update(1)
    return rows


def _rows(ctx: RunContext, shape, chunk: int, samples: dict, peak) -> list[Row]:
    cfg = ctx.cfg
    full, kept, frames = cfg.preset.llm_tokens_per_frame, cfg.stc.tokens_per_frame, cfg.frames
    calls = math.ceil(frames / chunk)
    common = {"frames": frames, "frames_per_chunk": chunk, "calls": calls, "prompt_tokens": cfg.prefill.prompt_tokens}
    theory = flops.prefill_fraction(shape, frames, full, kept, chunk, cfg.prefill.prompt_tokens)
    base = Row("prefill", f"baseline c={chunk}", "baseline", "eager", dict(common, k=full), "ms",
               samples["baseline"], extra={"peak_memory_mb": peak}).finalize()
    stc = Row("prefill", f"stc c={chunk}", "stc", "eager", dict(common, k=kept), "ms", samples["stc"]).finalize()
    compare(stc, base, theory)
    stc.extra["token_ratio"] = kept / full
    rows = [base, stc]
    if "pruner" in samples:
        prune = Row("pruner", f"pruner c={chunk}", "stc", "eager", dict(common, k=kept, k_in=full), "ms",
                    samples["pruner"]).finalize()
        prune.extra["ms_per_frame"] = prune.stats["median"] / frames
        total = [a + b for a, b in zip(samples["stc"], samples["pruner"])]
        both = Row("prefill", f"stc+pruner c={chunk}", "stc", "eager", dict(common, k=kept), "ms", total).finalize()
        compare(both, base, theory)
        rows += [both, prune]
    return rows
