"""Hydra entry point: `python -m evaluation framework=toy benchmark=ovobench data.root=/data/ovo`.

The composed DictConfig is converted once into `RunConfig` dataclasses here. RANK/WORLD_SIZE (set by
torchrun / accelerate launch) select this process's shard when `shard` is left at 0/1.
"""

from __future__ import annotations

import os
from pathlib import Path

CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "configs")


def main() -> None:
    import hydra

    from evaluation.config import register_schemas, to_run_config
    from evaluation.report import render
    from evaluation.runner import evaluate

    register_schemas()

    @hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
    def _run(cfg) -> None:
        run = to_run_config(cfg, env=dict(os.environ))
        metrics = evaluate(run)
        if run.num_shards == 1:
            print(render(metrics))
            print(f"wrote {run.output_dir}/metrics.json and report.md")
        else:
            print(f"shard {run.shard_index}/{run.num_shards} done ({metrics['counts']['n']} items); "
                  f"when all shards finish: python -m evaluation.merge {run.output_dir}")

    _run()


if __name__ == "__main__":
    main()
