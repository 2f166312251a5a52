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

Variable-size frames (a compression method that keeps a different number of tokens per frame, e.g.
DyCoke's TTM): `write(..., lengths=[...])` stores frame i in the first lengths[i] rows of its block
(block_tokens is then the capacity), representative keys average only those rows, and `gather` returns
only them. Uniform writes keep the original batched path unchanged.

Eviction (a bounded store, e.g. StreamDyCoke's DP cache): every block has a stream-wide id (`ids`, its
write order) and a physical slot; `evict(ids)` frees slots that the next writes reuse, so the pages
allocated never exceed the most blocks ever live at once. Without evictions slots are 0, 1, 2, ... and
every path is the original one. Every write into a slot also gets a store-lifetime unique stamp, so
`block_keys` names a block's content, not just its place: the answer path's device cache
(block_cache.py) keys on it and never serves a slot that was evicted or cleared and rewritten.

Reading back: `gather_blocks` moves the blocks of every layer with two kernels per page touched (pinned
pages read directly over UVA); `copy_blocks` issues one copy per run of blocks consecutive both in their
slots (within a page) and in the output (ReKVConfig.block_loading="copies"); `unstage` turns the copied
rows into keys/values [Hkv, tokens, D]. `gather` is copy + unstage for one layer (the synchronous path);
the answer path issues its loads on a side stream (answer_loading.py).
"""

from __future__ import annotations

import torch

from frameworks.common.uploads import upload


class BlockStore:
    def __init__(self, num_layers: int, kv_heads: int, head_dim: int, block_tokens: int, dtype: torch.dtype,
                 device: torch.device, offload: bool = True, page_blocks: int = 16):
        self.num_layers, self.kv_heads, self.head_dim, self.block_tokens = num_layers, kv_heads, head_dim, block_tokens
        self.dtype, self.device, self.page_blocks = dtype, device, page_blocks
        self.storage_device = torch.device("cpu") if offload else device
        self.pin = offload and device.type == "cuda"
        self.pages: list[torch.Tensor] = []
        self.rep_keys = torch.zeros(num_layers, 0, kv_heads * head_dim, dtype=torch.float32, device=device)
        self.lengths: list[int] = []  # tokens of every block (== block_tokens unless written with lengths)
        self.num_blocks = 0
        self._aliases: dict[int, torch.Tensor] = {}  # page -> CUDA alias of its pinned memory (page_rows)
        self.stamps: list[int] = []  # write stamp of every physical slot (never reset: unique per write)
        self.writes = 0
        self.clear()

    def clear(self) -> None:
        """Forget all blocks (new video). Pages are kept and overwritten."""
        self.num_blocks = 0
        self.lengths = []
        self.slots: list[int] = []  # physical slot of every live block, in temporal order
        self.ids: list[int] = []    # stream-wide id of every live block
        self.free: list[int] = []
        self.slot_count = 0         # physical slots in use or freed (high-water mark)
        self.next_id = 0

    def _allocate(self, count: int) -> list[int]:
        """Physical slots for `count` new blocks (freed slots first, lowest first) and their ids."""
        self.free.sort()
        taken, self.free = self.free[:count], self.free[count:]
        fresh = list(range(self.slot_count, self.slot_count + count - len(taken)))
        self.slot_count += len(fresh)
        self._ensure_capacity(self.slot_count)
        slots = taken + fresh
        self.slots[self.num_blocks:] = slots
        self.ids[self.num_blocks:] = list(range(self.next_id, self.next_id + count))
        self.next_id += count
        self.stamps.extend([-1] * (self.slot_count - len(self.stamps)))
        for slot in slots:
            self.stamps[slot] = self.writes
            self.writes += 1
        return slots

    def evict(self, ids) -> None:
        """Drop the live blocks with these stream-wide ids; their slots are reused by later writes."""
        drop = set(int(i) for i in ids)
        if not drop:
            return
        keep = [i for i, block_id in enumerate(self.ids[:self.num_blocks]) if block_id not in drop]
        if len(keep) == self.num_blocks:
            return
        self.free.extend(self.slots[i] for i in range(self.num_blocks) if self.ids[i] in drop)
        index = upload(keep, self.rep_keys.device)  # no stream sync (uploads.py)
        self.rep_keys[:, :len(keep)] = self.rep_keys[:, :self.num_blocks].index_select(1, index)
        self.slots = [self.slots[i] for i in keep]
        self.ids = [self.ids[i] for i in keep]
        self.lengths = [self.lengths[i] for i in keep]
        self.num_blocks = len(keep)

    # ---- writing -------------------------------------------------------------------------------
    def write(self, keys: torch.Tensor, values: torch.Tensor, lengths: list[int] | None = None) -> None:
        """Store n new blocks for every layer: pre-RoPE keys/values [L, Hkv, n·block_tokens, D] (one
        pre-fill call). They become visible after `commit(n)`. All layers are handled by a few batched
        ops plus one contiguous device->host copy per layer and page segment, all issued by one
        `torch._foreach_copy_` call. With `lengths` (tokens per frame, each <= block_tokens) the
        keys/values hold sum(lengths) tokens, frame after frame."""
        if lengths is not None:
            keys, values = self._padded(keys, lengths), self._padded(values, lengths)
        count = self._count(keys)
        lengths = list(lengths) if lengths is not None else [self.block_tokens] * count
        layers, heads, dim = self.num_layers, self.kv_heads, self.head_dim
        if keys.shape[0] != layers:
            raise ValueError(f"expected keys for {layers} layers, got {keys.shape[0]}")
        blocks = torch.stack([keys, values], dim=1).view(layers, 2, heads, count, self.block_tokens, dim)
        blocks = blocks.permute(0, 3, 1, 2, 4, 5).contiguous()  # [L, n, 2, Hkv, B, D]
        targets, sources = [], []
        for page, slot, first, size in self._paired_runs(self._allocate(count)):  # grows pages and rep_keys
            for layer in range(layers):
                targets.append(self.pages[page][layer, slot:slot + size])
                sources.append(blocks[layer, first:first + size])
        if targets:  # one call: no Python dispatch per copy
            torch._foreach_copy_(targets, sources, non_blocking=True)
        sums = keys.float().view(layers, heads, count, self.block_tokens, dim).sum(3)  # [L, Hkv, n, D] (pads are 0)
        if all(n == self.block_tokens for n in lengths):  # the usual call: no per-block divisor to upload
            means = sums / self.block_tokens
        else:
            means = sums / upload(lengths, sums.device, torch.float32).view(1, 1, count, 1)
        self.rep_keys[:, self.num_blocks:self.num_blocks + count] = means.transpose(1, 2).reshape(layers, count, -1)
        self.lengths[self.num_blocks:] = lengths

    def _padded(self, tensor: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        """[L, Hkv, sum(lengths), D] -> [L, Hkv, n·block_tokens, D], each frame zero-padded to a block."""
        if any(n < 1 or n > self.block_tokens for n in lengths) or sum(lengths) != tensor.shape[2]:
            raise ValueError(f"frame lengths {lengths} must be in [1, {self.block_tokens}] and sum to {tensor.shape[2]}")
        out = tensor.new_zeros(tensor.shape[0], tensor.shape[1], len(lengths) * self.block_tokens, tensor.shape[3])
        start = 0
        for index, length in enumerate(lengths):
            out[:, :, index * self.block_tokens:index * self.block_tokens + length] = tensor[:, :, start:start + length]
            start += length
        return out

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
        slots = self._allocate(count)  # grows pages and rep_keys
        template = torch.randn(self.pages[0].shape, dtype=torch.float32).to(self.dtype)
        for page, slot, _, size in self._paired_runs(slots):
            self.pages[page][:, slot:slot + size].copy_(template[:, slot:slot + size])
        new = torch.randn(self.num_layers, count, self.kv_heads * self.head_dim, device=self.device)
        self.rep_keys[:, self.num_blocks:self.num_blocks + count] = new
        self.lengths[self.num_blocks:] = [self.block_tokens] * count
        self.num_blocks += count

    # ---- retrieval -----------------------------------------------------------------------------
    def scores(self, layer: int, query_mean: torch.Tensor) -> torch.Tensor:
        """query_mean [Hq, D] (mean pre-RoPE question query) -> score of every block [num_blocks]."""
        return self.rep_keys[layer, :self.num_blocks] @ self._grouped(query_mean)

    def _grouped(self, query_mean: torch.Tensor) -> torch.Tensor:
        """[Hq, D] -> [Hkv·D] float32: the query summed over each KV head's group (see the module doc)."""
        groups = query_mean.shape[0] // self.kv_heads
        return query_mean.float().view(self.kv_heads, groups, self.head_dim).sum(1).reshape(-1)

    def select(self, layer: int, query_mean: torch.Tensor, topk: int | None) -> torch.Tensor:
        """Indices of the top-k blocks for this layer, in temporal (ascending) order; all if k >= count."""
        if topk is None or topk >= self.num_blocks:
            return torch.arange(self.num_blocks, device=self.device)
        top = torch.topk(self.scores(layer, query_mean), topk).indices
        return torch.sort(top).values

    def select_live(self, layer: int, query_mean: torch.Tensor, topk: int, live: torch.Tensor) -> torch.Tensor:
        """`select` over the whole representative-key buffer with the blocks where `live` [capacity] is
        False scored -inf: the same top-k (topk <= live blocks) from shapes that do not change as blocks
        arrive, for a CUDA-graphed retrieval pass."""
        scores = (self.rep_keys[layer] @ self._grouped(query_mean)).masked_fill(~live, float("-inf"))
        return torch.sort(torch.topk(scores, topk).indices).values

    def block_keys(self, indices: list[int]) -> list[tuple[int, int]]:
        """(physical slot, write stamp) of live blocks `indices`: equal keys mean equal content."""
        return [(self.slots[i], self.stamps[self.slots[i]]) for i in indices]

    def gather(self, layer: int, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Blocks `indices` (ascending) of one layer, on the compute device: keys, values
        [Hkv, n·block_tokens, D], pre-RoPE. Runs of consecutive blocks in one page move in one copy."""
        wanted = indices.tolist()
        staged = torch.empty(len(wanted), 2, self.kv_heads, self.block_tokens, self.head_dim,
                             dtype=self.dtype, device=self.device)
        self.copy_blocks(layer, wanted, staged, range(len(wanted)))
        return self.unstage(staged, [self.lengths[i] for i in wanted])

    def copy_blocks(self, layer: int, indices: list[int], out: torch.Tensor, positions) -> int:
        """Copy live blocks `indices` of `layer` into rows `positions` of `out` [n, 2, Hkv, B, D] (on the
        current stream, non-blocking from pinned pages). One copy per run of blocks whose slots are
        consecutive in one page and whose positions are consecutive. Returns the number of copies.
        The copies go out in one `torch._foreach_copy_` call (one C++ loop of copies: no Python dispatch
        per copy; across devices it issues one cudaMemcpyAsync per pair)."""
        targets, sources = [], []
        for page, slot, position, size in self._paired_runs([self.slots[i] for i in indices], list(positions)):
            targets.append(out[position:position + size])
            sources.append(self.pages[page][layer, slot:slot + size])
        if targets:
            torch._foreach_copy_(targets, sources, non_blocking=True)
        return len(targets)

    def gather_blocks(self, wanted: list[list[tuple[int, int]]], out: torch.Tensor) -> int:
        """Blocks of EVERY layer in one pass: `wanted[l]` = [(live block index, row of out[l])], `out`
        [L, width, 2, Hkv, B, D] contiguous on the compute device (current stream). The blocks of one page
        (all layers) move with one gather reading the page directly - pinned pages through their CUDA
        alias (UVA: kernels read host memory over PCIe, `page_rows`) - and one scatter into `out`: two
        kernels per page touched and one host->device copy of all indices, instead of one copy per run
        of blocks (~1700 for 64 of 1800 blocks at 7B, whose per-copy cost, not the bandwidth, set the
        time: docs/rekv/answer-path.md). Returns the number of pages read."""
        width = out.shape[1]
        by_page: dict[int, tuple[list[int], list[int]]] = {}
        for layer, pairs in enumerate(wanted):
            for block, row in pairs:
                page, slot = divmod(self.slots[block], self.page_blocks)
                sources, targets = by_page.setdefault(page, ([], []))
                sources.append(layer * self.page_blocks + slot)
                targets.append(layer * width + row)
        if not by_page:
            return 0
        pages = sorted(by_page)
        index = upload([i for page in pages for part in by_page[page] for i in part], out.device)
        rows = out.view(out.shape[0] * width, -1)
        start = 0
        for page in pages:
            count = len(by_page[page][0])
            sources, targets = index[start:start + count], index[start + count:start + 2 * count]
            rows.index_copy_(0, targets, self.page_rows(page, out.device).index_select(0, sources))
            start += 2 * count
        return len(pages)

    def page_rows(self, page: int, device: torch.device) -> torch.Tensor:
        """Page `page` as rows [L * page_blocks, one block's elements] readable by kernels on `device`:
        the page itself when it is there already (CPU, or offload=False), else (pinned host page, CUDA
        device) a CUDA tensor aliasing the pinned memory (cached; the page outlives it: pages are never
        freed)."""
        tensor = self.pages[page]
        if tensor.device == torch.device(device) or not self.pin:
            return tensor.view(self.num_layers * self.page_blocks, -1)
        alias = self._aliases.get(page)
        if alias is None:
            alias = cuda_alias(tensor, device).view(self.num_layers * self.page_blocks, -1)
            self._aliases[page] = alias
        return alias

    def unstage(self, staged: torch.Tensor, sizes: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Copied rows [n, 2, Hkv, B, D] of blocks holding `sizes` tokens -> keys, values [Hkv, tokens, D]."""
        if any(size != self.block_tokens for size in sizes):  # variable frames: only the valid rows
            joined = torch.cat([staged[i, :, :, :size] for i, size in enumerate(sizes)], dim=2)
            return joined[0], joined[1]
        joined = staged.permute(1, 2, 0, 3, 4).reshape(2, self.kv_heads, -1, self.head_dim)
        return joined[0], joined[1]

    def unstage_all(self, staged: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`unstage` of full blocks for every layer at once: [L, n, 2, Hkv, B, D] -> keys, values
        [L, Hkv, n·B, D]."""
        layers, count = staged.shape[0], staged.shape[1]
        joined = staged.permute(2, 0, 3, 1, 4, 5).reshape(2, layers, self.kv_heads, count * self.block_tokens,
                                                           self.head_dim)
        return joined[0], joined[1]

    def _paired_runs(self, slots: list[int], positions: list[int] | None = None):
        """(page, slot, position, size) runs where slots and positions (default: 0, 1, 2, ...) both step
        by one, within a page."""
        positions = list(range(len(slots))) if positions is None else positions
        start = 0
        for index in range(1, len(slots) + 1):
            if (index == len(slots) or slots[index] != slots[index - 1] + 1
                    or positions[index] != positions[index - 1] + 1
                    or slots[index] % self.page_blocks == 0):
                page, slot = divmod(slots[start], self.page_blocks)
                yield page, slot, positions[start], index - start
                start = index

    # ---- helpers -------------------------------------------------------------------------------
    def _count(self, keys: torch.Tensor) -> int:
        tokens = keys.shape[-2]
        if tokens % self.block_tokens:
            raise ValueError(f"{tokens} tokens is not a whole number of {self.block_tokens}-token frame blocks")
        return tokens // self.block_tokens

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


def cuda_alias(pinned: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CUDA tensor over the memory of a pinned host tensor (same shape and dtype). With unified
    addressing (every 64-bit CUDA platform), memory from cudaHostAlloc - PyTorch's pinned allocator - is
    addressable by kernels at its host address, so torch can wrap it through `__cuda_array_interface__`
    (as bytes: the interface has no bfloat16). The alias does not keep `pinned` alive."""
    flat = pinned.view(torch.uint8).view(-1)

    class _Interface:
        __cuda_array_interface__ = {"shape": (flat.numel(),), "typestr": "|u1", "data": (flat.data_ptr(), False),
                                    "version": 3, "strides": None}

    with torch.cuda.device(device):
        alias = torch.as_tensor(_Interface(), device=device)
    return alias.view(pinned.dtype).view(pinned.shape)

