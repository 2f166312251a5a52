"""`python -m speed_benchmark preset=llava_ov_7b stc.update_ratio=0.25 stc.cache_interval=4 frames=16 ...`

Hydra app over configs/speed/ (schema `speed_schema` = SpeedConfig). The DictConfig is converted to the
SpeedConfig dataclass here, once.
Any impossible setting ends the run with one line naming the knob (exit status 2). Cases are picked with
`<case>.enabled=false` and sized with their own knobs (configs/speed/speed.yaml lists them).
"""

from __future__ import annotations

import sys

from speed_benchmark.config import SpeedConfigError

CONFIG_PATH = "../configs/speed"


def _fail(error: SpeedConfigError) -> None:
    """A user error: one line naming the knob on stderr, exit status 2 (no traceback)."""
    print(f"speed_benchmark: {error}", file=sys.stderr)
    sys.exit(2)


def _execute(tree: dict, argv: list[str]) -> None:
    from speed_benchmark.config import apply_process_settings, from_mapping
    from speed_benchmark.runner import run

    command = "python -m speed_benchmark " + " ".join(argv)
    try:
        cfg = from_mapping(tree)
        apply_process_settings(cfg)
        result, paths = run(cfg, command)
    except SpeedConfigError as error:
        _fail(error)
    print(paths["table"].read_text())
    print("wrote " + ", ".join(str(p) for p in paths.values()))


def _hydra_main(argv: list[str]) -> None:
    import hydra
    from omegaconf import DictConfig, OmegaConf

    from speed_benchmark.config import register_schemas

    register_schemas()

    @hydra.main(config_path=CONFIG_PATH, config_name="speed", version_base=None)
    def app(dcfg: DictConfig) -> None:
        _execute(OmegaConf.to_container(dcfg, resolve=True), argv)

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
