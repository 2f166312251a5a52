"""ReKV streaming video QA on HF LLaVA-OneVision, with STC-Cacher and STC-Pruner (the reference integration).

    host = ReKVHost(build_random_llava_onevision(cfg), ReKVConfig(), {"cacher": {...}, "pruner": {...}})
    host.reset()                               # new video
    host.ingest(frames_uint8, timestamps)      # any number of times: only new frames are encoded
    text = host.answer(Query(prompt=..., answer_prefix="Best option: ("))
    host.timings                               # StageTimings of this video

Per frame chunk (`frames_per_chunk` frames): pixels -> SigLIP (STC-Cacher: one cacher frame per frame,
in order) -> hidden_states[vision_feature_layer] -> projector -> 2x bilinear pool (27x27 -> 196 tokens,
no newline) -> TOKENS-stage compression (e.g. STC-Pruner, k per frame) -> one LLM pre-fill into the streaming context: attention over
[init sink, local window of n_local tokens, the chunk], keys stored without RoPE; every frame becomes
one offloaded block. Question: per-layer top-k block retrieval with the bare question, then the
templated prompt is pre-filled over [sink + retrieved blocks] (positions re-indexed from 0) and decoded
greedily. See frameworks-benchmarks.md §A1 and stc-method.md §1, §3.5.

Compression (any registered method, never named here): a VISION method that merges tokens in the tower
(ToMe) makes the host skip the 2x pooling; TOKENS methods get tower attention/keys only when they
`require` them; a variable token count per frame is stored as variable-size frame blocks; CONTEXT methods
are called at decoding steps (`decode_keys`) and when blocks are stored/retrieved (a bounded store).
See docs/baselines/README.md.
"""

from __future__ import annotations

from typing import Sequence

import torch

from frameworks.common.compression import HostCompression
from frameworks.common.graphed_tokens import GraphedTokenStage
from frameworks.common.host_checks import check_ingest, peak_memory_mb, reset_peak_memory
from frameworks.common.llava_loading import LoadedLlava
from frameworks.common.llava_video import (pixel_normalization, pool_2x, pooled_grid_tokens, preprocess_frames,
                                           tower_features)
from frameworks.common.split_attention import SplitAttention, pick_kernel
from frameworks.common.timing import EventTimer
from frameworks.common.vision_side import SIDE_FIELDS, tower_side
from frameworks.protocol import Query, StageTimings
from frameworks.rekv.answer_context import LayeredAnswerAttention, LayeredAnswerCache
from frameworks.rekv.answer_loading import BlockLoader, LoadBeforeAttention
from frameworks.rekv.backends import AnswerAttention, AnswerCache, EagerSteps, SinkEncoding
from frameworks.rekv.block_store import BlockStore
from frameworks.rekv.config import ReKVConfig
from frameworks.rekv.decoder import DecoderStack
from frameworks.rekv.graphed_answer import GraphedAnswerPrefill
from frameworks.rekv.graphed_decode import GraphedDecoder
from frameworks.rekv.graphed_step import GraphedSteps
from frameworks.rekv.local_window import LocalWindow
from frameworks.rekv.rope import RotaryTable
from frameworks.rekv.static_window import StaticWindow
from stc.compression import TokenSide


LOAD_AHEAD = 2  # load_during_prefill: layers whose block copies are issued ahead of the one computing


