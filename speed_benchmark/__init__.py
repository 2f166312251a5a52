"""Latency harness: baseline vs STC for ViT encode, multi-stream ViT, LLM pre-fill and end-to-end ingest.

Run `python -m speed_benchmark preset=llava_ov_7b` (Hydra) or `python -m speed_benchmark.demo`.
See docs/speed/README.md.
"""
