"""Paper tables (`python -m evaluation.tables`) and Pareto plots (`python -m evaluation.pareto`).

Planted metrics.json / results.json values must land in the right cell with the right difference to the
paper; rows naming hosts or methods this checkout lacks render as "–" with their command; a dry table is
filled end to end by real toy-host runs composed from the plan's own Hydra overrides.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import yaml

from evaluation.tables.__main__ import run as tables_cli
from evaluation.tables.collect import fill
from evaluation.tables.plan import eval_runs, shell_plan
from evaluation.tables.spec import list_tables, load_spec, spec_from_mapping

SPEC = {
    "name": "demo",
    "title": "Demo table",
    "source": "test",
    "framework": "toy",
    "benchmarks": {"ovobench": ["benchmark.tasks=[EPM,STU,REC]"]},
    "columns": [
        {"id": "epm", "title": "EPM", "benchmark": "ovobench", "table": "per task", "where": {"task": "EPM"}},
        {"id": "mlvu", "title": "MLVU", "benchmark": "mlvu", "headline": ["Overall (micro)"]},
        {"id": "avg", "title": "Avg", "mean_of": ["epm", "mlvu"]},
    ],
    "rows": [
        {"id": "base", "title": "Baseline", "compression": "none", "paper": {"epm": 50.0, "mlvu": 68.6, "avg": 59.3}},
        {"id": "stc_k4", "title": "+ STC k=4", "compression": ["stc_cacher", "stc_pruner"],
         "overrides": ["compression.pruner.tokens_per_frame=4", "compression.cacher.reuse=mlp"], "paper": {"mlvu": 60.0}},
    ],
}


def write_spec(tmp_path: Path, spec: dict) -> Path:
    path = tmp_path / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True))
    return path


def plant(run_dir: Path, headline: dict, tables: dict | None = None, settings: dict | None = None) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.json").write_text(json.dumps({"settings": settings or {}, "headline": headline,
                                                      "tables": tables or {}, "counts": {"n": 7}}))


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    rows = list(csv.reader(io.StringIO(path.read_text())))
    header = rows[0]
    out = {}
    for row in rows[1:]:
        cells, seen = {}, {}
        for name, value in zip(header, row):  # "Δ" repeats: number them per metric
            seen[name] = seen.get(name, 0) + 1
            cells[name if name != "Δ" else f"Δ{seen[name]}"] = value
        out[row[0]] = cells
    return out


def test_planted_values_land_in_their_cells_with_the_paper_difference(tmp_path):
    spec_path = write_spec(tmp_path, SPEC)
    results = tmp_path / "eval"
    plant(results / "ovobench-toy-none", {"Overall (mean of categories)": 10.0},
          {"per task": [{"task": "STU", "accuracy": 11.0}, {"task": "EPM", "accuracy": 52.25}]},
          {"framework": "toy", "benchmark": "ovobench", "compression": "none"})
    plant(results / "mlvu-toy-none", {"M-Avg (mean of types)": 1.0, "Overall (micro)": 61.2})
    plant(results / "mlvu-toy-stc_k4", {"Overall (micro)": 60.0},
          settings={"compression_settings": {"pruner.tokens_per_frame": 4, "cacher.reuse": "mlp"}})
    text = tables_cli([f"table={spec_path}", f"results={results}", f"out={tmp_path / 'out'}", "speed=" + str(tmp_path / "s")])
    cells = read_csv(tmp_path / "out" / "demo.csv")
    base, stc = cells["base"], cells["stc_k4"]
    assert (base["EPM"], base["EPM (paper)"], base["Δ1"]) == ("52.2", "50.0", "+2.2")   # 52.25 - 50.0 = 2.25
    assert (base["MLVU"], base["MLVU (paper)"], base["Δ2"]) == ("61.2", "68.6", "-7.4")
    assert (base["Avg"], base["Avg (paper)"], base["Δ3"]) == ("56.7", "59.3", "-2.6")  # (52.25 + 61.2) / 2 = 56.725
    assert (stc["MLVU"], stc["Δ2"]) == ("60.0", "±0.0")
    # not run -> "–"; a paper number the spec does not give -> "n/a (not in spec)"; no mean over a missing part
    assert (stc["EPM"], stc["EPM (paper)"], stc["Δ1"]) == ("–", "n/a (not in spec)", "–")
    assert (stc["Avg"], stc["Avg (paper)"]) == ("–", "n/a (not in spec)")
    md = (tmp_path / "out" / "demo.md").read_text()
    assert "| Baseline | 52.2 | 50.0 | +2.2 | 61.2 | 68.6 | -7.4 | 56.7 | 59.3 | -2.6 |" in md
    assert f"RUN_NAME=ovobench-toy-stc_k4 bash scripts/eval_benchmark.sh ovobench toy '[stc_cacher,stc_pruner]'" in md
    assert "++compression.name=stc_k4" in md and "++compression.cacher.reuse=mlp" in md and "'benchmark.tasks=[EPM,STU,REC]'" in md
    assert text.startswith("# Demo table")


def test_run_with_other_settings_is_flagged_not_silently_used(tmp_path):
    spec_path = write_spec(tmp_path, SPEC)
    results = tmp_path / "eval"
    plant(results / "mlvu-toy-stc_k4", {"Overall (micro)": 55.0},
          settings={"framework": "toy", "compression_settings": {"pruner.tokens_per_frame": 8, "cacher.reuse": "mlp"}})
    (results / "ovobench-toy-stc_k4").mkdir()
    (results / "ovobench-toy-stc_k4" / "metrics.json").write_text("{ truncated")
    tables_cli([f"table={spec_path}", f"results={results}", f"out={tmp_path}"])
    cells = read_csv(tmp_path / "demo.csv")["stc_k4"]
    assert cells["MLVU"] == "55.0†" and cells["EPM"] == "–"
    md = (tmp_path / "demo.md").read_text()
    assert "pruner.tokens_per_frame=8 (row: 4)" in md
    assert "| unreadable |" in md and "metrics.json: unreadable" in md


def test_unregistered_host_and_method_show_dash_with_command_never_crash(tmp_path):
    spec = dict(SPEC, rows=[
        {"id": "sf", "title": "A host not in this checkout", "framework": "nohost", "compression": "none", "paper": {"mlvu": 1.0}},
        {"id": "nomethod", "title": "+ a method not in this checkout", "compression": "nomethod"},
    ])
    spec_path = write_spec(tmp_path, spec)
    results = tmp_path / "eval"
    plant(results / "mlvu-nohost-none", {"Overall (micro)": 70.0})  # a run made elsewhere is still read
    tables_cli([f"table={spec_path}", f"results={results}", f"out={tmp_path}"])
    cells = read_csv(tmp_path / "demo.csv")
    assert cells["sf"]["MLVU"] == "70.0" and cells["sf"]["EPM"] == "–"
    assert all(cells["nomethod"][c] == "–" for c in ("EPM", "MLVU", "Avg"))
    md = (tmp_path / "demo.md").read_text()
    assert "framework 'nohost' is not registered in this checkout" in md
    assert "compression 'nomethod' has no configs/compression/nomethod.yaml" in md
    assert "RUN_NAME=mlvu-toy-nomethod bash scripts/eval_benchmark.sh mlvu toy nomethod" in md
    plan = shell_plan(load_spec(spec_path), results, tmp_path / "s")
    assert "SKIP nomethod / mlvu" in plan and "done: sf / mlvu" in plan
    assert "scripts/eval_benchmark.sh" not in plan  # nothing runnable: sf/ovobench is unregistered too


@pytest.mark.parametrize("table", list_tables())
def test_every_paper_table_renders_and_plans_without_runs(tmp_path, table):
    out = tables_cli([f"table={table}", f"results={tmp_path / 'e'}", f"speed={tmp_path / 's'}", f"out={tmp_path}"])
    assert (tmp_path / f"{table}.csv").is_file() and "wrote" in out
    spec = load_spec(table)
    assert sum(r.id in out or r.title in out for r in spec.rows) == len(spec.rows)
    tables_cli([f"table={table}", "action=plan"])


def test_published_numbers_match_the_spec_notes():
    """Spot-check transcription against stc-method.md / baselines-peers.md (numbers typed from the spec)."""
    main = load_spec("rekv_main")
    paper = {r.id: r.paper for r in main.rows}
    assert paper["rekv"]["ovo_fw"] == 52.6 and paper["stc_paper"]["sb"] == 65.2 and paper["vidcom2"]["mlvu"] == 67.1
    assert paper["stc_pruner_k49"]["ovo_rt"] is None and "ego" not in paper["stc_paper"]
    reuse = {r.id: r.paper for r in load_spec("cacher_reuse").rows}
    assert reuse["reuse_attention"] == {"epm": 2.7, "stu": 2.3, "rec": 5.3, "ego": 26.2}
    assert {r.id: r.paper.get("avg") for r in load_spec("cache_interval").rows}["interval_inf"] == 33.5
    assert all(v is None for r in load_spec("update_ratio").rows for v in r.paper.values())


def test_spec_errors_name_the_field(tmp_path):
    bad = dict(SPEC, rows=[{"id": "x", "compression": "none", "paper": {"nope": 1.0}}])
    with pytest.raises(ValueError, match=r"rows\[0\]\.paper\.nope: no column"):
        spec_from_mapping(bad)
    with pytest.raises(ValueError, match=r"columns\[0\]: needs exactly one of"):
        spec_from_mapping(dict(SPEC, columns=[{"id": "a", "benchmark": "mlvu", "headline": ["x"], "speed": "vit"}]))
    with pytest.raises(ValueError, match="table=nope: no table spec"):
        load_spec("nope")


def _speed_results(vit_stc: float, prefill_stc: float) -> dict:
    def row(name, case, method, unit, median, frames, baseline=None, fraction=None):
        return {"case": case, "name": name, "method": method, "unit": unit, "params": {"frames": frames},
                "stats": {"median": median}, "baseline": baseline, "measured_fraction": fraction}

    return {"complete": True, "rows": [
        row("baseline eager", "vit", "baseline", "ms/frame", 6.0, 16),
        row("stc eager N=2", "vit", "stc", "ms/frame", vit_stc, 16, "baseline eager", vit_stc / 6.0),
        row("baseline c=1", "prefill", "baseline", "ms", 480.0, 16),
        row("stc+pruner c=1", "prefill", "stc", "ms", prefill_stc, 16, "baseline c=1", prefill_stc / 480.0),
    ]}


def test_latency_table_reads_speed_results_and_names_missing_harness_rows(tmp_path):
    spec = load_spec("latency")
    speed = tmp_path / "speed"
    from evaluation.tables.plan import speed_run

    stc_row = next(r for r in spec.rows if r.id == "stc_paper")
    run_dir = speed_run(stc_row, speed).run_dir
    assert run_dir == speed_run(next(r for r in spec.rows if r.id == "rekv"), speed).run_dir  # one shared run
    run_dir.mkdir(parents=True)
    (run_dir / "results.json").write_text(json.dumps(_speed_results(vit_stc=4.5, prefill_stc=264.0)))
    k49_dir = speed_run(next(r for r in spec.rows if r.id == "tome"), speed).run_dir  # shared by ToMe .. STC-Pruner
    tables_cli(["table=latency", f"speed={speed}", f"out={tmp_path}"])
    md = (tmp_path / "latency.md").read_text()
    assert f"+ ToMe / speed (needs ToMe variants in the speed harness):\n  `python -m speed_benchmark preset=llava_ov_7b frames=16 stc.tokens_per_frame=49" in md
    k49_dir.mkdir(parents=True)
    (k49_dir / "results.json").write_text(json.dumps(_speed_results(vit_stc=4.5, prefill_stc=250.0)))
    tables_cli(["table=latency", f"speed={speed}", f"out={tmp_path}"])
    cells = read_csv(tmp_path / "latency.csv")
    stc, base = cells["stc_paper"], cells["rekv"]
    assert (base["ViT Enc. ms"], base["Δ1"]) == ("96.0", "-7.7")           # 6.0 ms x 16 = 96.0 vs 103.7
    assert (stc["ViT Enc. ms"], stc["ViT change %"], stc["Δ2"]) == ("72.0", "-25.0", "-0.5")  # 4.5/6 - 1 vs -24.5
    assert (stc["LLM Pre-fill ms"], stc["Pre-fill change %"], stc["Δ4"]) == ("264.0", "-45.0", "+0.3")
    assert base["ViT change %"] == "0.0" and base["ViT change % (paper)"] == "n/a (not in spec)"
    assert cells["tome"]["ViT Enc. ms"] == "–" and cells["stc_pruner_k49"]["LLM Pre-fill ms"] == "250.0"
    md = (tmp_path / "latency.md").read_text()
    assert "none of the harness rows ['tome eager'] in results.json (needs ToMe variants in the speed harness)" in md


def test_dry_table_from_real_toy_runs_composed_from_the_plan(tmp_path, ev, data_root):
    """The plan's Hydra overrides (compression list, ++compression.name, compression.cacher.reuse=mlp,
    output_dir) compose and run; the table then shows the runs' real numbers in the right cells."""
    from evaluation.config import to_run_config
    from evaluation.runner import evaluate

    spec = dict(SPEC, benchmarks={"mlvu": [f"benchmark.annotation={ev.FIXTURES / ev.ANNOTATIONS['mlvu']}", "progress=false"]},
                columns=[c for c in SPEC["columns"] if c["id"] == "mlvu"],
                rows=[dict(r, paper={"mlvu": r["paper"]["mlvu"]}) for r in SPEC["rows"]])
    spec_path = write_spec(tmp_path, spec)
    root = data_root("mlvu")
    results = tmp_path / "eval"
    runs = eval_runs(load_spec(spec_path), results, data=str(root.parent))
    assert [r.run_name for r in runs] == ["mlvu-toy-none", "mlvu-toy-stc_k4"]
    (root.parent / "mlvu").symlink_to(root, target_is_directory=True)
    for run in runs:
        metrics = evaluate(to_run_config(ev.compose(list(run.overrides))))
        assert Path(to_run_config(ev.compose(list(run.overrides))).output_dir) == run.run_dir
        assert metrics["settings"]["compression"] == run.run_name.split("-")[-1]
    filled = fill(load_spec(spec_path), results, tmp_path / "s")
    stc_settings = next(r for r in filled.runs if r.row.id == "stc_k4").settings
    assert stc_settings["stc_k_tokens_per_frame"] == 4 and stc_settings["compression_settings"]["cacher.reuse"] == "mlp"
    tables_cli([f"table={spec_path}", f"results={results}", f"out={tmp_path}"])
    cells = read_csv(tmp_path / "demo.csv")
    # toy host on the MLVU fixture: plotQA grey 96 -> B, count grey 224 -> D; 2 of 3 gold letters match
    assert cells["base"]["MLVU"] == "66.7" and cells["base"]["Δ1"] == "-1.9"   # 66.67 - 68.6
    assert cells["stc_k4"]["MLVU"] == "66.7" and cells["stc_k4"]["Δ1"] == "+6.7"
    md = (tmp_path / "demo.md").read_text()
    assert "N=2, r=0.25, k=4" in md and "cacher.reuse=mlp" in md and "66.7†" not in md and "differs:" not in md


