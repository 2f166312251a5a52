"""Decode throughput and host idle time of the evaluation loop, with and without background decoding.

    python -m evaluation.decode_bench --out /tmp/decode [--minutes 5 --videos 3 --size 640x360 --native-fps 30]
    python -m evaluation.decode_bench --host rekv --out $OUT/decode    # GPU: ReKV random weights, released size

Synthesizes long videos in a temporary folder (evaluation.synthetic: PyAV, else OpenCV, else ffmpeg; never kept), writes
a StreamingBench-style annotation with questions spread over each video, and runs the real runner twice:
`prefetch=0` (decode in the main thread, the old behaviour) and `prefetch=N` (background thread). The host
is either `sleep` (CPU stand-in for a GPU host: it holds each frame for --host-ms while releasing the GIL,
as a thread waiting on CUDA does) or the ReKV host at the released size with random weights (GPU).
Reported: frames decoded per second of decode time, total host idle time waiting for frames
(`decode_wait_ms` summed over items, the same number every report shows), and wall time.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from evaluation import synthetic


def write_annotation(root: Path, videos: int, seconds: float, questions: int) -> Path:
    """StreamingBench schema, every video named long_<v>.mp4 (see evaluation.synthetic)."""
    path = synthetic.write_annotation(root, videos, seconds, questions)
    path.write_text(path.read_text().replace("synthetic_", "long_"))
    return path


class SleepHost:
    """CPU stand-in for a GPU host: `host_ms` per ingested frame, spent in time.sleep (GIL released)."""

    name = "sleep"
    supports_incremental = True

    def __init__(self, host_ms: float):
        from frameworks.protocol import StageTimings

        self.host_ms, self._timings_cls = host_ms, StageTimings
        self.reset()

    def reset(self) -> None:
        self.timings = self._timings_cls()

    def ingest(self, frames, timestamps) -> None:
        time.sleep(self.host_ms * len(timestamps) / 1000.0)
        self.timings.frames += len(timestamps)

    def answer(self, query) -> str:
        return "A"


def run_once(root: Path, annotation: Path, out: Path, prefetch: int, host, size: tuple[int, int]) -> dict:
    from evaluation.config import BenchmarkConfig, DataConfig, RunConfig, VideoConfig
    from evaluation.runner import evaluate

    run = RunConfig(framework_name=host.name, framework={"name": host.name},
                    benchmark=BenchmarkConfig(name="streamingbench", annotation=str(annotation), fps=1.0),
                    data=DataConfig(root=str(root)), video=VideoConfig(height=size[1], width=size[0]),
                    output_dir=str(out), progress=False, prefetch=prefetch)
    started = time.perf_counter()
    metrics = evaluate(run, host=host, log=lambda *_: None)
    wall = time.perf_counter() - started
    cost = metrics["cost"]
    return {"prefetch": prefetch, "items": metrics["counts"]["n"], "errors": metrics["counts"]["errors"],
            "frames": cost["frames_ingested"], "wall_s": wall, "host_idle_s": cost["decode_wait_ms"] / 1000.0,
            "host_busy_s": wall - cost["decode_wait_ms"] / 1000.0}


def measure_decode_fps(path: Path, size: tuple[int, int]) -> float:
    """Frames per second of the decoder alone on one video (1 fps grid, as the runs use)."""
    from evaluation.video import VideoSource

    source = VideoSource(path, 1.0, size[1], size[0])
    positions = list(range(len(source.indices)))
    started = time.perf_counter()
    for i in range(0, len(positions), 128):
        source.read(positions[i:i + 128])
    return len(positions) / (time.perf_counter() - started)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--videos", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--native-fps", type=int, default=30)
    parser.add_argument("--size", default="640x360", help="synthesized size WxH")
    parser.add_argument("--decode-size", default="384x384", help="decode size WxH (video.width/height)")
    parser.add_argument("--questions", type=int, default=10, help="questions per video")
    parser.add_argument("--host", choices=("sleep", "rekv"), default="sleep")
    parser.add_argument("--host-ms", type=float, default=30.0, help="sleep host: ms per frame")
    parser.add_argument("--prefetch", type=int, default=2)
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    decode = tuple(int(v) for v in args.decode_size.split("x"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="decode-bench-") as tmp:
        root = Path(tmp)
        seconds = args.minutes * 60
        started = time.perf_counter()
        writers = {synthetic.make_video(root / f"videos/long_{v}.mp4", seconds, args.native_fps, width, height) for v in range(args.videos)}
        synth_s = time.perf_counter() - started
        annotation = write_annotation(root, args.videos, seconds, args.questions)
        decode_fps = measure_decode_fps(root / "videos/long_0.mp4", decode)
        if args.host == "rekv":
            from frameworks.registry import build_host

            make_host = lambda: build_host("rekv", {"preset": "7b", "dtype": "bfloat16", "device": "auto"})  # noqa: E731
        else:
            make_host = lambda: SleepHost(args.host_ms)  # noqa: E731
        host = make_host()  # one host for both runs (a 7B build takes a while); it resets per video
        rows = [run_once(root, annotation, root / f"run-{p}", p, host, decode) for p in (0, args.prefetch)]
    result = {"settings": vars(args), "writer": sorted(writers), "synth_s": synth_s,
              "decoder_fps_1fps_grid": decode_fps, "runs": rows}
    (out / "decode_bench.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"decode bench: {args.videos} videos x {args.minutes} min, {width}x{height} @ {args.native_fps} fps "
             f"(written with {', '.join(sorted(writers))}), decoded at {decode[0]}x{decode[1]}, 1 fps; host={args.host}"
             + (f" ({args.host_ms} ms/frame)" if args.host == "sleep" else ""),
             f"decoder alone: {decode_fps:.1f} sampled frames/s", "",
             "| prefetch | items | frames | wall s | host idle s (waiting for frames) | idle share |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['prefetch']} | {r['items']} | {r['frames']} | {r['wall_s']:.1f} | {r['host_idle_s']:.1f} | "
                     f"{100 * r['host_idle_s'] / r['wall_s']:.0f}% |")
    text = "\n".join(lines) + "\n"
    (out / "decode_bench.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
