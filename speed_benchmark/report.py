"""results.json + table.md: every sample, and the paper-style summary (baseline, +STC, reduction %).

Columns (docs/speed/README.md explains them): median/min/p90 of the per-repeat samples; "x base" is
STC cost / baseline cost from medians (time ratio; for throughput baseline/STC), "red." is the
reduction in %, "theory" the FLOP-model fraction (F(N, r) for ViT, FLOP ratio for pre-fill), "eff."
theory / measured (1.00 = the FLOP saving fully realised).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Optional

from speed_benchmark.records import Row, stage_ms


def _f(x: Optional[float], fmt: str = "{:.2f}") -> str:
    return "–" if x is None else fmt.format(x)


def _x_floor(row: Row) -> str:
    floor = row.extra.get("floor") or {}
    return "n/a" if floor.get("x_floor") is None else f"{floor['x_floor']:.2f}"


def _floor_table(rows: list[Row], peaks: Optional[dict]) -> list[str]:
    """Every row beside its roofline floor (speed_benchmark/roofline.py): n/a on CPU or without a model."""
    head = ("Peaks measured in this run: " + (f"GEMM {peaks['flops_per_s'] / 1e12:.0f} TFLOP/s ({peaks['gemm_size']}^3), "
            f"copy {peaks['bytes_per_s'] / 1e9:.0f} GB/s." if peaks else "n/a (CPU run)."))
    out = [head, "", "| case | row | median | unit | floor | x floor | bound | GFLOP | weight MB read |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        f = r.extra.get("floor") or {}
        cells = "n/a | n/a | n/a" if f.get("floor") is None else f"{f['floor']:.3g} | {f['x_floor']:.2f} | {f['bound']}"
        cells += f" | {f['flops'] / 1e9:.3g} | {f['bytes'] / 1e6:.3g}" if f else " | n/a | n/a"
        out.append(f"| {r.case} | {r.name} | {r.stats['median']:.3g} | {r.unit} | {cells} |")
    return out


def _red(row: Row) -> str:
    return "–" if row.measured_fraction is None else f"{(1 - row.measured_fraction) * 100:+.1f}%".replace("+", "−", 1) \
        if row.measured_fraction < 1 else f"+{(row.measured_fraction - 1) * 100:.1f}% slower"


def _vit_table(rows: list[Row]) -> list[str]:
    out = ["| Variant | N | r | ms/frame median | min | p90 | reference ms | selective ms | x base | red. | x eager base | x graph base | "
           "theory F(N,r) | eff. | x floor | refs/sel (k) |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ref, sel, c = r.extra.get("reference_ms"), r.extra.get("selective_ms"), r.extra.get("cacher")
        counts = f"{c['reference_frames']}/{c['selective_frames']} ({c['tokens_recomputed']}/{c['tokens_per_frame']})" if c else "–"
        out.append(f"| {r.name} | {r.params.get('N', '–')} | {r.params.get('r', '–')} | {r.stats['median']:.2f} | "
                   f"{r.stats['min']:.2f} | {r.stats['p90']:.2f} | {_f(ref and ref['median'])} | {_f(sel and sel['median'])} | "
                   f"{_f(r.measured_fraction)} | {_red(r)} | {_f(r.extra.get('fraction_vs_eager_baseline'))} | "
                   f"{_f(r.extra.get('fraction_vs_graph_baseline'))} | "
                   f"{_f(r.theory_fraction, '{:.3f}')} | {_f(r.efficiency)} | {_x_floor(r)} | {counts} |")
    return out


def _stream_table(rows: list[Row]) -> list[str]:
    """One line per STC variant (plain, fused, staggered) against the baseline of its S and mode, with the
    per-call latency: median, p90, and p90 after each pass's first call (where every stream refreshes,
    whatever its phase), which is what "flat" refers to."""
    out = ["| S | STC variant | baseline frames/s | STC frames/s | speed-up | theory speed-up | eff. | "
           "call ms median | p90 | p90 after the first call |", "|---|---|---|---|---|---|---|---|---|---|"]
    base = {(r.params["S"], r.mode): r for r in rows if r.method == "baseline"}
    for r in rows:
        if r.method != "stc":
            continue
        b = base.get((r.params["S"], r.mode.split("+")[0]))  # a fused row is compared with its base mode's
        up = (1 / r.measured_fraction) if r.measured_fraction else None
        th = (1 / r.theory_fraction) if r.theory_fraction else None
        e = r.extra
        out.append(f"| {r.params['S']} | {r.name} | {_f(b and b.stats['median'], '{:.1f}')} | {r.stats['median']:.1f} | "
                   f"{_f(up)}x | {_f(th)}x | {_f(r.efficiency)} | {_f(e.get('call_ms_median'))} | "
                   f"{_f(e.get('call_ms_p90'))} | {_f(e.get('call_ms_p90_steady'))} |")
    return out


def _prefill_table(rows: list[Row]) -> list[str]:
    out = ["| frames/chunk | calls | baseline ms (k) | STC ms (k) | pruner ms | STC+pruner ms | x base | red. | token ratio | theory | eff. |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    by = {r.name: r for r in rows}
    for r in rows:
        if r.case != "prefill" or r.method != "baseline":
            continue
        c = r.params["frames_per_chunk"]
        stc, prune, both = by.get(f"stc c={c}"), by.get(f"pruner c={c}"), by.get(f"stc+pruner c={c}")
        final = both or stc
        out.append(f"| {c} | {r.params['calls']} | {r.stats['median']:.2f} ({r.params['k']}) | "
                   f"{_f(stc and stc.stats['median'])} ({stc.params['k'] if stc else '–'}) | {_f(prune and prune.stats['median'])} | "
                   f"{_f(both and both.stats['median'])} | {_f(final and final.measured_fraction)} | {_red(final) if final else '–'} | "
                   f"{_f(stc and stc.extra.get('token_ratio'), '{:.3f}')} | {_f(final and final.theory_fraction, '{:.3f}')} | "
                   f"{_f(final and final.efficiency)} |")
    return out


def _e2e_table(rows: list[Row]) -> list[str]:
    out = ["| Variant | ms/frame median | min | p90 | host ms/frame | x base | red. | x graph base | theory | eff. | x floor | "
           "ViT ms | projector ms | pruner ms | pre-fill ms | retrieval ms | answer ms | refs/sel | tokens kept/in |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        last = (r.extra.get("host_timings") or [{}])[-1]
        answer = r.extra.get("answer_ms")
        out.append(f"| {r.name} | {r.stats['median']:.2f} | {r.stats['min']:.2f} | {r.stats['p90']:.2f} | "
                   f"{_f(stage_ms(r, 'host_ms_per_frame', per_frame=False))} | "
                   f"{_f(r.measured_fraction)} | {_red(r)} | {_f(r.extra.get('fraction_vs_graph_baseline'))} | "
                   f"{_f(r.theory_fraction, '{:.3f}')} | {_f(r.efficiency)} | {_x_floor(r)} | {_f(stage_ms(r, 'vit_ms'))} | {_f(stage_ms(r, 'projector_ms'))} | {_f(stage_ms(r, 'pruner_ms'))} | "
                   f"{_f(stage_ms(r, 'prefill_ms'))} | {_f(stage_ms(r, 'retrieval_ms', per_frame=False))} | "
                   f"{_f(answer and answer['median'])} | {last.get('vit_reference_frames', '–')}/{last.get('vit_selective_frames', '–')} | "
                   f"{last.get('visual_tokens_kept', '–')}/{last.get('visual_tokens_in', '–')} |")
    return out


def _long_table(rows: list[Row]) -> list[str]:
    out = ["| Variant | frames in memory | tokens/block | stored GiB | retrieval ms | answer pre-fill ms | "
           "first token ms (median) | p90 | decode ms/token | full answer ms (tokens) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        e = r.extra
        out.append(f"| {r.name} | {r.params['frames']} ({r.params['encoded_frames']} encoded) | {e.get('block_tokens', '–')} | "
                   f"{_f(e.get('stored_gib'), '{:.3g}')} | {_f(e['retrieval_ms'])} | {_f(e['answer_prefill_ms'])} | "
                   f"{r.stats['median']:.2f} | {r.stats['p90']:.2f} | {_f(e['decode_ms_per_token'])} | "
                   f"{_f(statistics.median(e['full_answer_ms']))} ({e['generated_tokens']}) |")
    return out


def _summary(rows: list[Row], frames: int, interval: int) -> list[str]:
    """Paper-style: ViT encode of F frames and visual pre-fill, baseline vs +STC, reduction %."""
    def get(case, name):
        return next((r for r in rows if r.case == case and r.name == name), None)

    out = [f"| Method | ViT Enc. Lat. (ms, {frames} frames) | LLM Pref. Lat. (ms) |", "|---|---|---|"]
    vb = get("vit", "baseline graph") or get("vit", "baseline eager")
    # STC's fastest variant of the baseline's execution mode (graph: plain or fused layers) at one frame per call
    candidates = [r for r in rows if vb is not None and r.case == "vit" and r.method == "stc" and r.mode == vb.mode
                  and r.params.get("N") == interval and r.params.get("frames_per_call", 1) == 1]
    vs = min(candidates, key=lambda r: r.stats["median"]) if candidates else None
    pre = [r for r in rows if r.case == "prefill" and r.method == "baseline"]
    pb = max(pre, key=lambda r: r.params["frames_per_chunk"]) if pre else None
    c = pb.params["frames_per_chunk"] if pb else None
    ps = get("prefill", f"stc+pruner c={c}") or get("prefill", f"stc c={c}")
    if vb is None and pb is None:
        return ["(no ViT or pre-fill rows in this run)"]
    fmt = lambda r, n: "–" if r is None else f"{r.stats['median'] * n:.1f}"  # noqa: E731
    out.append(f"| Baseline{' (' + vb.mode + ')' if vb else ''} | {fmt(vb, frames)} | {fmt(pb, 1)} |")
    label = f"+ STC ({vs.name if vs else '–'}; k={ps.params['k'] if ps else '–'}, chunk {c})"
    out.append(f"| {label} | {fmt(vs, frames)} ({_red(vs) if vs else '–'}) | {fmt(ps, 1)} ({_red(ps) if ps else '–'}) |")
    return out


def render(result: dict, rows: list[Row]) -> str:
    env, cfg = result["environment"], result["config"]
    hw = env["device_name"] + ("" if env["device_type"] == "cuda" else "  **[CPU run: not comparable to GPU numbers]**")
    partial = [] if result.get("complete", True) else [
        "**PARTIAL: the run has not finished (or was cut short); cases below are the ones measured so far.**", ""]
    lines = [f"# Speed: preset `{cfg['preset']['name']}` on {hw}", ""] + partial + [
             f"- command: `{result['command']}`",
             f"- torch {env['torch']}, transformers {env['transformers']}, driver {env['driver']}, CUDA {env['cuda']}, "
             f"dtype {env['dtype']}, attention {env['attention']}",
             f"- F={cfg['frames']} frames, repeats={cfg['repeats']}, warm-up={cfg['warmup']}, "
             f"r={cfg['stc']['update_ratio']}, N={cfg['stc']['cache_interval']} (ViT sweep {cfg['vit']['intervals']}), "
             f"fused={cfg['stc']['fused']}, "
             f"k={cfg['stc']['tokens_per_frame']}/{cfg['preset']['llm_tokens_per_frame']}, ViT tokens T={result['model']['vit_tokens']}",
             f"- wall time {result['wall_s']:.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in result.get("case_wall_s", {}).items()) + ")",
             "", "## Paper-style summary", ""] + _summary(rows, cfg["frames"], cfg["stc"]["cache_interval"])
    sections = [("vit", "## (1) ViT encode, one stream, one frame per call", _vit_table),
                ("multistream", "## (2) Batched multi-stream ViT (one frame of each stream per call)", _stream_table),
                ("prefill", "## (3) LLM pre-fill of F frames (+ STC-Pruner cost)", _prefill_table)]
    for case, title, fn in sections:
        sub = [r for r in rows if r.case == case or (case == "prefill" and r.case == "pruner")]
        if sub:
            lines += ["", title, ""] + fn(sub)
    e2e = [r for r in rows if r.case == "e2e"]
    if e2e:
        lines += ["", "## (4) End-to-end ingest per frame (host stage ms per frame; retrieval and answer per "
                  "question; medians)", ""] + _e2e_table(e2e)
    long = [r for r in rows if r.case == "long"]
    if long:
        lines += ["", "## (5) Answer latency after a long stream", "",
                  "The same question asked again after untimed warm-ups (graphs captured, the device LRU of "
                  "retrieved blocks warm); a new question's cold-LRU first token: scripts/gpu/rekv_answer_latency.py.",
                  ""] + _long_table(long)
    if rows:
        lines += ["", "## Roofline floors", "", "Floor of each call = max(FLOPs / peak, weight bytes / bandwidth), summed "
                  "over a pass, in the row's unit; x floor = measured / floor (>= 1). GFLOP and weight MB are per timed "
                  "pass. No model for the pruner and long-stream rows.", ""]
        lines += _floor_table(rows, result.get("peaks"))
    lines += ["", "## Targets", "", "| Target | goal | measured | status | note |", "|---|---|---|---|---|"]
    lines += [f"| {t['target']} | {t['goal']} | {_f(t['measured'], '{:.3f}')} | {t['status']} | {t['detail']} |" for t in result["targets"]]
    if result.get("failed_cases"):
        lines += ["", f"**{len(result['failed_cases'])} case(s) FAILED: {', '.join(result['failed_cases'])}** (causes below)"]
    if result["skipped"]:
        lines += ["", "## Skipped", ""] + [f"- {s['case']} / {s['variant']}: {s['reason']}" for s in result["skipped"]]
    if result["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in result["notes"]]
    return "\n".join(lines) + "\n"


def write(out_dir: Path, result: dict, rows: list[Row]) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "results.json", "table": out_dir / "table.md"}
    paths["json"].write_text(json.dumps(result, indent=1, default=str))
    paths["table"].write_text(render(result, rows))
    return paths
