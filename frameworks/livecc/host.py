"""LiveCC (Qwen2-VL-7B trained on streaming ASR) as a streaming VideoLLM host, with STC hooks.

    host = LiveCCHost(build_random_livecc(qwen2_vl_config("tiny"), "float32", "cpu"), LiveCCConfig(...), spec)
    host.reset()                                   # new video
    host.ingest(frames_uint8, timestamps)          # streaming mode: every complete turn is pre-filled now
    text = host.answer(Query(prompt=...))          # restricted logits (OVO protocol) or greedy text
    host.commentary                                # streaming mode with commentary=True: [(start, stop, text)]

Two modes (frameworks-benchmarks.md §A4):
  clip      LiveCC's QA protocol: every frame since reset() is ONE video (per-frame budget shared over the
            clip, at most 480 frames) in one user turn, the question after it, then "The answer is:\\n".
            The [system, user, video] pre-fill is kept and reused for further questions on the same frames.
  streaming the live loop: turn 1 = 3 s (6 frames) with the default query, then one user turn per second
            ("Time=a-bs" + 2 frames). Ids and the KV cache (a stock `DynamicCache`) carry over between
            turns; the closing token of each assistant turn is dropped and the next turn starts with
            "<|im_end|>\\n" (demo `infer.py`). A question joins the open (incomplete) turn.
Per video block: frames -> smart_resize -> patchify -> Qwen2-VL ViT (one call per turn as LiveCC runs
it; STC-Cacher, attached through `HostCompression.attach(visual)`, treats each 2-frame group as one
frame of its schedule) -> merged tokens [groups, rows·cols, 3584] -> TOKENS methods per group (e.g. STC-Pruner;
kept tokens keep their original (t, h, w) M-RoPE indices) -> the language model is called directly with
`inputs_embeds` and explicit [3, 1, L] positions (`frameworks/livecc/mrope.py`).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from transformers import DynamicCache, LogitsProcessorList, RepetitionPenaltyLogitsProcessor

from frameworks.common.compression import HostCompression
from frameworks.common.frame_sampling import uniform_indices
from frameworks.common.host_checks import check_ingest, peak_memory_mb, reset_peak_memory
from frameworks.common.llava_video import pixel_normalization
from frameworks.common.timing import EventTimer
from frameworks.common.uploads import upload
from frameworks.livecc.answers import StreamingEOSThreshold, choice_token_ids, restricted_choice
from frameworks.livecc.config import LiveCCConfig
from frameworks.livecc.loading import LoadedLiveCC
from frameworks.livecc.mrope import TurnInputs, VideoBlock, assemble, released_positions
from frameworks.livecc.turns import Turn, TurnBuilder
from frameworks.livecc.video import clip_max_pixels, patchify, resize_frames, smart_resize
from frameworks.livecc.vit import VisionCallArgs
from frameworks.protocol import Query, StageTimings
from stc.compression import TokenSide


@dataclass
class _Mark:
    """Where the stream stood before a question turn (the question is cropped away afterwards)."""

    cache_length: int
    history_length: int
    next_position: int


class LiveCCHost:
    """Implements `frameworks.protocol.StreamingVideoLLM` for one stream at a time."""

    name = "livecc"

    def __init__(self, loaded: LoadedLiveCC, config: LiveCCConfig, compression=None):
        self.config = config
        self.model, self.codec, self.patch_spec = loaded.model, loaded.codec, loaded.patches
        inner = self.model.model
        self.visual, self.language_model, self.lm_head = inner.visual, inner.language_model, self.model.lm_head
        self.device, self.dtype = self.model.device, self.model.dtype
        self.normalization = pixel_normalization(self.patch_spec.mean, self.patch_spec.std, self.device)
        model_config = self.model.config
        self.video_token_id = model_config.video_token_id
        self.vision_start_id, self.vision_end_id = model_config.vision_start_token_id, model_config.vision_end_token_id
        self.supports_incremental = config.mode == "streaming"
        self.compression = HostCompression(compression, None, host="livecc")
        self._attach_vision_methods()
        self.choice_ids = choice_token_ids(self.codec, config.answer_choices)
        self.streaming_eos_id = self.codec.encode(" ...")[-1]
        self.eos_ids = set(self.codec.eos_token_ids)
        self.vit_args = VisionCallArgs(self.visual, self.device)  # sync-free tower calls (frameworks/livecc/vit.py)
        self.timer = EventTimer(self.device)
        self.builder = TurnBuilder(config.first_turn_frames, config.turn_frames, config.frame_interval)
        self.last_inputs: Optional[TurnInputs] = None  # the latest pre-fill call (inspection, tests)
        self.reset()

    def _attach_vision_methods(self) -> None:
        if not self.compression.vision_methods:
            return
        try:
            self.compression.attach(self.visual)
        except (ValueError, TypeError, AttributeError, KeyError, NotImplementedError) as error:
            raise ValueError(f"compression={self.compression.label}: cannot attach to the livecc host's Qwen2-VL vision "
                             f"tower ({type(self.visual).__name__}): {str(error).splitlines()[0]}") from None

    # ---- protocol ------------------------------------------------------------------------------
    def reset(self) -> None:
        self.cache = DynamicCache(config=self.language_model.config)
        self.history_ids: list[int] = []
        self.next_position = 0
        self.first_turn_delta: Optional[int] = None
        self.builder.reset()
        self.clip_frames: list[torch.Tensor] = []
        self._clip_mark: Optional[tuple[int, _Mark]] = None
        self.groups_seen = 0
        self.commentary: list[tuple[float, float, str]] = []
        self.compression.reset()
        self.timer.reset()
        self._counts = dict(frames=0, tokens_in=0, tokens_kept=0, turns=0, answers=0, generated_tokens=0,
                            commentary_tokens=0)
        reset_peak_memory(self.device)

    @torch.no_grad()
    def ingest(self, frames: torch.Tensor, timestamps: Sequence[float] = ()) -> None:
        check_ingest(frames, timestamps)
        self._counts["frames"] += frames.shape[0]
        if self.config.mode == "clip":
            self.clip_frames.extend(frames.cpu().unbind(0))
            return
        for turn in self.builder.push(frames.cpu(), timestamps):
            self.stream_turn(turn)

    @torch.no_grad()
    def answer(self, query: Query) -> str:
        logits, mark = self._question(query)
        if self.config.answer_mode == "restricted":
            text = restricted_choice(logits, self.choice_ids, self.config.answer_choices)
        else:
            with self.timer.stage("decode"):
                ids = self.generate(logits, query.max_new_tokens)
            self._counts["generated_tokens"] += len(ids)
            text = self.codec.decode([i for i in ids if i not in self.eos_ids])
        self._after_question(mark)
        self._counts["answers"] += 1
        return text

    @torch.no_grad()
    def answer_logits(self, query: Query) -> torch.Tensor:
        """Full next-token logits [vocab] at the answer position (state afterwards as after `answer`)."""
        logits, mark = self._question(query)
        self._after_question(mark)
        return logits.float()

    @property
    def timings(self) -> StageTimings:
        totals = self.timer.totals()
        counts = self._counts
        reference_frames, selective_frames = self.compression.frame_kinds()
        peak = peak_memory_mb(self.device)
        extra = {f"{name}_ms": totals.get(name, 0.0) for name in ("preprocess", "answer_prefill")}
        extra.update(turns=counts["turns"], answers=counts["answers"], generated_tokens=counts["generated_tokens"],
                     commentary_tokens=counts["commentary_tokens"], groups=self.groups_seen, mode=self.config.mode,
                     cache_tokens=self.cache.get_seq_length(), compression=self.compression.stats())
        return StageTimings(
            vit_ms=totals.get("vit", 0.0), prefill_ms=totals.get("prefill", 0.0), pruner_ms=totals.get("pruner", 0.0),
            decode_ms=totals.get("decode", 0.0), frames=counts["frames"], visual_tokens_in=counts["tokens_in"],
            visual_tokens_kept=counts["tokens_kept"], vit_reference_frames=reference_frames,
            vit_selective_frames=selective_frames, peak_memory_mb=peak, extra=extra)

    def close(self) -> None:
        """Detach VISION-stage methods (the tower's original layer classes come back)."""
        self.compression.close()

    # ---- text pieces -----------------------------------------------------------------------------
    def _turn_head(self) -> str:
        """Opening text of the next user turn: the system block on an empty stream, else the closing token of
        the previous assistant turn (dropped from the history, as upstream) and a new user turn."""
        if not self.history_ids:
            return f"<|im_start|>system\n{self.config.system_prompt}<|im_end|>\n<|im_start|>user\n"
        return "<|im_end|>\n<|im_start|>user\n"

    def _user_turn(self, head: str, block: Optional[VideoBlock], tail: str) -> list:
        """[head text, <|vision_start|>, video, <|vision_end|>, tail text] (no video: head + tail)."""
        if block is None:
            return [self.codec.encode(head + tail)]
        return [self.codec.encode(head) + [self.vision_start_id], block, [self.vision_end_id], self.codec.encode(tail)]

    @staticmethod
    def _closing(prefix: str) -> str:
        return "<|im_end|>\n<|im_start|>assistant\n" + prefix

    # ---- video -----------------------------------------------------------------------------------
    def video_block(self, frames: torch.Tensor, min_pixels: int, max_pixels: int) -> VideoBlock:
        """uint8 frames [F, H, W, 3] -> merged tokens of their 2-frame groups (TOKENS methods applied)."""
        spec = self.patch_spec
        size = smart_resize(frames.shape[1], frames.shape[2], spec.factor, min_pixels, max_pixels)
        with self.timer.stage("preprocess"):
            pixels = resize_frames(frames, size, spec, self.device, self.visual.dtype, self.normalization)
            values, (groups, grid_h, grid_w) = patchify(pixels, spec)
        rows, cols = grid_h // spec.merge_size, grid_w // spec.merge_size
        with self.timer.stage("vit"):
            tokens = self.encode_groups(values, groups, grid_h, grid_w)  # [groups, rows*cols, D]
        self._counts["tokens_in"] += tokens.shape[0] * tokens.shape[1]
        block = VideoBlock.full(tokens.reshape(-1, tokens.shape[-1]), groups, rows, cols)
        if self.compression.token_methods:
            with self.timer.stage("pruner"):
                side = TokenSide(grid=(rows, cols), frame_offset=self.groups_seen)
                kept, indices = self.compression.compress_tokens(tokens, side)
                if indices is None:
                    raise ValueError(f"compression={self.compression.label}: the livecc host needs the indices of the "
                                     "kept tokens (their M-RoPE positions); a method that merges tokens returned none")
                flat = (indices + torch.arange(groups, device=indices.device)[:, None] * rows * cols).reshape(-1)
                order = torch.argsort(flat)
                block = block.select(flat[order])
        self.groups_seen += groups
        self._counts["tokens_kept"] += block.features.shape[0]
        return block

    def encode_groups(self, values: torch.Tensor, groups: int, grid_h: int, grid_w: int) -> torch.Tensor:
        """Qwen2-VL ViT + merger on `groups` 2-frame groups -> [groups, rows*cols, D], in ONE call per video
        block as LiveCC runs it (each group attends only to itself through cu_seqlens). A VISION method such
        as STC-Cacher sees the call as `groups` rows, the 2-frame group being its frame (schedule unit);
        rows of one call are planned exactly as if fed one at a time (stc/cacher/plan.py)."""
        merged = self.visual(values, **self.vit_args(groups, grid_h, grid_w)).pooler_output
        return merged.reshape(groups, -1, merged.shape[-1])

    # ---- language model --------------------------------------------------------------------------
    def prefill(self, pieces: Sequence, stage: str = "prefill") -> torch.Tensor:
        """Append one pre-fill call (text ids and video blocks) to the stream; returns the last logits."""
        inputs = assemble(pieces, self.next_position, self.video_token_id, self.device)
        cache_length = len(self.history_ids)
        positions = inputs.positions
        if self.config.mrope == "released" and self.first_turn_delta is not None:
            positions = released_positions(len(inputs.ids), cache_length, self.first_turn_delta, self.device)
        with self.timer.stage(stage):
            ids = upload(inputs.ids, self.device)  # no stream sync (uploads.py)
            embeds = self.language_model.embed_tokens(ids)
            if inputs.visual is not None:
                embeds = embeds.masked_scatter(inputs.visual_mask[:, None], inputs.visual.to(embeds.dtype))
            hidden = self.language_model(inputs_embeds=embeds[None], position_ids=positions[:, None, :],
                                         past_key_values=self.cache, use_cache=True).last_hidden_state
            logits = self.lm_head(hidden[0, -1])
        self.history_ids.extend(inputs.ids)
        self.next_position = int(positions.max()) + 1 if self.config.mrope == "released" else inputs.next_position
        if self.first_turn_delta is None:
            self.first_turn_delta = self.next_position - len(self.history_ids)
        self.last_inputs = TurnInputs(inputs.ids, positions, inputs.visual, inputs.visual_mask, self.next_position)
        return logits

    def _feed(self, token: int) -> torch.Tensor:
        ids = torch.tensor([[token]], device=self.device)
        positions = torch.full((3, 1, 1), self.next_position, device=self.device, dtype=torch.long)
        hidden = self.language_model(inputs_embeds=self.language_model.embed_tokens(ids), position_ids=positions,
                                     past_key_values=self.cache, use_cache=True).last_hidden_state
        self.history_ids.append(token)
        self.next_position += 1
        return self.lm_head(hidden[0, -1])

    def generate(self, logits: torch.Tensor, max_new_tokens: int, extra: Sequence = ()) -> list[int]:
        """Greedy decoding with the repetition penalty over the whole history (as `generate` does). The last
        token (end of turn or budget) is not fed, so the cache ends one token before it, as upstream."""
        processors = LogitsProcessorList([RepetitionPenaltyLogitsProcessor(self.config.repetition_penalty), *extra])
        history = torch.tensor([self.history_ids], device=self.device)  # grows on the device, one token per step
        out: list[int] = []
        for step in range(max_new_tokens):
            token = int(torch.argmax(processors(history, logits[None].float())))
            out.append(token)
            if token in self.eos_ids or step + 1 == max_new_tokens:
                break
            logits = self._feed(token)
            history = torch.cat([history, history.new_full((1, 1), token)], dim=1)
        return out

    # ---- streaming turns -------------------------------------------------------------------------
    def stream_turn(self, turn: Turn, query: Optional[str] = None) -> Optional[str]:
        """Pre-fill one complete turn; with `commentary`, decode its commentary (returned and recorded)."""
        logits = self.prefill_turn(turn, query)
        return self.comment(turn, logits) if self.config.commentary else None

    def prefill_turn(self, turn: Turn, query: Optional[str] = None) -> torch.Tensor:
        """ViT + TOKENS methods + LLM pre-fill of one user turn; returns the next-token logits."""
        text = query if query is not None else (self.config.default_query if turn.first else "")
        block = self.video_block(turn.frames, self.config.min_pixels, self.config.max_pixels)
        logits = self.prefill(self._user_turn(self._turn_head() + turn.label, block, text + self._closing("")))
        self._counts["turns"] += 1
        return logits

    def comment(self, turn: Turn, logits: torch.Tensor) -> str:
        """Decode the commentary of a pre-filled turn (greedy, repetition penalty, streaming-EOS threshold)."""
        extra = []
        if self.config.streaming_eos_base_threshold is not None:
            extra = [StreamingEOSThreshold(self.streaming_eos_id, self.config.streaming_eos_base_threshold,
                                           self.config.streaming_eos_threshold_step)]
        with self.timer.stage("decode"):
            ids = self.generate(logits, self.config.commentary_max_new_tokens, extra)
        self._counts["commentary_tokens"] += len(ids)
        comment = self.codec.decode([i for i in ids if i not in self.eos_ids])
        self.commentary.append((turn.start, turn.stop, comment))
        return comment

    # ---- questions -------------------------------------------------------------------------------
    def _mark(self) -> _Mark:
        return _Mark(self.cache.get_seq_length(), len(self.history_ids), self.next_position)

    def _rewind(self, mark: _Mark) -> None:
        surplus = self.cache.get_seq_length() - mark.cache_length
        if surplus > 0:
            self.cache.crop(-surplus)  # negative = drop the last tokens (positive crop is deprecated in 5.17)
        del self.history_ids[mark.history_length:]
        self.next_position = mark.next_position

    def _question(self, query: Query) -> tuple[torch.Tensor, Optional[_Mark]]:
        tail = query.prompt + self._closing(query.answer_prefix or self.config.answer_prefix)
        if self.config.mode == "clip":
            self._clip_prefix()
            mark = self._clip_mark[1]
            with self.timer.stage("answer_prefill"):
                logits = self.prefill([self.codec.encode(tail)], stage="prefill")
            return logits, mark
        mark = None if self.config.keep_answers else self._mark()
        pending = self.builder.pending()
        if pending is None:
            logits = self.prefill(self._user_turn(self._turn_head(), None, tail))
        else:
            # frames of the open turn: when the question is cropped away they are encoded again with their turn,
            # so here they are not frames of the cacher's stream (bypass keeps its schedule question-independent)
            with self.compression.bypass() if mark is not None else nullcontext():
                block = self.video_block(pending.frames, self.config.min_pixels, self.config.max_pixels)
            logits = self.prefill(self._user_turn(self._turn_head() + pending.label, block, tail))
            if self.config.keep_answers:  # the question turn stays in the history with its frames
                self.builder.take_pending()
                self._counts["turns"] += 1
        return logits, mark

    def _after_question(self, mark: Optional[_Mark]) -> None:
        if mark is not None:
            self._rewind(mark)

    def _clip_prefix(self) -> None:
        """Pre-fill [system, user, the whole clip] once per set of frames; later questions reuse it."""
        if not self.clip_frames:
            raise ValueError("livecc: answer() before any frame was ingested since reset()")
        if self._clip_mark is not None and self._clip_mark[0] == len(self.clip_frames):
            self._rewind(self._clip_mark[1])
            return
        self.cache = DynamicCache(config=self.language_model.config)
        self.history_ids, self.next_position, self.first_turn_delta = [], 0, None
        self.compression.reset()
        self.groups_seen = 0
        config = self.config
        frames = torch.stack([self.clip_frames[i] for i in uniform_indices(len(self.clip_frames), config.clip_max_frames)])
        budget = clip_max_pixels(frames.shape[0], config.clip_min_pixels, config.clip_max_pixels, config.clip_total_pixels)
        block = self.video_block(frames, config.clip_min_pixels, budget)
        head = self._turn_head()   # the history is empty: the system block and the user turn's opening
        self.prefill([self.codec.encode(head) + [self.vision_start_id], block, [self.vision_end_id]])
        self._clip_mark = (len(self.clip_frames), self._mark())
