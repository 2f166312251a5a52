"""StreamDyCoke's bounded DP cache as a CONTEXT method: the stream's stored KV never exceeds `capacity`.

On the ReKV host the DP cache replaces unbounded offloading: every stored frame block is an entry whose
size is the tokens it occupies in the store; before new blocks are written, `store_blocks` evicts old
ones (FIFO / least recently restored / DECAY) so the store stays within the bound whatever the stream
length; blocks retrieved for an answer count as restored (`blocks_restored`, refreshing LRR and DECAY).
Answers are anytime: ReKV answers from the stored blocks at any frame without re-pre-filling the video.

Where it differs from the release (docs/baselines/README.md): the release caches single tokens and
demotes them from an active list by base attention; ReKV's storage unit is the frame block, so entries
are blocks. The release takes base attention from shallow-layer attention when the caller passes it and
is synthetic otherwise; here every block enters with base attention 1.0 (no attention maps are computed
during pre-fill), so DECAY orders blocks by time since their last restore.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from stc.baselines.dp_cache import POLICIES, BoundedDPCache
from stc.baselines.budget import check_positive
from stc.compression.base import ContextMethod


@dataclass(frozen=True)
class StreamDyCokeCacheConfig:
    """capacity: stored tokens at most (released 2048). eviction_policy: fifo | lrr | decay.
    decay_lambda: lambda of DECAY (0.05)."""

    capacity: int = 2048
    eviction_policy: str = "decay"
    decay_lambda: float = 0.05

    def __post_init__(self):
        check_positive("streamdycoke_cache", "capacity", self.capacity)
        if self.eviction_policy not in POLICIES:
            raise ValueError(f"compression.streamdycoke_cache.eviction_policy={self.eviction_policy!r}: "
                             f"one of {', '.join(POLICIES)}")
        if self.decay_lambda < 0:
            raise ValueError(f"compression.streamdycoke_cache.decay_lambda={self.decay_lambda}: must be >= 0")


class StreamDyCokeCacheMethod(ContextMethod):
    name = "streamdycoke_cache"
    config_class = StreamDyCokeCacheConfig

    def __init__(self, config: StreamDyCokeCacheConfig):
        super().__init__(config)
        self.reset()

    def reset(self) -> None:
        cfg = self.config
        self.cache = BoundedDPCache(cfg.capacity, cfg.eviction_policy, cfg.decay_lambda)
        self.restored = 0

    def store_blocks(self, ids: Sequence[int], sizes: Sequence[int]) -> list[int]:
        evicted = []
        for block_id, size in zip(ids, sizes):
            self.cache.tick()  # the clock advances once per ingested frame
            try:
                evicted += self.cache.insert(int(block_id), int(size))
            except ValueError as error:
                raise ValueError(f"compression.streamdycoke_cache.capacity={self.config.capacity}: {error}") from None
        return evicted

    def blocks_restored(self, ids: Sequence[int]) -> None:
        ids = list(ids)
        self.cache.touch(ids)
        self.restored += len(ids)

    def stats(self) -> dict:
        cache = self.cache
        return {"entries": len(cache), "stored_tokens": cache.used, "peak_tokens": cache.peak,
                "capacity": cache.capacity, "evictions": cache.evictions, "restored": self.restored}
