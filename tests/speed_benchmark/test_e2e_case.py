"""The end-to-end case (ReKV ingest + answer per variant, long-stream answers) that replaced
frameworks/rekv/gpu_bench.py, and the host-declared speed settings: a host the harness has never heard
of gets e2e rows by declaring `speed_config`; hosts that cannot run a preset are skipped with the reason."""

import math

import pytest

from frameworks import registry
from frameworks.speed import declares_speed_config
from frameworks.toy import build_toy
from speed_benchmark.compose import compose
from speed_benchmark.runner import run

FRAMES, LONG = 4, 12
CPU = ["progress=false", "device=cpu", "plot=false", "vit.enabled=false", "multistream.enabled=false",
       "prefill.enabled=false", "repeats=2", "warmup=1", f"frames={FRAMES}"]


@pytest.fixture(scope="module")
def rekv_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e")
    cfg = compose("tiny", CPU + ["e2e.variants=[baseline,pruner,cacher,stc]", "e2e.intervals=[2]",
                                 "e2e.modes=[eager,graph+fused]", "e2e.frames_per_chunk=[1,2]",
                                 f"e2e.long_frames={LONG}", "e2e.long_variants=[baseline,stc]", "e2e.long_repeats=2",
                                 "e2e.max_new_tokens=3", "+e2e.host_config.n_local=60",
                                 "+e2e.host_config.retrieve_size=3"], out_dir=str(out))
    result, paths = run(cfg, command="pytest")
    return cfg, result, paths


def _by_name(result, case):
    return {r["name"]: r for r in result["rows"] if r["case"] == case}


def test_every_variant_and_chunk_has_a_row_with_its_params(rekv_run):
    cfg, result, _ = rekv_run
    rows = _by_name(result, "e2e")
    k = cfg.stc.tokens_per_frame
    expected = {}
    for c in (1, 2):
        base = {"frames": FRAMES, "frames_per_chunk": c}
        expected[f"baseline rekv c={c}"] = base
        expected[f"pruner rekv c={c}"] = dict(base, k=k)
        expected[f"cacher eager N=2 rekv c={c}"] = dict(base, N=2, r=0.25, fused=False)
        expected[f"stc eager N=2 rekv c={c}"] = dict(base, k=k, N=2, r=0.25, fused=False)
    assert {name: row["params"] for name, row in rows.items()} == expected
    assert {"case": "e2e", "variant": "graph+fused",
            "reason": "CUDA graphs and fused layers need a CUDA device (this is a CPU run)"} in result["skipped"]
    assert result["failed_cases"] == []
    for row in rows.values():  # the host's own time inside the ingest calls, per frame, every pass
        host = [t["host_ms_per_frame"] for t in row["extra"]["host_timings"]]
        assert len(host) == 2 and all(ms > 0 for ms in host)
        # on CPU nothing runs asynchronously: the host time is the whole ingest time (within timer overhead)
        assert min(host) <= max(row["samples"]) * 1.05


def test_rows_ran_the_compression_they_name(rekv_run):
    cfg, result, _ = rekv_run
    rows = _by_name(result, "e2e")
    refs = math.ceil(FRAMES / 2)
    kept = {"baseline": 25, "pruner": cfg.stc.tokens_per_frame, "cacher": 25, "stc": cfg.stc.tokens_per_frame}
    for name, row in rows.items():
        kind = name.split()[0]
        last = row["extra"]["host_timings"][-1]
        assert last["visual_tokens_kept"] == FRAMES * kept[kind], name
        cached = (refs, FRAMES - refs) if kind in ("cacher", "stc") else (0, 0)
        assert (last["vit_reference_frames"], last["vit_selective_frames"]) == cached, name
        assert last["extra"]["frames_per_chunk"] == row["params"]["frames_per_chunk"]
        assert len(row["samples"]) == 2 and row["extra"]["answer_ms"]["n"] == 2
        assert last["extra"]["answers"] == 1 and last["retrieval_ms"] > 0
        if kind != "baseline":
            assert row["baseline"] == f"baseline rekv c={row['params']['frames_per_chunk']}"
            assert 0 < row["theory_fraction"] <= 1 and row["measured_fraction"] > 0
    # theory follows the components: a pruner-only row has no ViT saving, a cacher-only row no pre-fill saving
    assert rows["pruner rekv c=1"]["extra"]["vit_theory_fraction"] == 1.0
    assert rows["cacher eager N=2 rekv c=1"]["extra"]["prefill_theory_fraction"] == 1.0


def test_long_stream_answers(rekv_run):
    cfg, result, _ = rekv_run
    rows = _by_name(result, "long")
    assert set(rows) == {"baseline rekv", "stc eager N=2 rekv"}
    for name, tokens in (("baseline rekv", 25), ("stc eager N=2 rekv", cfg.stc.tokens_per_frame)):
        row = rows[name]
        extra = row["extra"]
        assert extra["blocks"] == LONG and extra["block_tokens"] == tokens
        assert row["params"]["frames"] == LONG and row["params"]["encoded_frames"] == min(LONG, math.ceil(60 / tokens) + 1)
        assert extra["stored_gib"] * 2**30 == LONG * 2 * 2 * 2 * tokens * 16 * 4  # layers, K/V, kv heads, head dim, fp32
        assert len(row["samples"]) == 2 and len(extra["full_answer_ms"]) == 2
        assert 1 <= extra["generated_tokens"] <= 3