def test_pareto_front_and_paper_points(tmp_path):
    from evaluation.pareto import run as pareto_cli

    results = tmp_path / "eval"
    for name, acc, keep, N in (("a", 60.0, 0.25, 2), ("b", 65.0, 0.5, 2), ("c", 59.0, 0.5, 4)):
        plant(results / name, {"Overall (micro)": acc}, settings={"benchmark": "mlvu", "compression": name,
              "stc_N_cache_interval": N, "stc_r_update_ratio": 0.25})
        metrics = json.loads((results / name / "metrics.json").read_text())
        metrics["cost"] = {"visual_token_keep_ratio": keep, "frames": 10, "vit_ms": 10.0 * keep, "prefill_ms": 5.0}
        (results / name / "metrics.json").write_text(json.dumps(metrics))
    text = pareto_cli([f"results={results}", f"out={tmp_path / 'p'}", "x=tokens_kept"])
    assert "mlvu: 3 runs, 2 on the front, 5 paper points" in text      # c (59 at 0.5) is dominated by b and a
    rows = list(csv.DictReader((tmp_path / "p" / "pareto-tokens_kept.csv").open()))
    assert {r["label"].split()[0]: r["on_front"] for r in rows if r["source"] != "paper"} == {"a": "1", "b": "1", "c": "0"}
    assert {"paper: + STC-Pruner": ("0.25", "67.6")}.items() <= {r["label"]: (r["tokens_kept"], r["accuracy"]) for r in rows}.items()
    assert (tmp_path / "p" / "pareto-mlvu-tokens_kept.png").stat().st_size > 1000
    text = pareto_cli([f"results={results}", f"out={tmp_path / 'p'}", "x=latency"])
    lat = {r["label"]: float(r["latency"]) for r in csv.DictReader((tmp_path / "p" / "pareto-latency.csv").open())}
    assert lat["a (N=2, r=0.25)"] == pytest.approx((2.5 + 5.0) / 10)           # (vit + prefill) / frames
    assert lat["paper: ReKV"] == pytest.approx((103.7 + 482.4) / 16, abs=1e-3)   # csv keeps 6 digits


