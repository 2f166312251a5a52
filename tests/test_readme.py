"""The README's Python example runs as written and does what its comments say."""

import contextlib
import io
import re

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_example_runs():
    text = (REPO_ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python example"
    namespace: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(blocks[0], "README.md", "exec"), namespace)
    stats = namespace["handle"].stream.stats
    assert (stats.reference_frames, stats.selective_frames, stats.tokens_recomputed) == (2, 6, 4)
    assert namespace["kept"].shape == (1, 4, 64)
    assert "selective_frames=6" in out.getvalue()
    assert not namespace["handle"].attached
