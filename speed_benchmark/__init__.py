"""Latency harness: baseline vs STC for ViT encode (eager, graph, fused), multi-stream ViT, LLM pre-fill,
end-to-end ingest through a host with its answer latency, and answers after a long stream; every row
beside its FLOP-model fraction and its roofline floor.

Run `python -m speed_benchmark preset=llava_ov_7b` (Hydra) or `python -m speed_benchmark.demo`.
See docs/speed/README.md.
"""
