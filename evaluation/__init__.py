"""Benchmark evaluation for streaming video LLM hosts.

`python -m evaluation framework=toy benchmark=ovobench data.root=/data/ovo` runs one benchmark (Hydra
entry point in `evaluation/__main__.py`); `python -m evaluation.merge <run dir>` combines shards;
`python -m evaluation.score benchmark=... file=...` re-scores prediction or upstream result files.
Nothing here runs at import time.
"""
