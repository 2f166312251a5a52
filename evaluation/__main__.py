"""Hydra entry point: `python -m evaluation framework=toy benchmark=ovobench data.root=/data/ovo`.

The composed DictConfig is converted once into `RunConfig` dataclasses here. RANK/WORLD_SIZE (set by
torchrun / accelerate launch) select this process's shard when `shard` is left at 0/1.

Before Hydra takes over, the overrides are composed and validated once (`preflight`), so that a typo,
an override that does not apply, a bad value or a missing model path is ONE line and exit code 2
(`evaluation/cli.py`) rather than Hydra's multi-line report and exit code 1. Multirun sweeps skip the
preflight (their overrides are lists), as does any Hydra flag (--cfg, --config-name, ...); each job still
reports its own errors in one line.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "configs")


def preflight(overrides: list[str]) -> None:
    """Compose and validate the run the way Hydra will; raises the user error, if any."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from evaluation.cli import override_not_applying
    from evaluation.config import to_run_config

    plain = [o for o in overrides if not o.lstrip("+~").startswith("hydra")]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=CONFIG_DIR):
            try:
                cfg = compose(config_name="eval", overrides=plain)
            except Exception:  # a key under a null node (OmegaConf assertion) or a method not selected (struct)
                groups = [o for o in plain if "=" in o and "." not in o.partition("=")[0]]
                message = override_not_applying(compose(config_name="eval", overrides=groups), plain)
                if message is None:
                    raise
                raise ValueError(message) from None
            run = to_run_config(cfg, env=dict(os.environ))
        from evaluation.registry import get_benchmark

        get_benchmark(run.benchmark.name).check(run.benchmark)
    finally:
        GlobalHydra.instance().clear()


def main() -> None:
    import hydra

    from evaluation.cli import user_errors
    from evaluation.config import register_schemas

    argv = sys.argv[1:]
    register_schemas()
    if not any(a.startswith("-") for a in argv):  # flags (--multirun, --cfg, --config-name, ...) go to Hydra as is
        with user_errors():
            preflight(argv)

    @hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
    def _run(cfg) -> None:
        with user_errors():
            _evaluate(cfg)

    _run()


def _evaluate(cfg) -> None:
    from evaluation.config import to_run_config
    from evaluation.report import render
    from evaluation.runner import evaluate

    run = to_run_config(cfg, env=dict(os.environ))
    metrics = evaluate(run)
    if run.num_shards == 1:
        print(render(metrics))
        print(f"wrote {run.output_dir}/metrics.json and report.md")
    else:
        print(f"shard {run.shard_index}/{run.num_shards} done ({metrics['counts']['n']} items); "
              f"when all shards finish: python -m evaluation.merge {run.output_dir}")


if __name__ == "__main__":
    main()
