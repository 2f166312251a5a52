"""Every frame's KV block (pre-RoPE), offloaded, with a representative key per block for retrieval.

One block = one frame = `block_tokens` tokens (196, or k with STC-Pruner), for every layer. Blocks are
written as soon as a frame is pre-filled (ReKV offloads every frame, including those still in the local
window), into pages of `page_blocks` blocks: one tensor [layers, page_blocks, 2, kv_heads, block_tokens,
head_dim] per page, pinned CPU memory when the compute device is CUDA (one pinned allocation per page,
not per block), or on the compute device when `offload=False`.

Representative key = mean of the block's pre-RoPE keys. ReKV stores it GQA-expanded to all Hq query
heads and scores it against the flattened mean question query. Here it is kept compact, per KV head
([Hkv·D] instead of [Hq·D], 7x smaller for Qwen2-7B), and the query is summed over each KV head's group:
sum_h q_h · k_{h//G} = sum_j k_j · (sum_{g} q_{jG+g}) — the same score, in float32.
"""

from __future__ import annotations

import torch


class BlockStore:
    def __init__(self, num_layers: int, kv_heads: int, head_dim: int, block_tokens: int, dtype: torch.dtype,
                 device: torch.device, offload: bool = True, page_blocks: int = 16):
        self.num_layers, self.kv_heads, self.head_dim, self.block_tokens = num_layers, kv_heads, head_dim, block_tokens
        self.dtype, self.device, self.page_blocks = dtype, device, page_blocks
        self.storage_device = torch.device("cpu") if offload else device
        self.pin = offload and device.type == "cuda"
        self.pages: list[torch.Tensor] = []
        self.rep_keys = torch.zeros(num_layers, 0, kv_heads * head_dim, dtype=torch.float32, device=device)
        self.num_blocks = 0

    def clear(self) -> None:
        """Forget all blocks (new video). Pages are kept and overwritten."""
        self.num_blocks = 0

    # ---- writing -------------------------------------------------------------------------------
    def write(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Store n new blocks for every layer: pre-RoPE keys/values [L, Hkv, n·block_tokens, D] (one
        pre-fill call). They become visible after `commit(n)`. All layers are handled by a few batched
        ops plus one contiguous device->host copy per layer and page segment."""
        count = self._count(keys)
        layers, heads, dim = self.num_layers, self.kv_heads, self.head_dim
        if keys.shape[0] != layers:
            raise ValueError(f"expected keys for {layers} layers, got {keys.shape[0]}")
        blocks = torch.stack([keys, values], dim=1).view(layers, 2, heads, count, self.block_tokens, dim)
        blocks = blocks.permute(0, 3, 1, 2, 4, 5).contiguous()  # [L, n, 2, Hkv, B, D]
        self._ensure_capacity(self.num_blocks + count)
        for page, slot, first, size in self._segments(self.num_blocks, count):
            for layer in range(layers):
                self.pages[page][layer, slot:slot + size].copy_(blocks[layer, first:first + size], non_blocking=True)
        means = keys.float().view(layers, heads, count, self.block_tokens, dim).mean(3)  # [L, Hkv, n, D]
        self.rep_keys[:, self.num_blocks:self.num_blocks + count] = means.transpose(1, 2).reshape(layers, count, -1)

    def commit(self, count: int) -> None:
        self.num_blocks += count

    @property
    def stored_bytes(self) -> int:
        """Bytes of K/V held for the committed blocks (all layers)."""
        element = torch.empty((), dtype=self.dtype).element_size()
        return self.num_blocks * self.num_layers * 2 * self.kv_heads * self.block_tokens * self.head_dim * element

    def fill_random(self, count: int) -> None:
        """Append `count` blocks of random data to every layer (latency simulation of a long stream
        without encoding it). One random page is generated and copied (memcpy speed, not RNG speed);
        representative keys are random."""
        self._ensure_capacity(self.num_blocks + count)
        template = torch.randn(self.pages[0].shape, dtype=torch.float32).to(self.dtype)
        for page, slot, _, size in self._segments(self.num_blocks, count):
            self.pages[page][:, slot:slot + size].copy_(template[:, slot:slot + size])
        new = torch.randn(self.num_layers, count, self.kv_heads * self.head_dim, device=self.device)
        self.rep_keys[:, self.num_blocks:self.num_blocks + count] = new
        self.num_blocks += count

    # ---- retrieval -----------------------------------------------------------------------------
    def scores(self, layer: int, query_mean: torch.Tensor) -> torch.Tensor:
        """query_mean [Hq, D] (mean pre-RoPE question query) -> score of every block [num_blocks]."""
        groups = query_mean.shape[0] // self.kv_heads
        grouped = query_mean.float().view(self.kv_heads, groups, self.head_dim).sum(1).reshape(-1)
        return self.rep_keys[layer, :self.num_blocks] @ grouped

    def select(self, layer: int, query_mean: torch.Tensor, topk: int | None) -> torch.Tensor:
        """Indices of the top-k blocks for this layer, in temporal (ascending) order; all if k >= count."""
        if topk is None or topk >= self.num_blocks:
            return torch.arange(self.num_blocks, device=self.device)
        top = torch.topk(self.scores(layer, query_mean), topk).indices
        return torch.sort(top).values

    def gather(self, layer: int, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Blocks `indices` (ascending) of one layer, on the compute device: keys, values
        [Hkv, n·block_tokens, D], pre-RoPE. Runs of consecutive blocks in one page move in one copy."""
        wanted = indices.tolist()
        staged = torch.empty(len(wanted), 2, self.kv_heads, self.block_tokens, self.head_dim,
                             dtype=self.dtype, device=self.device)
        out = 0
        for first, size in _runs(wanted):
            for page, slot, _, part in self._segments(first, size):
                staged[out:out + part].copy_(self.pages[page][layer, slot:slot + part], non_blocking=True)
                out += part
        joined = staged.permute(1, 2, 0, 3, 4).reshape(2, self.kv_heads, -1, self.head_dim)
        return joined[0], joined[1]

    # ---- helpers -------------------------------------------------------------------------------
    def _count(self, keys: torch.Tensor) -> int:
        tokens = keys.shape[-2]
        if tokens % self.block_tokens:
            raise ValueError(f"{tokens} tokens is not a whole number of {self.block_tokens}-token frame blocks")
        return tokens // self.block_tokens

    def _segments(self, first_block: int, count: int):
        """(page, slot, offset, size) pieces covering blocks [first_block, first_block + count)."""
        block, done = first_block, 0
        while done < count:
            page, slot = divmod(block, self.page_blocks)
            size = min(self.page_blocks - slot, count - done)
            yield page, slot, done, size
            block, done = block + size, done + size

    def _ensure_capacity(self, blocks: int) -> None:
        while len(self.pages) * self.page_blocks < blocks:
            self.pages.append(torch.empty(self.num_layers, self.page_blocks, 2, self.kv_heads, self.block_tokens,
                                          self.head_dim, dtype=self.dtype, device=self.storage_device,
                                          pin_memory=self.pin))
        if self.rep_keys.shape[1] < blocks:
            grown = torch.zeros(self.num_layers, max(blocks, 2 * self.rep_keys.shape[1], 64), self.rep_keys.shape[2],
                                dtype=torch.float32, device=self.device)
            grown[:, :self.num_blocks] = self.rep_keys[:, :self.num_blocks]
            self.rep_keys = grown


def _runs(indices: list[int]):
    """Ascending ints -> (first, length) runs of consecutive values."""
    if not indices:
        return
    first = previous = indices[0]
    for value in indices[1:]:
        if value != previous + 1:
            yield first, previous - first + 1
            first = value
        previous = value
    yield first, previous - first + 1
