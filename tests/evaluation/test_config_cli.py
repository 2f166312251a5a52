"""Hydra composition (schema, groups, free-form framework), the SLURM launcher file, and the CLIs."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from evaluation.config import parse_shard, to_run_config


def test_every_benchmark_and_compression_composes(ev):
    for benchmark in ("ovobench", "streamingbench", "mlvu", "egoschema", "videomme"):
        for compression in ("none", "stc", "stc_cacher", "stc_pruner"):
            run = to_run_config(ev.compose([f"benchmark={benchmark}", f"compression={compression}"]))
            assert run.benchmark.name == benchmark and run.compression_name == compression
            assert ("cacher" in run.compression) == (compression in ("stc", "stc_cacher"))
            assert ("pruner" in run.compression) == (compression in ("stc", "stc_pruner"))
            assert run.output_dir == f"results/eval/{benchmark}-toy-{compression}"


def test_benchmark_defaults_record_protocol_fps(ev):
    runs = {b: to_run_config(ev.compose([f"benchmark={b}"])).benchmark for b in ("ovobench", "streamingbench", "mlvu", "videomme")}
    assert runs["ovobench"].fps == 1.0 and runs["streamingbench"].fps == 1.0
    assert runs["mlvu"].fps == 0.5 and runs["mlvu"].chat_template and runs["mlvu"].scoring == "stc_release"
    assert runs["videomme"].scoring == "official"


@pytest.mark.parametrize("override, message", [
    ("benchmark.fsp=1", "fsp"),
    ("compression.cacher.update_ratoi=0.5", "update_ratoi"),
    ("limit=many", "limit"),
])
def test_typos_fail_at_compose(ev, override, message):
    with pytest.raises(Exception, match=message):
        ev.compose(["compression=stc", override])


def test_bad_values_fail_once_with_the_knob_name(ev):
    with pytest.raises(ValueError, match="update_ratio"):
        to_run_config(ev.compose(["compression=stc", "compression.cacher.update_ratio=1.5"]))
    with pytest.raises(ValueError, match="protocol"):
        to_run_config(ev.compose(["protocol=online"]))
    with pytest.raises(ValueError, match="shard"):
        parse_shard("3/2")


def test_framework_group_accepts_host_specific_fields(ev):
    run = to_run_config(ev.compose(["framework.name=rekv", "+framework.model_path=/models/llava", "+framework.n_local=15000"]))
    assert run.framework_name == "rekv" and run.framework["n_local"] == 15000 and run.framework["model_path"] == "/models/llava"


def test_world_size_env_picks_shard(ev):
    run = to_run_config(ev.compose([]), env={"RANK": "3", "WORLD_SIZE": "4"})
    assert (run.shard_index, run.num_shards) == (3, 4)
    explicit = to_run_config(ev.compose(["shard=1/2"]), env={"RANK": "3", "WORLD_SIZE": "4"})
    assert (explicit.shard_index, explicit.num_shards) == (1, 2)


def test_slurm_launcher_config_present_but_optional(ev):
    launcher = yaml.safe_load((ev.REPO / "configs/hydra/launcher/slurm.yaml").read_text())
    assert launcher["_target_"].endswith("submitit_launcher.SlurmLauncher") and launcher["gpus_per_node"] == 1
    ev.compose([])  # the default launcher never needs the submitit plugin


def test_slurm_launcher_composes_and_prints_its_submission(capsys):
    from evaluation.slurm import main

    main(["framework=rekv", "framework.model_path=/models/llava-ov-7b", "benchmark=mlvu", "compression=stc", "shards=4"])
    text = capsys.readouterr().out
    assert text.startswith("#!/bin/bash\n")
    assert "#SBATCH --array=0-3%8" in text and "#SBATCH --gpus-per-node=1" in text and "#SBATCH --mem=96G" in text
    assert "shard=${SLURM_ARRAY_TASK_ID}/4" in text and "framework.model_path=/models/llava-ov-7b" in text
    assert "--multirun hydra/launcher=slurm" in text and "shard=0/4,1/4,2/4,3/4" in text
    assert "python -m evaluation.merge results/eval/mlvu-rekv-stc" in text
    with pytest.raises(SystemExit) as info:
        main(["framework=rekv", "shards=2"])  # no model path: refused like the run itself
    assert info.value.code == 2


def test_reproduction_scripts_use_the_parity_switches(ev):
    env = {**os.environ, "REKV_MODEL": "/m", "DATA": "/d", "BENCHMARKS": "ovobench", "PY": "echo"}
    stc = subprocess.run(["bash", "scripts/rekv_stc.sh"], cwd=ev.REPO, env=env, capture_output=True, text=True, timeout=60)
    assert stc.returncode == 0, stc.stderr
    assert "framework.sink_positions=released" in stc.stdout and "compression.pruner.strategy=gaussian_released" in stc.stdout
    base = subprocess.run(["bash", "scripts/rekv_baseline.sh"], cwd=ev.REPO, env=env, capture_output=True, text=True, timeout=60)
    assert "framework.sink_positions=released" in base.stdout and "gaussian_released" not in base.stdout
    off = subprocess.run(["bash", "scripts/rekv_stc.sh"], cwd=ev.REPO, env={**env, "PARITY": "0"}, capture_output=True, text=True, timeout=60)
    assert "released" not in off.stdout


def _cli(args, cwd):
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_cli_run_merge_and_rescore(ev, data_root, tmp_path):
    root = data_root("streamingbench")
    annotation = ev.FIXTURES / ev.ANNOTATIONS["streamingbench"]
    out = tmp_path / "run"
    common = ["-m", "evaluation", "framework=toy", "benchmark=streamingbench", f"data.root={root}",
              f"benchmark.annotation={annotation}", f"output_dir={out}", "progress=false"]
    for shard in ("0/2", "1/2"):
        done = _cli([*common, f"shard={shard}"], ev.REPO)
        assert done.returncode == 0, done.stderr
        assert "python -m evaluation.merge" in done.stdout
    merged = _cli(["-m", "evaluation.merge", str(out)], ev.REPO)
    assert merged.returncode == 0, merged.stderr
    assert "| Total (micro, unanswered counted wrong) | 60.00 |" in merged.stdout
    rescored = _cli(["-m", "evaluation.score", "benchmark=streamingbench", f"file={out / 'predictions.jsonl'}", "scoring=stc_release"], ev.REPO)
    assert rescored.returncode == 0, rescored.stderr
    assert "| scoring | stc_release |" in rescored.stdout and "| fps | 1.0 |" in rescored.stdout
    upstream = _cli(["-m", "evaluation.score", "benchmark=streamingbench",
                     f"file={ev.FIXTURES / 'streamingbench/real_output_mini.json'}", f"out={tmp_path / 'up'}"], ev.REPO)
    assert upstream.returncode == 0, upstream.stderr
    metrics = json.loads((tmp_path / "up" / "metrics.json").read_text())
    # " C" ok, "A. A kettle." ok, "" unanswered, ["B", ...] ok, missing key -> unanswered: 3 / 5
    assert metrics["headline"]["Total (micro, unanswered counted wrong)"] == pytest.approx(60.0)
    assert metrics["counts"]["unanswered"] == 2


def test_ovobench_upstream_result_file(ev):
    from evaluation.score import rescore

    metrics = rescore({"benchmark": "ovobench", "file": str(ev.FIXTURES / "ovo_bench/rekv_results_mini.json")})
    tasks = {r["task"]: r for r in metrics["tables"]["per task"]}
    # EPM: "D"/D ok, None; STU: "The answer is A" ok (substring), "C"/B; REC: "1", "2 times", "1 or 2"->"12"; SSR: "Y" ok, "Yes"/No
    assert (tasks["EPM"]["correct"], tasks["EPM"]["unanswered"]) == (1, 1)
    assert tasks["STU"]["correct"] == 1 and tasks["REC"]["correct"] == 2 and tasks["SSR"]["correct"] == 1
    assert metrics["headline"]["Forward Active Responding"] == pytest.approx((200 / 3 + 50) / 2)


def test_rekv_framework_group_composes_with_its_own_fields(ev):
    run = to_run_config(ev.compose(["framework=rekv", "compression=stc", "framework.n_local=2000", "framework.random_weights=true"]),
                        env={"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})
    assert run.framework_name == "rekv" and run.framework["n_local"] == 2000
    assert run.framework["device"] == "cuda:0" and run.output_dir == "results/eval/ovobench-rekv-stc"
