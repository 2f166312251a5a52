"""The hosts' CUDA graphs (ReKV pre-fill and decoding steps, token stage): the one capture protocol,
which lives in `stc/cuda_capture.py` so that STC-Cacher's graph runner uses it too (stc never imports
frameworks), re-exported here, and the bookkeeping around it.

`GraphTable` is the bookkeeping around it that the ReKV runners share: which key to capture when, how
many graphs to keep, one memory pool, and what a failure does.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Any, Callable, Hashable, Optional

from stc.cuda_capture import capture, failure_text  # noqa: F401  (the hosts' import point)


class GraphTable:
    """The captured graphs of one runner, by key. Policy shared by the ReKV pre-fill steps, question pass
    and answer pre-fill:
    - a key is captured on its SECOND call (the first runs eagerly): shapes seen once - the odd last
      chunk, the token count of a variable-count method, a one-off prompt length - never pay a capture
      (~3 eager runs);
    - at most `limit` graphs are kept, least recently used dropped first;
    - all graphs share one memory pool (they never run concurrently, and each graph's outputs are read
      before the next replay of any of them);
    - a capture failure disables the table for good, with one warning naming `what`.
    `get(key, record)` returns the key's entry (whatever `record` returned beside the graph), capturing
    it first on the key's second call, or None: run eagerly. `record(pool)` -> (graph, entry)."""

    def __init__(self, what: str, limit: int, enabled: bool = True):
        self.what, self.limit, self.enabled = what, limit, enabled
        self.entries: "OrderedDict[Hashable, Any]" = OrderedDict()
        self.seen: set = set()
        self.pool = None
        self.captures = 0

    def get(self, key: Hashable, record: Callable[[Any], tuple[Any, Any]]) -> Optional[Any]:
        if not self.enabled:
            return None
        if key not in self.entries and key in self.seen:
            try:
                graph, entry = record(self.pool)
            except Exception as error:  # noqa: BLE001 - any capture failure means: run eager, say so once
                self.enabled = False
                warnings.warn(f"{self.what} not graphed ({failure_text(error)}); running eager",
                              RuntimeWarning, stacklevel=3)
                return None
            self.pool = graph.pool()
            self.entries[key] = entry
            self.captures += 1
            while len(self.entries) > self.limit:
                self.entries.popitem(last=False)
        self.seen.add(key)
        entry = self.entries.get(key)
        if entry is not None:
            self.entries.move_to_end(key)
        return entry