def test_table_has_the_ingest_and_long_stream_sections(rekv_run):
    _, _, paths = rekv_run
    text = paths["table"].read_text()
    assert ("| Variant | ms/frame median | min | p90 | host ms/frame | x base | red. | x graph base | theory | eff. | "
            "x floor | ViT ms |") in text
    assert "## (5) Answer latency after a long stream" in text
    assert "| stc eager N=2 rekv | 12 (" in text


def _speedcheck(config, compression):
    """A host the harness does not know: the toy host under another name, declaring its speed settings."""
    return build_toy(config, compression)


@declares_speed_config(_speedcheck)
def _speedcheck_settings(request):
    if request.model_config != "llava_ov_tiny":
        raise ValueError(f"speedcheck only runs the tiny model, not {request.model_config!r}")
    return {"name": f"speedcheck-{request.frames_per_chunk}"}


def _silent(config, compression):
    return build_toy(config, compression)


@pytest.fixture
def test_hosts(monkeypatch):
    """Two extra hosts visible to `frameworks.registry` for one test only (restored afterwards)."""
    known = registry.host_factory
    extra = {"speedcheck": _speedcheck, "speedcheck_silent": _silent}
    monkeypatch.setattr(registry, "host_factory", lambda name: extra[name] if name in extra else known(name))


def test_a_new_host_declares_its_settings_and_gets_e2e_rows(tmp_path, test_hosts):
    cfg = compose("tiny", CPU + ["e2e.host=speedcheck", "e2e.frames_per_chunk=[2]", "e2e.long_frames=8"],
                  out_dir=str(tmp_path))
    result, _ = run(cfg)
    rows = _by_name(result, "e2e")
    assert list(rows) == ["baseline speedcheck c=2", "pruner speedcheck c=2", "stc eager N=4 speedcheck c=2"]
    per_frame = rows["baseline speedcheck c=2"]["extra"]["host_timings"][-1]["visual_tokens_kept"] // FRAMES
    kept = rows["pruner speedcheck c=2"]["extra"]["host_timings"][-1]["visual_tokens_kept"]
    assert kept == FRAMES * min(cfg.stc.tokens_per_frame, per_frame) < FRAMES * per_frame
    assert {"case": "long", "variant": "baseline speedcheck",
            "reason": "host 'speedcheck' has no fill_history(frames): cannot simulate a long stream"} in result["skipped"]


@pytest.mark.parametrize("host, preset, reason", [
    ("speedcheck", "dispider", "preset 'dispider': speedcheck only runs the tiny model, not ''"),
    ("rekv", "dispider", "preset 'dispider': the ReKV host runs LLaVA-OneVision"),
    ("speedcheck_silent", "tiny", "host 'speedcheck_silent' declares no speed_config"),
    ("nohost", "tiny", "host 'nohost' not available: KeyError"),
])
def test_hosts_that_cannot_run_the_preset_are_skipped_with_the_reason(tmp_path, test_hosts, host, preset, reason):
    cfg = compose(preset, CPU + ["frames=2", f"e2e.host={host}", "e2e.frames_per_chunk=[1]", "e2e.modes=[eager]"], out_dir=str(tmp_path))
    result, _ = run(cfg)
    assert [r for r in result["rows"] if r["case"] == "e2e"] == []
    assert [s["reason"][:len(reason)] for s in result["skipped"] if s["case"] == "e2e"] == [reason]


def test_host_mode_sweep_labels_rows_and_compares_with_both_baselines(tmp_path):
    """`e2e.host_modes`: every variant once per host mode (its settings reach the host), ratios vs the
    first mode's baseline (x base) and vs the graph baseline (x graph base)."""
    modes = "+e2e.host_modes={eager:{llm_step:eager,graph_token_stage:false},graph:{}}"
    cfg = compose("tiny", CPU + ["e2e.variants=[baseline,pruner]", "e2e.frames_per_chunk=[2]", "e2e.answer=false",
                                 modes, "+e2e.host_config.n_local=60"], out_dir=str(tmp_path))
    result, _ = run(cfg, command="pytest")
    rows = _by_name(result, "e2e")
    assert set(rows) == {f"{kind} host={mode} rekv c=2" for kind in ("baseline", "pruner") for mode in ("eager", "graph")}
    graph_base = rows["baseline host=graph rekv c=2"]["stats"]["median"]
    eager_base = rows["baseline host=eager rekv c=2"]["stats"]["median"]
    pruner = rows["pruner host=graph rekv c=2"]
    assert {row["params"]["host_mode"] for row in rows.values()} == {"eager", "graph"}
    assert pruner["extra"]["fraction_vs_graph_baseline"] == pytest.approx(pruner["stats"]["median"] / graph_base)
    assert pruner["measured_fraction"] == pytest.approx(pruner["stats"]["median"] / eager_base)
    token_stage = rows["pruner host=graph rekv c=2"]["extra"]["host_timings"][-1]["extra"]["token_stage"]
    assert token_stage is not None  # host settings of the mode reached the host (CPU: never graphed)
