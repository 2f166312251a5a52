"""`make demo` speaks to a newcomer: a CPU run says it is not comparable and that MISS is expected, and
every column of the harness tables is defined in the demo's legend."""

import re
from pathlib import Path

from speed_benchmark.demo import LEGEND, intro

# headers of the tables the harness prints (speed_benchmark/report*), as a newcomer sees them
COLUMNS = ["N", "r", "k", "ms/frame median", "min", "p90", "reference ms", "selective ms", "x base", "red.",
           "theory F(N,r)", "eff.", "refs/sel (k)", "S", "frames/s", "speed-up", "frames/chunk", "calls",
           "baseline ms (k)", "STC ms (k)", "pruner ms", "STC+pruner ms", "token ratio", "goal", "measured", "status"]


def test_cpu_intro_says_not_comparable_and_miss_expected():
    text = intro(cuda=False)
    assert "not comparable" in text.lower() and "MISS" in text and "expected" in text
    assert "not comparable" not in intro(cuda=True).lower()


def test_every_table_column_is_defined():
    defined = " ".join(re.findall(r"^\| ([^|]+) \|", LEGEND, flags=re.M))
    missing = [c for c in COLUMNS if c not in defined]
    assert not missing, missing
    assert "docs/speed/README.md" in LEGEND and (Path(__file__).resolve().parents[2] / "docs/speed/README.md").is_file()
