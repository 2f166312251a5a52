"""`python -m stc.audit model=<local HF folder> video=<file> fps=2 [max_frames=..] stc.update_ratio=0.25
stc.cache_interval=4 [stc.refresh=adaptive ...] out=<dir>`: fidelity of STC-Cacher against a full
recompute on a real clip. Writes audit.json, audit.md, audit.png under `out`. A bad key or value ends
the run with one line naming it (exit status 2)."""

from __future__ import annotations

import sys

from stc.audit.cli import AuditArgumentError, parse_args


def run(cfg, command: str):
    import torch

    from stc.audit.inputs import load_tower, preprocess
    from stc.audit.report import write_report
    from stc.audit.runner import audit
    from stc.audit.video import read_frames

    frames, times = read_frames(cfg.video, cfg.fps, cfg.max_frames)
    if len(frames) == 0:
        raise AuditArgumentError(f"video={cfg.video}: no frames at fps={cfg.fps}")
    tower = load_tower(cfg.model, cfg.size, getattr(torch, cfg.dtype), cfg.device)
    units = preprocess(frames, tower)
    result = audit(tower, units, times, cfg.stc, cfg.chunk)
    return result, write_report(result, cfg.out, command, cfg.video)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = "python -m stc.audit " + " ".join(argv)
    try:
        cfg = parse_args(argv)
        result, paths = run(cfg, command)
    except (AuditArgumentError, ValueError) as error:
        print(f"stc.audit: {error}", file=sys.stderr)
        return 2
    s = result.summary()
    print(f"mean cosine {s['mean_cosine']:.4f}  worst frame {s['min_frame_cosine']:.4f} (#{s['worst_frame']})  "
          f"FLOP fraction {s['flop_fraction']:.3f}  references {s['reference_fraction']:.2f}")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
