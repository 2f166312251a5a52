"""The issue's speed targets, evaluated on a run's rows (benchmarks on an H100/H200, never a test).

    ViT, one stream, N=4, r=0.25:  STC graph <= 0.60x the graphed baseline
                                   best STC  <= 0.25x the eager baseline
    ViT, 8 streams batched:        STC throughput >= 1.8x the baseline (best mode of each)
    Pre-fill 196 -> 64 tokens, frames_per_chunk >= 8:  STC (+ its pruner) <= 0.40x the baseline

A target whose rows are absent from the run (other N/r/k, CPU without graphs, ...) is "n/a" with why.
"""

from __future__ import annotations

from typing import Optional

from speed_benchmark.config import SpeedConfig
from speed_benchmark.records import Row


def _result(tid, text, op, goal, measured: Optional[float], why: str = "") -> dict:
    if measured is None:
        return {"id": tid, "target": text, "goal": f"{op} {goal}", "measured": None, "status": "n/a", "detail": why}
    ok = measured <= goal if op == "<=" else measured >= goal
    gap = measured / goal
    detail = "" if ok else (f"{gap:.2f}x the goal" if op == "<=" else f"{(1 - gap) * 100:.0f}% short of the goal")
    return {"id": tid, "target": text, "goal": f"{op} {goal}", "measured": round(measured, 4),
            "status": "pass" if ok else "MISS", "detail": detail}


def _find(rows: list[Row], case: str, name: str) -> Optional[Row]:
    return next((r for r in rows if r.case == case and r.name == name), None)


def _vit(rows: list[Row], cfg: SpeedConfig) -> list[dict]:
    text_g = "ViT 1 stream N=4 r=0.25: STC graph / graphed baseline"
    text_e = "ViT 1 stream N=4 r=0.25: best STC / eager baseline"
    if abs(cfg.stc.update_ratio - 0.25) > 1e-9:
        why = f"run used r={cfg.stc.update_ratio}"
        return [_result("vit_graph", text_g, "<=", 0.60, None, why), _result("vit_eager", text_e, "<=", 0.25, None, why)]
    base_g, base_e = _find(rows, "vit", "baseline graph"), _find(rows, "vit", "baseline eager")
    stc_g, stc_e = _find(rows, "vit", "stc graph N=4"), _find(rows, "vit", "stc eager N=4")
    g = stc_g.stats["median"] / base_g.stats["median"] if (stc_g and base_g) else None
    best = min([r.stats["median"] for r in (stc_g, stc_e) if r is not None], default=None)
    e = best / base_e.stats["median"] if (best is not None and base_e) else None
    return [_result("vit_graph", text_g, "<=", 0.60, g, "needs CUDA graphs and N=4 rows"),
            _result("vit_eager", text_e, "<=", 0.25, e, "needs N=4 rows and the eager baseline")]


def _streams(rows: list[Row]) -> dict:
    text = "ViT 8 streams batched: STC / baseline throughput (best mode each)"
    base = [r.stats["median"] for r in rows if r.case == "multistream" and r.method == "baseline" and r.params["S"] == 8]
    stc = [r.stats["median"] for r in rows if r.case == "multistream" and r.method == "stc" and r.params["S"] == 8
           and r.params.get("N") == 4 and abs(r.params.get("r", 0) - 0.25) < 1e-9]
    measured = max(stc) / max(base) if (base and stc) else None
    return _result("multistream_8", text, ">=", 1.8, measured, "needs S=8 with N=4, r=0.25")


def _prefill(rows: list[Row], cfg: SpeedConfig) -> dict:
    text = "Pre-fill 196->64, frames_per_chunk>=8: STC+pruner / baseline (worst chunk size)"
    if (cfg.preset.llm_tokens_per_frame, cfg.stc.tokens_per_frame) != (196, 64):
        return _result("prefill", text, "<=", 0.40, None,
                       f"run pruned {cfg.preset.llm_tokens_per_frame}->{cfg.stc.tokens_per_frame}")
    fracs = []
    for r in rows:
        if r.case == "prefill" and r.params.get("frames_per_chunk", 0) >= 8 and r.method == "stc":
            with_pruner = _find(rows, "prefill", f"stc+pruner c={r.params['frames_per_chunk']}")
            if r.name.startswith("stc+pruner") or with_pruner is None:
                fracs.append(r.measured_fraction)
    return _result("prefill", text, "<=", 0.40, max(fracs) if fracs else None, "needs frames_per_chunk >= 8")


def evaluate(rows: list[Row], cfg: SpeedConfig) -> list[dict]:
    return _vit(rows, cfg) + [_streams(rows), _prefill(rows, cfg)]
