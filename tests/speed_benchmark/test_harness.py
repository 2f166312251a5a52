"""The harness end to end on the tiny preset on CPU: every case runs, the JSON has every field, and the
STC rows really ran the optimised paths (reference/selective counts, tokens recomputed, tokens kept)."""

import json
import math

import pytest

from speed_benchmark.compose import compose
from speed_benchmark.runner import run

ROW_FIELDS = {"case", "name", "method", "mode", "params", "unit", "samples", "stats", "higher_is_better", "baseline",
              "measured_fraction", "theory_fraction", "efficiency", "extra"}
STAT_FIELDS = {"n", "min", "median", "p90", "mean", "std"}
REPEATS, FRAMES, N = 2, 8, 4


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("speed")
    cfg = compose("tiny", [f"repeats={REPEATS}", "warmup=1", f"frames={FRAMES}", f"stc.cache_interval={N}",
                           "multistream.streams=[1,3]", "e2e.frames_per_chunk=[1]", "progress=false", "device=cpu"],
                  out_dir=str(out))
    result, paths = run(cfg, command="pytest")
    return cfg, result, paths


def _rows(result, case, method=None):
    return [r for r in result["rows"] if r["case"] == case and (method is None or r["method"] == method)]


def test_outputs_and_top_level_fields(tiny_run):
    _, result, paths = tiny_run
    assert {"json", "table", "plot"} <= set(paths) and all(p.is_file() for p in paths.values())
    on_disk = json.loads(paths["json"].read_text())
    assert on_disk["schema_version"] == 1 and on_disk["command"] == "pytest"
    for key in ("environment", "config", "model", "rows", "targets", "skipped", "notes", "wall_s", "case_wall_s",
                "started_utc", "complete", "failed_cases", "peaks"):
        assert key in on_disk, key
    env = on_disk["environment"]
    for key in ("device_type", "device_name", "driver", "torch", "transformers", "dtype", "attention"):
        assert key in env, key
    assert env["device_type"] == "cpu" and env["dtype"] == "float32"
    assert on_disk["model"]["vit_tokens"] == 81
    assert "CPU run" in paths["table"].read_text()
    assert on_disk["peaks"] is None and "Peaks measured in this run: n/a (CPU run)." in paths["table"].read_text()
    floors = {r["name"]: r["extra"]["floor"] for r in on_disk["rows"]}
    assert floors["pruner c=1"] is None and floors["baseline eager"]["x_floor"] is None
    assert floors["stc eager N=4"]["flops"] < floors["baseline eager"]["flops"]
    assert {t["id"] for t in on_disk["targets"]} == {
        "vit_graph", "vit_eager", "multistream_8", "prefill",                          # issue 4
        "vit_graphed", "vit_chunk8", "multistream_16", "ingest_c1_ms", "ingest_c8_ms",  # issue 14
        "ingest_vs_eager", "prefill_stage_c8", "first_token_ms"}


def test_every_row_has_every_field_and_all_samples(tiny_run):
    _, result, _ = tiny_run
    assert {r["case"] for r in result["rows"]} >= {"vit", "multistream", "prefill", "pruner"}
    for row in result["rows"]:
        assert set(row) == ROW_FIELDS
        assert set(row["stats"]) == STAT_FIELDS
        assert len(row["samples"]) == REPEATS and row["stats"]["n"] == REPEATS
        assert all(s > 0 for s in row["samples"])
        if row["method"] == "stc" and row["case"] in ("vit", "multistream"):
            assert row["baseline"] and row["theory_fraction"] and row["measured_fraction"] and row["efficiency"]


