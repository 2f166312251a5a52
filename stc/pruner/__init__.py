"""STC-Pruner: keep the k most novel tokens per frame before LLM pre-fill."""

from stc.pruner.pruner import STCPruner

__all__ = ["STCPruner"]