@pytest.mark.slow
def test_table_script_runs_missing_runs_then_skips_them(tmp_path, ev, data_root):
    """scripts/table_common.sh end to end: the plan's eval + speed-harness commands run (toy host, tiny
    preset), the table gets their real numbers, and a second call skips both finished runs."""
    import os
    import subprocess
    import sys

    annotation = ev.FIXTURES / ev.ANNOTATIONS["mlvu"]
    speed = {"preset": "tiny", "overrides": ["frames=4", "repeats=1", "warmup=0", "multistream.enabled=false", "e2e.enabled=false",
                                             "prefill.frames_per_chunk=[1]", "vit.intervals=[2]", "plot=false", "progress=false"],
             "rows": {"vit": ["stc eager N=2"], "prefill": ["stc+pruner c=1"]}}
    spec = {"name": "script_demo", "framework": "toy", "benchmarks": {"mlvu": [f"benchmark.annotation={annotation}", "progress=false"]},
            "columns": [{"id": "mlvu", "title": "MLVU", "benchmark": "mlvu", "headline": ["Overall (micro)"]},
                        {"id": "vit", "title": "ViT change %", "speed": "vit", "quantity": "reduction_pct"},
                        {"id": "pre", "title": "Pre-fill ms", "speed": "prefill", "quantity": "total_ms", "digits": 3}],
            "rows": [{"id": "none", "title": "Toy", "compression": "none", "paper": {"mlvu": 60.0}, "speed": speed}]}
    spec_path = write_spec(tmp_path, spec)
    data = data_root("mlvu").parent
    (data / "mlvu").symlink_to(data_root("mlvu"), target_is_directory=True)
    env = {**os.environ, "PY": sys.executable, "PYTHONPATH": str(ev.REPO), "DATA": str(data), "NGPU": "1",
           "RESULTS": str(tmp_path / "eval"), "SPEED": str(tmp_path / "speed"), "OUT": str(tmp_path / "tables")}
    script = f"source scripts/table_common.sh; run_table {spec_path}"
    first = subprocess.run(["bash", "-c", script], cwd=ev.REPO, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    cells = read_csv(tmp_path / "tables" / "script_demo.csv")["none"]
    results = json.loads(next((tmp_path / "speed").glob("tiny-*/results.json")).read_text())
    stc_vit = next(r for r in results["rows"] if r["name"] == "stc eager N=2")
    prefill = next(r for r in results["rows"] if r["name"] == "stc+pruner c=1")
    assert cells["MLVU"] == "66.7" and cells["Δ1"] == "+6.7"
    assert cells["ViT change %"] == f"{100 * (stc_vit['measured_fraction'] - 1):.1f}"
    assert cells["Pre-fill ms"] == f"{prefill['stats']['median']:.3f}"
    second = subprocess.run(["bash", "-c", script], cwd=ev.REPO, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "done: none / mlvu" in second.stdout and "done: speed" in second.stdout and "== " not in second.stdout


def test_every_runnable_row_of_the_paper_specs_composes(ev):
    """Each spec row this checkout can run composes into a valid RunConfig with the row's settings and
    output folder (catches a misspelt knob in a YAML before a GPU job does)."""
    from evaluation.config import to_run_config

    checked = 0
    for table in list_tables():
        for run in eval_runs(load_spec(table), "results/eval"):
            if run.unavailable:
                continue
            config = to_run_config(ev.compose(list(run.overrides)))
            assert Path(config.output_dir) == run.run_dir and config.compression.label == run.run_name.split("-", 2)[2]
            settings = config.compression.settings()
            for override in run.row.overrides:
                key, _, value = override.partition("=")
                assert settings[key.removeprefix("compression.")] == yaml.safe_load(value), (table, run.row.id, key)
            checked += 1
    assert checked >= 40


def test_parity_rows_get_the_released_switches():
    from evaluation.tables.spec import load_spec

    spec = load_spec("rekv_main").with_parity()
    by_compression = {row.compression: row for row in spec.rows}
    stc_row = by_compression[("stc_cacher", "stc_pruner")]
    assert "framework.sink_positions=released" in stc_row.overrides
    assert "compression.pruner.strategy=gaussian_released" in stc_row.overrides
    none_row = next(row for row in spec.rows if row.compression == ("none",))
    assert not any("pruner" in o for o in none_row.overrides)
    assert by_compression  # every row kept
    anchors = load_spec("pruner_anchors").with_parity()
    assert all(sum("pruner.strategy" in o for o in row.overrides) <= 1 for row in anchors.rows)


@pytest.mark.parametrize("module, args", [("evaluation.tables", ["table=nope"]), ("evaluation.pareto", ["bogus=1"])])
def test_table_and_pareto_user_errors_are_one_line_exit_2(monkeypatch, capsys, module, args):
    import importlib
    import sys

    monkeypatch.setattr(sys, "argv", [module, *args])
    main = importlib.import_module(module if module.endswith("pareto") else module + ".__main__").main
    with pytest.raises(SystemExit) as info:
        main()
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert info.value.code == 2 and len(err) == 1 and err[0].startswith("error: ") and args[0].split("=")[0] in err[0]
