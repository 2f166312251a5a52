"""Synthetic videos + a StreamingBench-schema annotation for pipeline runs without benchmark data.

    python -m evaluation.synthetic --root /tmp/synth --videos 6 --seconds 60 --questions 50

Used by scripts/gpu/eval_two_gpu.sh (sharded vs single-GPU parity) and evaluation.decode_bench. Videos
are moving gradients (not constant, so decoders and the STC-Cacher do real work), written with PyAV,
else OpenCV (opencv-python-headless), else the ffmpeg CLI: the GPU machines lack some of them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np


def make_video(path: Path, seconds: float, native_fps: int, width: int, height: int, seed: int = 0) -> str:
    """Write one clip; returns the writer used ("pyav" | "opencv" | "ffmpeg")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = int(seconds * native_fps)
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
    tint = np.random.default_rng(seed).uniform(0.3, 1.0, size=3).astype(np.float32)

    def frame(i: int) -> np.ndarray:
        return ((x + y + (i * 4) % 256) % 256 * tint).astype(np.uint8)

    try:
        import av

        with av.open(str(path), "w") as container:
            stream = container.add_stream("mpeg4", rate=native_fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.bit_rate = 2_000_000
            for i in range(frames):
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame(i), format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        return "pyav"
    except ImportError:
        pass
    try:
        import cv2

        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), native_fps, (width, height))
        for i in range(frames):
            writer.write(np.ascontiguousarray(frame(i)[:, :, ::-1]))
        writer.release()
        return "opencv"
    except ImportError:
        pass
    if shutil.which("ffmpeg"):
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                        f"testsrc2=size={width}x{height}:rate={native_fps}:duration={seconds}",
                        "-c:v", "mpeg4", "-q:v", "5", str(path)], check=True)
        return "ffmpeg"
    raise RuntimeError("no video writer available: install PyAV (av), opencv-python-headless or ffmpeg")


def timestamp(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def write_annotation(root: Path, videos: int, seconds: float, questions: int, seed: int = 0) -> Path:
    """questions.json in the StreamingBench Real-Time schema: one entry per question, query times spread
    over each video, gold letters random (the model is random too: only parity matters)."""
    rng = np.random.default_rng(seed)
    entries = []
    for v in range(videos):
        for q in range(questions):
            t = max(1, int(seconds * (q + 1) / questions) - 1)
            entries.append({"video_path": f"./videos/synthetic_{v}.mp4", "video_categories": "synthetic", "questions": [{
                "task_type": ["Object Recognition", "Counting", "Causal Reasoning"][q % 3],
                "question": f"What changes in the picture around second {t} (question {q})?",
                "time_stamp": timestamp(t), "answer": "ABCD"[int(rng.integers(4))],
                "options": ["A. It gets brighter.", "B. It gets darker.", "C. Nothing.", "D. A bar moves."],
                "required_ability": "perception"}]})
    path = root / "questions.json"
    path.write_text(json.dumps(entries, indent=1))
    return path


def build(root: Path, videos: int, seconds: float, questions: int, native_fps: int = 10,
          width: int = 320, height: int = 240) -> dict:
    writers = {make_video(root / f"videos/synthetic_{v}.mp4", seconds, native_fps, width, height, seed=v) for v in range(videos)}
    annotation = write_annotation(root, videos, seconds, questions)
    return {"annotation": str(annotation), "items": videos * questions, "writers": sorted(writers)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--questions", type=int, default=50, help="questions per video")
    parser.add_argument("--native-fps", type=int, default=10)
    parser.add_argument("--size", default="320x240")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    info = build(Path(args.root), args.videos, args.seconds, args.questions, args.native_fps, width, height)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