def test_vit_stc_rows_used_the_selective_path(tiny_run):
    cfg, result, _ = tiny_run
    k = math.floor(81 * cfg.stc.update_ratio)
    by_n = {r["params"]["N"]: r for r in _rows(result, "vit", "stc")}
    assert set(by_n) == {2, 4}
    for n, row in by_n.items():
        refs = math.ceil(FRAMES / n)
        c = row["extra"]["cacher"]
        assert (c["reference_frames"], c["selective_frames"]) == (refs, FRAMES - refs)
        assert c["tokens_recomputed"] == k and c["tokens_per_frame"] == 81
        assert row["extra"]["frame_is_reference"] == [f % n == 0 for f in range(FRAMES)]
        assert row["extra"]["selective_ms"]["n"] == REPEATS * (FRAMES - refs)
    base = _rows(result, "vit", "baseline")
    assert [r["name"] for r in base] == ["baseline eager"]  # no graph rows on CPU ...
    assert any(s["case"] == "vit" and "CUDA" in s["reason"] for s in result["skipped"])  # ... and it says so


def test_multistream_stc_batches_streams(tiny_run):
    _, result, _ = tiny_run
    rows = _rows(result, "multistream", "stc")
    assert sorted((r["params"]["S"], r["params"]["stagger"]) for r in rows) == [(1, False), (1, True), (3, False), (3, True)]
    for row in rows:
        s, frames = row["params"]["S"], row["params"]["frames"]
        phases = range(s) if row["params"]["stagger"] else [0] * s
        # frame 0 of every stream, then frames f with (f - phase) % N == 0
        refs = sum(1 + sum(1 for f in range(1, frames) if (f - p) % N == 0) for p in phases)
        assert row["extra"]["cacher"] == {"reference_frames": refs, "selective_frames": s * frames - refs}
        assert row["unit"] == "frames/s" and row["higher_is_better"]
        assert row["extra"]["call_ms_p90"] >= row["extra"]["call_ms_median"] > 0
        assert row["extra"]["call_ms_p90_steady"] > 0  # without each pass's first (all-reference) call
    table = paths_table(tiny_run)
    for row in rows:  # one line per STC variant, with its per-call latency columns
        assert f"| {row['params']['S']} | {row['name']} |" in table


def paths_table(tiny_run) -> str:
    return tiny_run[2]["table"].read_text()


def test_prefill_rows_prune_to_k(tiny_run):
    cfg, result, _ = tiny_run
    stc = {r["params"]["frames_per_chunk"]: r for r in _rows(result, "prefill", "stc") if r["name"].startswith("stc c=")}
    base = {r["params"]["frames_per_chunk"]: r for r in _rows(result, "prefill", "baseline")}
    assert set(stc) == set(base) == {1, 4, 8}
    for c, row in stc.items():
        assert row["params"]["k"] == cfg.stc.tokens_per_frame and base[c]["params"]["k"] == 25
        assert row["params"]["calls"] == math.ceil(FRAMES / c)
        assert row["extra"]["token_ratio"] == pytest.approx(cfg.stc.tokens_per_frame / 25)
    assert len(_rows(result, "pruner")) == 3


def test_e2e_through_rekv(tiny_run):
    cfg, result, _ = tiny_run
    rows = _rows(result, "e2e")
    assert rows, f"e2e case did not run: {result['skipped']}"
    stc = next(r for r in rows if r["name"].startswith("stc "))
    assert [r["name"] for r in rows] == ["baseline rekv c=1", "pruner rekv c=1", f"stc eager N={N} rekv c=1"]
    assert any(s["case"] == "e2e" and s["variant"] == "graph" for s in result["skipped"])  # no graphs on CPU
    assert stc["params"] == {"frames": FRAMES, "frames_per_chunk": 1, "k": cfg.stc.tokens_per_frame, "N": N,
                             "r": cfg.stc.update_ratio, "fused": False}
    timings = stc["extra"]["host_timings"][-1]
    refs = math.ceil(FRAMES / N)
    assert (timings["vit_reference_frames"], timings["vit_selective_frames"]) == (refs, FRAMES - refs)
    assert timings["visual_tokens_kept"] == FRAMES * cfg.stc.tokens_per_frame
    base = next(r for r in rows if r["method"] == "baseline")["extra"]["host_timings"][-1]
    assert base["vit_selective_frames"] == 0 and base["visual_tokens_kept"] == FRAMES * 25


