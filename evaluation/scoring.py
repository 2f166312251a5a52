"""Score predictions and assemble the metrics object written to metrics.json and report.md."""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from evaluation.common.metrics import tally
from evaluation.config import BenchmarkConfig
from evaluation.registry import Benchmark


def score_predictions(benchmark: Benchmark, predictions: Sequence[dict], cfg: BenchmarkConfig) -> list[dict]:
    """Attach parsed/answered/correct to every prediction; failed items are unanswered and wrong."""
    scored = []
    for number, pred in enumerate(predictions, start=1):
        response = pred.get("response")
        if pred.get("error") is None and response is not None and not isinstance(response, str):
            # a hand-edited or foreign file: one item fails, with its id, instead of an AttributeError
            pred = {**pred, "response": None,
                    "error": f"prediction {number} (id {pred.get('id')!r}): response is {type(response).__name__}, not text"}
        if pred.get("error") is not None:
            verdict = {"parsed": "", "answered": False, "correct": False}
        else:
            verdict = benchmark.score_item(pred, cfg)
        scored.append({**pred, **verdict})
    return scored


def build_metrics(benchmark: Benchmark, predictions: Sequence[dict], cfg: BenchmarkConfig, settings: dict,
                  rejected: Sequence[dict] = ()) -> tuple[dict, list[dict]]:
    """-> (metrics, scored predictions). metrics = aggregate() + settings + counts + error reasons +
    rejected annotation records (outside every denominator: they have no trustworthy gold or task)."""
    benchmark.check(cfg)
    scored = score_predictions(benchmark, predictions, cfg)
    metrics = benchmark.aggregate(scored, cfg)
    counts = tally(scored)
    reasons = Counter(_reason(p["error"]) for p in scored if p.get("error") is not None)
    metrics = {
        "settings": dict(settings),
        "counts": {k: counts[k] for k in ("n", "correct", "unanswered", "errors")},
        **metrics,
        "cost": summarize_cost(scored),
        "error_reasons": dict(reasons.most_common(20)),
        "error_examples": [{"id": p["id"], "error": p["error"]} for p in scored if p.get("error")][:20],
        "rejected": summarize_rejected(rejected),
    }
    return metrics, scored


def summarize_rejected(rejected: Sequence[dict]) -> dict:
    """Annotation records the loader could not read: count, count per reason, the first messages."""
    reasons = Counter(r["reason"] for r in rejected)
    return {"count": len(rejected), "reasons": dict(reasons.most_common()), "examples": [r["message"] for r in rejected[:20]]}


def _reason(error: str) -> str:
    """Group errors by their kind: the text after the path (videos) or before the first colon."""
    text = str(error)
    if ": " in text and ("/" in text.split(": ")[0] or "\\" in text.split(": ")[0]):
        text = text.split(": ", 1)[1]
    return text.split(" (")[0][:120]


_COST_FIELDS = ("vit_ms", "prefill_ms", "pruner_ms", "retrieval_ms", "decode_ms", "frames", "visual_tokens_in",
                "visual_tokens_kept", "vit_reference_frames", "vit_selective_frames")


def summarize_cost(predictions: Sequence[dict]) -> dict:
    """Host cost summed over items (each prediction carries only the cost it added), plus frame counts."""
    timed = [p["timings"] for p in predictions if p.get("timings")]
    cost = {"items_timed": len(timed), "frames_ingested": sum(int(p.get("new_frames") or 0) for p in predictions),
            # time the run waited for frames (decode not hidden behind the host): host idle time
            "decode_wait_ms": sum(float(p.get("decode_wait_ms") or 0) for p in predictions)}
    for name in _COST_FIELDS:
        cost[name] = sum(float(t.get(name) or 0) for t in timed)
    if cost["visual_tokens_in"]:
        cost["visual_token_keep_ratio"] = cost["visual_tokens_kept"] / cost["visual_tokens_in"]
    peaks = [t["peak_memory_mb"] for t in timed if t.get("peak_memory_mb") is not None]
    cost["peak_memory_mb"] = max(peaks) if peaks else None
    return cost
