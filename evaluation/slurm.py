"""Print the SLURM submission of a sharded evaluation: `python -m evaluation.slurm <overrides> shards=8`.

Composes the run with `hydra/launcher=slurm` (configs/hydra/launcher/slurm.yaml) exactly as
`python -m evaluation --multirun hydra/launcher=slurm ...` would, validates it (one-line errors, exit 2),
and prints (1) that multirun command and (2) an equivalent plain sbatch job array with the launcher's
resources, one array task per shard, plus the merge step. Why: the submitit plugin is optional and a
cluster may not have it; this shows what would be submitted, and the sbatch text can be submitted as is.
"""

from __future__ import annotations

import shlex
import sys

from evaluation.cli import user_errors


def submission(overrides: list[str], shards: int) -> str:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from evaluation.__main__ import CONFIG_DIR
    from evaluation.config import register_schemas, to_run_config

    if shards < 1:
        raise ValueError(f"invalid setting shards={shards}: must be >= 1")
    register_schemas()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=CONFIG_DIR):
            cfg = compose(config_name="eval", overrides=[*overrides, "hydra/launcher=slurm"], return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    plain = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    run = to_run_config(plain)  # validates: model path, values, benchmark
    sweep = ",".join(f"{i}/{shards}" for i in range(shards))
    args = " ".join(shlex.quote(o) for o in overrides)
    lines = ["#!/bin/bash",
             "# with the submitit plugin (pip install hydra-submitit-launcher) the same jobs are submitted by:",
             f"#   python -m evaluation --multirun hydra/launcher=slurm {args} shard={sweep}",
             f"#   python -m evaluation.merge {run.output_dir}",
             "# without it, submit this file: sbatch <file>",
             f"#SBATCH --job-name={launcher['name']}",
             f"#SBATCH --array=0-{shards - 1}%{launcher['array_parallelism']}",
             f"#SBATCH --nodes={launcher['nodes']}",
             f"#SBATCH --ntasks-per-node={launcher['tasks_per_node']}",
             f"#SBATCH --gpus-per-node={launcher['gpus_per_node']}",
             f"#SBATCH --cpus-per-task={launcher['cpus_per_task']}",
             f"#SBATCH --mem={launcher['mem_gb']}G",
             f"#SBATCH --time={launcher['timeout_min']}",
             f"#SBATCH --output={launcher['submitit_folder'].replace('%j', '%A_%a')}.out"]
    for key, flag in (("partition", "partition"), ("qos", "qos"), ("account", "account"), ("constraint", "constraint"),
                      ("exclude", "exclude"), ("gres", "gres"), ("comment", "comment")):
        if launcher.get(key):
            lines.append(f"#SBATCH --{flag}={launcher[key]}")
    lines += [f"#SBATCH --{k.replace('_', '-')}={v}" for k, v in (launcher.get("additional_parameters") or {}).items()]
    if launcher.get("setup"):
        lines += list(launcher["setup"])
    lines.append(f"srun python -m evaluation {args} shard=${{SLURM_ARRAY_TASK_ID}}/{shards}")
    lines.append(f"# when every array task has finished: python -m evaluation.merge {run.output_dir}")
    return "\n".join(lines)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    with user_errors():
        shards = [a for a in argv if a.startswith("shards=")]
        count = int(shards[-1].partition("=")[2]) if shards else 8
        print(submission([a for a in argv if not a.startswith("shards=")], count))


if __name__ == "__main__":
    main()