class ReKVHost:
    """Implements `frameworks.protocol.StreamingVideoLLM` for one stream at a time."""

    name = "rekv"
    supports_incremental = True

    def __init__(self, loaded: LoadedLlava, config: ReKVConfig | None = None, compression=None):
        """`compression`: a `CompressionSpec`, a mapping (`{"cacher": {...}, "pruner": {...}}`), an
        `STCConfig`, or None (the host as upstream)."""
        self.config = config or ReKVConfig()
        self.model, self.codec, self.pixel_spec = loaded.model, loaded.codec, loaded.pixels
        inner = self.model.model
        self.device, self.dtype = self.model.device, self.model.dtype
        self.normalization = pixel_normalization(self.pixel_spec.mean, self.pixel_spec.std, self.device)
        self.vision_tower, self.projector = inner.vision_tower, inner.multi_modal_projector
        self.stack = DecoderStack(inner.language_model, self.model.lm_head)
        self.rope = RotaryTable(inner.language_model.rotary_emb, self.dtype)
        vision = self.model.config.vision_config
        self.pooled_tokens = pooled_grid_tokens(vision.image_size, vision.patch_size)
        self.compression = HostCompression(compression, self.pooled_tokens, host="rekv",
                                           tower_tokens=(vision.image_size // vision.patch_size) ** 2)
        # a VISION method that merges tokens (ToMe) leaves no grid: its tokens skip the 2x pooling
        self.pools = not self.compression.reduces_in_tower
        self.grid = (int(round(self.pooled_tokens ** 0.5)),) * 2 if self.pools else None
        self.block_tokens = self._block_tokens()
        shape = (self.stack.num_layers, self.stack.kv_heads, self.stack.head_dim)
        self.window, self.steps, self.decoder, self.answer_prefill = self._llm_path(shape)
        self._answer_cache: AnswerCache | None = None  # kept across questions when the pre-fill is graphed
        self.store = BlockStore(*shape, self.block_tokens, self.dtype, self.device,
                                offload=self.config.offload, page_blocks=self.config.page_blocks)
        self.loader = BlockLoader(self.store, self.config.gpu_cache_blocks, self.config.async_block_loading,
                                  gather=self.config.block_loading == "gather")
        self.compression.attach(self.vision_tower)
        self.timer = EventTimer(self.device)
        self.token_stage = GraphedTokenStage(self.projector, pool_2x if self.pools else None, self.compression,
                                             self.timer, graph=self.config.graph_token_stage)
        self._encode_sink()
        self.reset()

    def _llm_path(self, shape: tuple[int, int, int]):
        """(window, streaming steps, decoder, answer pre-fill) of `config.llm_step`: the growable window
        stepped from Python with the eager answer pre-fill and decoding loop (decoder and answer pre-fill
        None), or the static window with its steps, decoder and answer pre-fill (CUDA graphs for "graph";
        frameworks/rekv/graphed_step.py, graphed_decode.py, graphed_answer.py)."""
        config = self.config
        if config.llm_step == "eager":
            window = LocalWindow(*shape, config.n_local, self.dtype, self.device, self.rope, config.sink_positions)
            return window, EagerSteps(window, self.rope, self.stack.run), None, None
        probe = torch.empty(1, 1, self.stack.head_dim, dtype=self.dtype, device=self.device)
        kernel = pick_kernel(probe, config.attention_kernel)
        attention = SplitAttention(kernel, compile_glue=kernel == "flash" and config.compile_glue)
        if attention.compile_glue:
            self.stack.compile_glue()
        window = StaticWindow(*shape, config.n_local, self.dtype, self.device, self.rope, attention,
                              config.sink_positions, q_heads=self.stack.q_heads)
        graphs = config.llm_step == "graph"
        steps = GraphedSteps(window, lambda hidden, backend: self.stack.run(hidden, backend, fused=True), graphs)
        return (window, steps, GraphedDecoder(self.stack, attention, cuda_graph=graphs),
                GraphedAnswerPrefill(self.stack, attention, cuda_graph=graphs))

    def _block_tokens(self) -> int:
        """Tokens per frame block: the compressed count, or (methods with a variable count per frame)
        the uncompressed count as the block capacity, each frame storing only its own tokens."""
        tokens = self.compression.tokens_out
        self.variable_blocks = tokens is None
        if tokens is None:
            tokens = self.compression.tokens_in
        chunk = tokens * self.config.frames_per_chunk
        if self.config.n_local < chunk:
            raise ValueError(f"n_local={self.config.n_local} must hold one pre-fill chunk "
                             f"({self.config.frames_per_chunk} frames x {tokens} tokens = {chunk})")
        return tokens

    @torch.no_grad()
    def _encode_sink(self) -> None:
        """Encode the init prompt once per host; its K/V are the attention sink of every video."""
        ids = self.codec.encode(self.config.init_prompt)
        backend = SinkEncoding(self.rope, len(ids), self.device)
        if ids:
            self.stack.run(self.stack.embed(ids, self.device), backend)
            self.window.set_init(*backend.sink())
        self.init_ids = ids

    # ---- protocol ------------------------------------------------------------------------------
    def reset(self) -> None:
        self.window.clear()
        self.store.clear()
        self.loader.clear()
        self.compression.reset()
        self.timer.reset()
        self._counts = dict(frames=0, tokens_in=0, tokens_kept=0, answers=0, generated_tokens=0)
        self._last_selection: list[torch.Tensor] = []
        reset_peak_memory(self.device)

    @torch.no_grad()
    def ingest(self, frames: torch.Tensor, timestamps: Sequence[float] = ()) -> None:
        check_ingest(frames, timestamps)
        step = self.config.frames_per_chunk
        for first in range(0, frames.shape[0], step):
            self._ingest_chunk(frames[first:first + step])

    @torch.no_grad()
    def answer(self, query: Query) -> str:
        prompt_ids = self._prompt_ids(query)  # encoded once per question
        cache = self._retrieve(query, prompt_ids)
        with self.timer.stage("decode"):
            ids = self._generate(cache, prompt_ids, query.max_new_tokens)
        self._counts["answers"] += 1
        self._counts["generated_tokens"] += len(ids)
        return self.codec.decode(ids)

    @property
    def timings(self) -> StageTimings:
        """Stage totals of this video. `pruner_ms`: tower side information + TOKENS methods; when the
        token stage is CUDA-graphed (`graph_token_stage`), projector + pooling + TOKENS methods of graphed
        calls are one interval counted there (`extra["projector_ms"]` then holds only the eager calls;
        frameworks/common/graphed_tokens.py)."""
        totals = self.timer.totals()
        counts = self._counts
        reference_frames, selective_frames = self.compression.frame_kinds()
        peak = peak_memory_mb(self.device)
        stages = ("preprocess", "projector", "answer_prefill", "retrieval_select", "retrieval_load")
        extra = {f"{name}_ms": totals.get(name, 0.0) for name in stages}
        cache = self.loader.cache
        extra.update(retrieval_copies=self.loader.copies, gpu_cache_hits=cache.hits if cache else 0,
                     gpu_cache_misses=cache.misses if cache else 0)
        extra.update(answers=counts["answers"], generated_tokens=counts["generated_tokens"],
                     blocks=self.store.num_blocks, block_tokens=self.block_tokens, init_tokens=self.window.n_init,
                     stored_bytes=self.store.stored_bytes,
                     local_window_tokens=self.window.length, frames_per_chunk=self.config.frames_per_chunk,
                     compression=self.compression.stats(), token_stage=self.token_stage.stats())
        return StageTimings(
            vit_ms=totals.get("vit", 0.0), prefill_ms=totals.get("prefill", 0.0), pruner_ms=totals.get("pruner", 0.0),
            retrieval_ms=totals.get("retrieval", 0.0), decode_ms=totals.get("decode", 0.0), frames=counts["frames"],
            visual_tokens_in=counts["tokens_in"], visual_tokens_kept=counts["tokens_kept"],
            vit_reference_frames=reference_frames, vit_selective_frames=selective_frames,
            peak_memory_mb=peak, extra=extra,
        )

    @torch.no_grad()
    def fill_history(self, frames: int) -> int:
        """Latency simulation of a long stream (the speed harness's answer-latency rows): make the memory
        hold `frames` frame blocks as if they had been ingested. The frames the local window holds
        (n_local tokens) are really encoded, from random pixels; older ones are random blocks, not
        encoded (a 1-hour stream would take minutes to encode). Call after `reset()`; returns the
        number of frames really encoded."""
        recent = min(frames, -(-self.config.n_local // self.block_tokens) + 1)
        if frames > recent:
            self.store.fill_random(frames - recent)
        size = self.model.config.vision_config.image_size
        generator = torch.Generator().manual_seed(self.config.seed)
        self.ingest(torch.randint(0, 256, (recent, size, size, 3), generator=generator, dtype=torch.uint8))
        return recent

    def close(self) -> None:
        """Detach VISION-stage methods (the tower's original layer classes come back)."""
        self.compression.close()

    # ---- video ---------------------------------------------------------------------------------
    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 [F, H, W, 3] -> pooled projector tokens [F, pooled_tokens, hidden] (timed; no pruning)."""
        return self.token_stage.project(self._features(frames)[0])

    def _features(self, frames: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Selected tower features and the tower side information the TOKENS methods require (timed)."""
        config = self.model.config
        wants_side = bool(self.compression.requires & set(SIDE_FIELDS))
        with self.timer.stage("preprocess"):
            pixels = preprocess_frames(frames, self.pixel_spec, self.device, self.vision_tower.dtype,
                                       self.normalization)
        with self.timer.stage("vit"):
            selected = tower_features(self.vision_tower, pixels, config.vision_feature_layer,
                                      config.vision_feature_select_strategy, return_hidden_states=wants_side)
        side = {}
        if wants_side:
            selected, hidden_states = selected
            with self.timer.stage("pruner"):
                side = tower_side(self.vision_tower, hidden_states, config.vision_feature_layer,
                                  pool_2x if self.pools else None)
        return selected, side

    def _ingest_chunk(self, frames: torch.Tensor) -> None:
        selected, side_info = self._features(frames)
        count = selected.shape[0]
        self._counts["frames"] += count
        self._counts["tokens_in"] += count * self.pooled_tokens  # the uncompressed frame's tokens
        # projector -> pool -> TOKENS methods (one CUDA graph per call shape when graph_token_stage)
        side = TokenSide(grid=self.grid, frame_offset=self._counts["frames"] - count, **side_info)
        tokens, _ = self.token_stage(selected, side)
        self.prefill_tokens(tokens)

    def prefill_tokens(self, tokens) -> None:
        """Pre-fill visual tokens [F, block_tokens, hidden] (F frames, in order) into the stream; with a
        variable-count method, a list of F tensors [k_f, hidden] (k_f <= block_tokens)."""
        lengths = None
        if isinstance(tokens, (list, tuple)):
            lengths = [frame.shape[0] for frame in tokens]
            flat = torch.cat(list(tokens)).to(self.dtype)
        else:
            if tokens.shape[1] != self.block_tokens:
                raise ValueError(f"expected {self.block_tokens} tokens per frame, got {tokens.shape[1]}")
            flat = tokens.reshape(-1, tokens.shape[-1]).to(self.dtype)
        frames = len(lengths) if lengths is not None else tokens.shape[0]
        with self.timer.stage("prefill"):
            raw = self.steps(flat)
            evict = []
            if self.compression.context_methods:  # a bounded store evicts first, so its slots are reused
                new_ids = list(range(self.store.next_id, self.store.next_id + frames))
                evict = self.compression.store_blocks(new_ids, [self.block_tokens] * frames)
                self.store.evict([i for i in evict if i < new_ids[0]])
            self.store.write(*raw, lengths=lengths)
            self.store.commit(frames)
            if evict:  # only when one chunk alone exceeds the bound
                self.store.evict([i for i in evict if i >= new_ids[0]])
        self._counts["tokens_kept"] += flat.shape[0]

    # ---- question ------------------------------------------------------------------------------
    def _prompt_ids(self, query: Query) -> list[int]:
        text = query.prompt
        if query.use_chat_template:
            text = self.config.question_template.replace("{prompt}", query.prompt)
        ids = self.codec.encode(text + query.answer_prefix)
        if not ids:
            raise ValueError("the question prompt encodes to zero tokens")
        return ids

    def _retrieve(self, query: Query, prompt_ids: list[int] | None = None) -> AnswerCache:
        """Per-layer top-k frame blocks for the bare question, loaded with the sink into an answer cache
        (capacity for the prompt `prompt_ids`, encoded here when not given, and `max_new_tokens`). Timed
        as "retrieval" = "retrieval_select" (the retrieval pass, one host sync for every layer's
        selection) + "retrieval_load" (answer_loading.py: copies on a side stream, the compute stream
        waiting on one layer's event at a time)."""
        prompt = len(self._prompt_ids(query) if prompt_ids is None else prompt_ids)
        with self.timer.stage("retrieval"):
            with self.timer.stage("retrieval_select"):
                selected = self._select_blocks(query.retrieval_text if query.retrieval_text is not None else query.prompt)
            with self.timer.stage("retrieval_load"):
                cache = self._load_blocks(selected, prompt, query.max_new_tokens)
        return cache

    def _load_blocks(self, selected: list[list[int]], prompt: int, max_new_tokens: int) -> AnswerCache:
        """Answer cache with room for [sink + `selected` blocks + `prompt` tokens + `max_new_tokens`]."""
        chosen = len(selected[0]) if selected else 0
        layered = self.variable_blocks or bool(self.compression.context_methods)
        lengths = self.store.lengths
        if layered:  # per-layer visual token counts (variable blocks differ per layer)
            visual = [sum(lengths[i] for i in s) for s in selected] if selected else [0] * self.stack.num_layers
        else:
            visual = [chosen * self.block_tokens]
        context = self.window.n_init + max(visual)
        capacity = context + prompt + max_new_tokens + 1
        if layered:
            cache = LayeredAnswerCache(*self._shape(), capacity, self.dtype, self.device, self.rope)
        else:
            cache = self._plain_answer_cache(capacity, context, prompt)
        lazy = self.config.load_during_prefill and chosen
        pending = self.loader.start(selected, LOAD_AHEAD if lazy else None) if chosen else None

        def load(layer: int) -> None:
            keys, values = pending.layer(layer) if chosen else (None, None)
            if self.window.n_init:
                sink_k, sink_v = self.window.init_keys[layer], self.window.init_values[layer]
                keys = sink_k if keys is None else torch.cat([sink_k, keys], dim=1)
                values = sink_v if values is None else torch.cat([sink_v, values], dim=1)
            if keys is not None:
                cache.load(layer, keys, values)

        if lazy:  # the answer pre-fill loads layer l right before layer l attends (`_forward_answer`)
            cache.pending_load = load
        elif chosen and not layered:  # every layer in one pass: one unstage, one rotation, two copies
            # (`_select_blocks` gives every layer the same number of blocks, so one context length fits all)
            keys, values = pending.all_layers()
            if self.window.n_init:
                keys = torch.cat([self.window.init_keys, keys], dim=2)
                values = torch.cat([self.window.init_values, values], dim=2)
            cache.load_all(keys, values)
        else:
            for layer in range(self.stack.num_layers):
                load(layer)
        if layered:
            cache.loaded_layers([self.window.n_init + count for count in visual])
            self.compression.start_answer([(self.window.n_init, self.window.n_init + count) for count in visual])
        else:
            cache.loaded(context)
        return cache

    def _plain_answer_cache(self, capacity: int, context: int, prompt: int) -> AnswerCache:
        """A fresh cache of `capacity` rows (eager path), or - with the static answer pre-fill - the host's
        persistent cache, grown (rounded up to 1024 rows) when a question needs more, so its address and
        shape stay the same across questions and one captured pre-fill graph replays for all of them. Its
        room includes the prompt's padding (graphed_answer.py)."""
        if self.answer_prefill is None:
            return AnswerCache(*self._shape(), capacity, self.dtype, self.device, self.rope)
        needed = max(capacity, context + self.answer_prefill.padded(prompt))
        cache = self._answer_cache
        if cache is None or cache.keys.shape[2] < needed:
            cache = AnswerCache(*self._shape(), -(-needed // 1024) * 1024, self.dtype, self.device, self.rope)
            self._answer_cache = cache
        cache.length, cache.pending_load = 0, None
        return cache

    def _select_blocks(self, text: str) -> list[list[int]]:
        """Every layer's selected block indices (ascending) as host lists: ONE device->host sync for all
        layers (none when every block is retrieved). `_last_selection` keeps them as tensors."""
        if self.store.num_blocks == 0:
            return []
        topk = self.config.retrieve_size
        if topk is None or topk >= self.store.num_blocks:
            everything = torch.arange(self.store.num_blocks, device=self.device)
            self._last_selection = [everything] * self.stack.num_layers
            return [list(range(self.store.num_blocks))] * self.stack.num_layers
        ids = self.codec.encode(text)
        if not ids:
            raise ValueError("the retrieval text encodes to zero tokens")
        chosen = self.steps.select(self.stack.embed(ids, self.device), self.store, topk)  # [L, topk] on the device
        self._last_selection = list(chosen.unbind(0))
        selected = chosen.tolist()  # the one sync (every layer selects topk blocks)
        if self.compression.context_methods:  # e.g. a bounded store refreshing what was restored
            restored = sorted({self.store.ids[i] for layer in selected for i in layer})
            self.compression.blocks_restored(restored)
        return selected

    def _shape(self) -> tuple[int, int, int]:
        return self.stack.num_layers, self.stack.kv_heads, self.stack.head_dim

    def _forward_answer(self, cache: AnswerCache, ids: list[int]) -> torch.Tensor:
        """Pre-fill `ids` over the answer cache; returns final hidden states [len(ids), hidden]."""
        layered = isinstance(cache, LayeredAnswerCache)
        backend = (LayeredAnswerAttention(cache, len(ids), self.compression.decode_keys) if layered
                   else AnswerAttention(cache, len(ids)))
        load = cache.pending_load
        if load is not None:  # load_during_prefill: blocks arrive layer by layer inside this call
            cache.pending_load = None
            backend = LoadBeforeAttention(backend, load)
        hidden = self.stack.run(self.stack.embed(ids, self.device), backend)
        if layered:
            cache.advance(len(ids))
        else:
            cache.length += len(ids)
        return hidden

    def _generate(self, cache: AnswerCache, prompt_ids: list[int], max_new_tokens: int) -> list[int]:
        with self.timer.stage("answer_prefill"):
            logits = None
            if self.answer_prefill is not None and type(cache) is AnswerCache and cache.pending_load is None:
                logits = self.answer_prefill.prefill(cache, self.stack.embed(prompt_ids, self.device))
                if logits is not None:  # static / graphed pre-fill (graphed_answer.py)
                    cache.length += len(prompt_ids)
            if logits is None:
                logits = self.stack.logits(self._forward_answer(cache, prompt_ids)[-1])
        eos = set(self.codec.eos_token_ids)
        first = self._pick(logits, eos, first=True)
        if self.decoder is not None and type(cache) is AnswerCache and first not in eos:
            # static decoding steps (CUDA graph per answer on CUDA); the layered cache stays eager
            return [first] + self.decoder.generate(cache, first, max_new_tokens - 1, lambda token: token in eos)
        out: list[int] = []
        for step in range(max_new_tokens):
            token = self._pick(logits, eos, first=step == 0)
            if token in eos:
                break
            out.append(token)
            if step + 1 < max_new_tokens:
                logits = self.stack.logits(self._forward_answer(cache, [token])[-1])
        return out

    def _pick(self, logits: torch.Tensor, eos: set[int], first: bool) -> int:
        """Greedy; at the first step an end-of-sequence token is replaced by the best other token."""
        if not (first and self.config.forbid_eos_first):
            return int(torch.argmax(logits))
        ranked = torch.topk(logits, min(len(eos) + 1, logits.shape[-1])).indices.tolist()
        return next(token for token in ranked if token not in eos)

    @torch.no_grad()
    def prompt_logits(self, query: Query) -> torch.Tensor:
        """Logits [P, vocab] at every prompt position after retrieval (for equivalence checks)."""
        prompt_ids = self._prompt_ids(query)
        cache = self._retrieve(query, prompt_ids)
        return self.stack.logits(self._forward_answer(cache, prompt_ids)).float()
