"""Video path resolution shared by every benchmark.

Annotation files carry paths in several shapes: relative to the dataset root ("Ego4D/clips/x.mp4"),
"./videos/sample_1_real.mp4" (StreamingBench), absolute paths from someone else's machine
(upstream result files), or bare ids (EgoSchema q_uid, VideoMME videoID). `resolve_video` tries, in
order: the path as given if absolute and existing, `video_dir/path`, `video_dir/basename(path)`.
"""

from __future__ import annotations

from pathlib import Path


def resolve_video(video: str, video_dir: str | Path, precut: str | None = None, precut_dir: str | Path | None = None) -> tuple[Path, bool]:
    """Return (path, is_precut). Pre-cut clips win when `precut_dir` is set and the clip exists.

    When nothing exists the most likely candidate is returned; the reader then records a VideoError.
    """
    if precut and precut_dir:
        clip = Path(precut_dir) / precut
        if clip.is_file():
            return clip, True
    given = Path(video)
    if given.is_absolute() and given.is_file():
        return given, False
    root = Path(video_dir)
    candidates = [root / video.removeprefix("./"), root / given.name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate, False
    return candidates[0], False
