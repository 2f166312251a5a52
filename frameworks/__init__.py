"""Streaming VideoLLM hosts that STC plugs into. Hosts never import each other; shared host logic
lives in `frameworks/common/` and the contract in `frameworks/protocol.py`."""

from frameworks.protocol import Query, StageTimings, StreamingVideoLLM

__all__ = ["Query", "StageTimings", "StreamingVideoLLM"]
