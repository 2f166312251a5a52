"""`python -m speed_benchmark preset=llava_ov_7b stc.update_ratio=0.25 stc.cache_interval=4 frames=16 ...`

Hydra app over configs/speed/ (schema `speed_schema` = SpeedConfig). The DictConfig is converted to the
SpeedConfig dataclass here, once.
Any impossible setting ends the run with one line naming the knob (exit status 2).
"""

from __future__ import annotations

import sys

from speed_benchmark.config import SpeedConfig, SpeedConfigError

CONFIG_PATH = "../configs/speed"


def _execute(cfg: SpeedConfig, argv: list[str]) -> None:
    from speed_benchmark.config import apply_process_settings
    from speed_benchmark.runner import run

    apply_process_settings(cfg)
    command = "python -m speed_benchmark " + " ".join(argv)
    try:
        result, paths = run(cfg, command)
    except SpeedConfigError as error:
        sys.exit(f"speed_benchmark: {error}")
    print(paths["table"].read_text())
    print("wrote " + ", ".join(str(p) for p in paths.values()))


def _hydra_main(argv: list[str]) -> None:
    import hydra
    from omegaconf import DictConfig, OmegaConf

    from speed_benchmark.config import from_mapping, register_schemas

    register_schemas()

    @hydra.main(config_path=CONFIG_PATH, config_name="speed", version_base=None)
    def app(dcfg: DictConfig) -> None:
        _execute(from_mapping(OmegaConf.to_container(dcfg, resolve=True)), argv)

    app()


def main() -> None:
    argv = sys.argv[1:]
    try:
        import hydra  # noqa: F401
    except ImportError:
        sys.exit("speed_benchmark needs hydra-core: pip install -e '.[eval]' (GPU images: carry the wheels, docs/speed/README.md)")
    _hydra_main(argv)


if __name__ == "__main__":
    main()
