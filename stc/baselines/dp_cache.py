"""StreamDyCoke's hard-bounded DP cache (anantteotia/StreamDyCoke `streamdycoke/dp_cache.py`), torch-free.

Entries (any hashable key) carry a size (tokens they occupy), a base attention, the clock at insertion
and the clock of their last restore. Inserting evicts until the new entry fits, so the summed size never
exceeds `capacity`, whatever the stream length. Victim, by policy:
    fifo   smallest inserted_at                     (oldest first)
    lrr    smallest last_access                     (least recently restored)
    decay  smallest base_attention * exp(-lambda * (clock - last_access))
ties: the oldest entry. `tick()` advances the clock (once per ingested frame); `restore_top_k(k)` pops
the k highest-priority entries (the release's refresh into the active set); `touch(keys)` marks entries
restored without removing them (a host that reads restored KV from the cache, like ReKV's retrieval).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Hashable, Iterable

POLICIES = ("fifo", "lrr", "decay")


@dataclass
class Entry:
    size: int
    base_attention: float
    inserted_at: int
    last_access: int


class BoundedDPCache:
    def __init__(self, capacity: int, policy: str = "decay", decay_lambda: float = 0.05):
        if capacity < 1:
            raise ValueError(f"DP cache capacity={capacity}: must be >= 1")
        if policy not in POLICIES:
            raise ValueError(f"DP cache eviction_policy={policy!r}: one of {', '.join(POLICIES)}")
        self.capacity, self.policy, self.decay_lambda = capacity, policy, decay_lambda
        self.entries: dict[Hashable, Entry] = {}
        self.used = self.clock = self.evictions = self.peak = 0

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self.entries

    def tick(self) -> None:
        self.clock += 1

    def priority(self, entry: Entry) -> float:
        return entry.base_attention * math.exp(-self.decay_lambda * (self.clock - entry.last_access))

    def _rank(self, key: Hashable) -> tuple:
        entry = self.entries[key]
        if self.policy == "fifo":
            return (entry.inserted_at,)
        if self.policy == "lrr":
            return (entry.last_access, entry.inserted_at)
        return (self.priority(entry), entry.inserted_at)

    def victim(self) -> Hashable:
        """The entry the policy evicts next (O(C) scan, as released)."""
        return min(self.entries, key=self._rank)

    def insert(self, key: Hashable, size: int = 1, base_attention: float = 1.0) -> list[Hashable]:
        """Add an entry, evicting others first until it fits. Returns the evicted keys, in order."""
        if size > self.capacity:
            raise ValueError(f"DP cache entry of {size} tokens exceeds the capacity of {self.capacity}")
        if key in self.entries:
            raise KeyError(f"DP cache already holds {key!r}")
        evicted = []
        while self.used + size > self.capacity:
            victim = self.victim()
            self.used -= self.entries.pop(victim).size
            evicted.append(victim)
        self.entries[key] = Entry(size, float(base_attention), self.clock, self.clock)
        self.used += size
        self.evictions += len(evicted)
        self.peak = max(self.peak, self.used)
        return evicted

    def touch(self, keys: Iterable[Hashable]) -> None:
        for key in keys:
            if key in self.entries:
                self.entries[key].last_access = self.clock

    def restore_top_k(self, k: int) -> list[Hashable]:
        """Pop the k highest-priority entries (O(C log C) sort, as released)."""
        ranked = sorted(self.entries, key=lambda key: (-self.priority(self.entries[key]), self.entries[key].inserted_at))
        restored = ranked[:k]
        for key in restored:
            self.used -= self.entries.pop(key).size
        return restored