def test_a_crashing_case_is_recorded_and_the_rest_is_kept(tmp_path, monkeypatch):
    from speed_benchmark import case_e2e, case_prefill

    def boom(ctx, llm, progress):
        raise RuntimeError("CUDA out of memory (simulated)")

    seen = {}

    def e2e_sees_checkpoint(ctx, progress):  # what a run killed during e2e would leave on disk
        seen.update(json.loads((tmp_path / "results.json").read_text()))
        return []

    monkeypatch.setattr(case_prefill, "run", boom)
    monkeypatch.setattr(case_e2e, "run", e2e_sees_checkpoint)
    cfg = compose("tiny", ["repeats=1", "warmup=0", "frames=4", "multistream.enabled=false",
                           "vit.intervals=[2]", "stc.cache_interval=2", "progress=false", "plot=false", "device=cpu"],
                  out_dir=str(tmp_path))
    result, paths = run(cfg)
    assert seen["complete"] is False and {r["case"] for r in seen["rows"]} == {"vit"}
    assert result["complete"] is True
    assert result["failed_cases"] == ["prefill"]
    assert any(s["case"] == "prefill" and "simulated" in s["reason"] for s in result["skipped"])
    assert {r["case"] for r in result["rows"]} == {"vit"}
    assert "1 case(s) FAILED: prefill" in paths["table"].read_text()
    assert json.loads(paths["json"].read_text())["failed_cases"] == ["prefill"]


def test_profile_pass_writes_one_table_per_variant(tmp_path):
    cfg = compose("tiny", ["repeats=1", "warmup=0", "frames=4", "multistream.enabled=false", "e2e.enabled=false",
                           "prefill.enabled=false", "vit.intervals=[2]", "stc.cache_interval=2", "progress=false",
                           "plot=false", "profile=true", "device=cpu"], out_dir=str(tmp_path))
    result, _ = run(cfg)
    names = [r["name"] for r in result["rows"]]
    assert names == ["baseline eager", "stc eager N=2"]
    for row in result["rows"]:
        table = tmp_path / row["extra"]["profile"]["table"]
        assert table.is_file() and "aten::linear" in table.read_text()
        assert (tmp_path / row["extra"]["profile"]["trace"]).is_file()


def test_publish_writes_the_docs_page(tiny_run, tmp_path):
    from speed_benchmark.publish import publish, slug

    _, result, paths = tiny_run
    page = publish(paths["json"].parent, tmp_path)
    text = page.read_text()
    assert page.name == slug(result["environment"]["device_name"]) + ".md"
    assert "pytest" in text and "## Breakdown" in text and "stc eager N=4" in text
    assert (tmp_path / page.name.replace(".md", ".png")).is_file()
    assert slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"


def test_publish_renders_the_tables_from_results_json_not_the_runs_table(tiny_run, tmp_path):
    """A report fix applies to a page published from an older run: the tables come from results.json."""
    import shutil

    from speed_benchmark.publish import publish

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run[2]["json"].parent, run_dir)
    (run_dir / "table.md").write_text("# stale\nSTALE TABLE\n")
    text = publish(run_dir, tmp_path / "docs").read_text()
    assert "STALE TABLE" not in text and "## Paper-style summary" in text and "p90 after the first call" in text


def test_vit_modes_on_cpu_keep_eager_and_say_why_the_rest_is_skipped(tmp_path):
    cfg = compose("tiny", ["repeats=1", "warmup=0", "frames=2", "multistream.enabled=false", "e2e.enabled=false",
                           "prefill.enabled=false", "vit.intervals=[2]", "stc.cache_interval=2", "progress=false",
                           "plot=false", "device=cpu", "vit.modes=[eager,eager+fused,graph+fused]"], out_dir=str(tmp_path))
    result, _ = run(cfg)
    assert [(r["name"], r["mode"]) for r in result["rows"]] == [("baseline eager", "eager"), ("stc eager N=2", "eager")]
    assert [(s["case"], s["variant"]) for s in result["skipped"]] == [("vit", "eager+fused"), ("vit", "graph+fused")]
