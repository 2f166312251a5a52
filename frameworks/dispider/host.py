"""Dispider streaming video QA on stock transformers classes, with the compression seam (STC).

    host = DispiderHost(build_random_dispider(DispiderArchitecture.from_sizes("tiny"), "float32", "cpu"),
                        DispiderSettings(random_weights=True, preset="tiny"), {"cacher": {...}})
    host.reset(); host.ingest(frames_uint8, timestamps); text = host.answer(Query(prompt=...))

Ingest (sampling=stream, the default): frames are squashed to a square and resized to the CLIP size
as they arrive; every `frames_per_clip` frames make a clip, which is encoded at once: CLIP-L/14
(hidden_states[select_layer], CLS dropped; `vit_frames_per_call` frames per call, 16 = one call per
clip as released; VISION methods such as STC-Cacher see the clip's frames in order) -> 2x2
concatenation (64 x 4096 per frame) -> TOKENS methods (e.g. STC-Pruner, beyond upstream: the pooled
slots still come from all 64 tokens) -> PoolProjector -> compressor pass 1. The clip keeps its memory
tokens, indicator and first-frame CLIP tokens; nothing else of the clip is kept.
Answer: clips (a trailing partial clip joins when it is long enough, see DispiderSettings) -> pass 2
(global memory) -> question state -> grounding -> reaction LLM input [per selected clip: clip_projector
(CLIP tokens) ++ compress_projector(memory)] ++ compress_projector(global memory), spliced into the
`qwen` template at <image> -> greedy decoding until <|im_end|>.
`recompute_per_question` / `sampling=released` rebuild every clip at each question (released cost).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F

from frameworks.common.compression import HostCompression
from frameworks.common.greedy import greedy_from_embeds
from frameworks.common.host_checks import check_ingest, peak_memory_mb, reset_peak_memory
from frameworks.common.llava_video import pixel_normalization, preprocess_frames, tower_features
from frameworks.common.timing import EventTimer
from frameworks.common.uploads import upload, upload_tensor
from frameworks.dispider import compressor as passes
from frameworks.dispider.config import DispiderSettings
from frameworks.dispider.loading import LoadedDispider
from frameworks.dispider.model import concat_2x2
from frameworks.dispider.sampling import midpoint_indices, released_clips, squash_to_square, thin_clips
from frameworks.protocol import Query, StageTimings
from stc.compression import Stage, TokenSide


@dataclass
class VideoState:
    """Everything one stream holds between reset() calls."""

    clips: list = field(default_factory=list)            # ClipMemory of completed clips (stream sampling)
    pending: list = field(default_factory=list)          # uint8 [s, s, 3] frames of the open clip
    pending_times: list = field(default_factory=list)
    kept: list = field(default_factory=list)             # all frames (uint8, CPU) when recomputing
    kept_times: list = field(default_factory=list)
    frames_seen: int = 0                                 # frames given to VISION/TOKENS methods


class DispiderHost:
    """Implements `frameworks.protocol.StreamingVideoLLM` for one stream at a time."""

    name = "dispider"
    supports_incremental = True

    def __init__(self, loaded: LoadedDispider, settings: DispiderSettings, compression=None):
        self.settings = settings
        self.model, self.codec, self.compressor_codec = loaded.model, loaded.codec, loaded.compressor_codec
        self.ans_id, self.todo_id, self.pixel_spec = loaded.ans_id, loaded.todo_id, loaded.pixels
        self.arch = self.model.arch
        self.device, self.dtype = self.model.device, self.model.dtype
        self.normalization = pixel_normalization(self.pixel_spec.mean, self.pixel_spec.std, self.device)
        self.grid = (self.arch.grid // 2,) * 2
        self.compression = HostCompression(compression, self.arch.tokens_per_frame, host="dispider",
                                           supported_stages=(Stage.VISION, Stage.TOKENS))
        self.compression.attach(self.model.vision_tower)
        self.memory_slots = settings.frames_per_clip * self.arch.pool_num
        self.timer = EventTimer(self.device)
        self.reset()

    # ---- protocol ------------------------------------------------------------------------------
    def reset(self) -> None:
        self.state = VideoState()
        self.compression.reset()
        self.timer.reset()
        self._counts = dict(frames=0, tokens_in=0, tokens_kept=0, answers=0, generated_tokens=0, clips_encoded=0,
                            tail_frames=0)
        self.last: dict = {}
        reset_peak_memory(self.device)

    @torch.no_grad()
    def ingest(self, frames: torch.Tensor, timestamps: Sequence[float]) -> None:
        check_ingest(frames, timestamps)
        if len(timestamps) != frames.shape[0]:  # Dispider places frames in clips by their timestamps
            raise ValueError(f"ingest got {frames.shape[0]} frames but {len(timestamps)} timestamps")
        if frames.shape[0] == 0:
            return
        with self.timer.stage("preprocess"):
            square = self.resize(frames)
        self._counts["frames"] += square.shape[0]
        state = self.state
        if self.settings.recomputes:
            state.kept.extend(square.cpu().unbind(0))
            state.kept_times.extend(float(t) for t in timestamps)
            return
        size = self.settings.frames_per_clip
        for frame, time in zip(square.unbind(0), timestamps):
            state.pending.append(frame)
            state.pending_times.append(float(time))
            if len(state.pending) == size:
                state.clips.append(self.encode_clip(torch.stack(state.pending), state.pending_times))
                state.pending, state.pending_times = [], []

    @torch.no_grad()
    def answer(self, query: Query) -> str:
        clips = self.answer_clips()
        with self.timer.stage("retrieval"):
            chosen, global_memory = self.ground(clips, query.prompt)
        with self.timer.stage("decode"):
            ids = greedy_from_embeds(self.model.reaction, self.reaction_input(clips, chosen, global_memory, query),
                                     query.max_new_tokens, self.codec.eos_token_ids)
        self._counts["answers"] += 1
        self._counts["generated_tokens"] += len(ids)
        return self.codec.decode(ids)

    @property
    def timings(self) -> StageTimings:
        totals, counts = self.timer.totals(), self._counts
        reference_frames, selective_frames = self.compression.frame_kinds()
        peak = peak_memory_mb(self.device)
        extra = {"preprocess_ms": totals.get("preprocess", 0.0), "answers": counts["answers"],
                 "generated_tokens": counts["generated_tokens"], "clips_encoded": counts["clips_encoded"],
                 "clips_cached": len(self.state.clips), "tail_frames_encoded": counts["tail_frames"],
                 "compression": self.compression.stats(), **self.last}
        return StageTimings(
            vit_ms=totals.get("vit", 0.0), prefill_ms=totals.get("prefill", 0.0), pruner_ms=totals.get("pruner", 0.0),
            retrieval_ms=totals.get("retrieval", 0.0), decode_ms=totals.get("decode", 0.0), frames=counts["frames"],
            visual_tokens_in=counts["tokens_in"], visual_tokens_kept=counts["tokens_kept"],
            vit_reference_frames=reference_frames, vit_selective_frames=selective_frames, peak_memory_mb=peak,
            extra=extra)

    def close(self) -> None:
        """Detach VISION-stage methods (CLIP's original layer classes come back)."""
        self.compression.close()

    # ---- frames -> clip memories ---------------------------------------------------------------
    def resize(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 [F, H, W, 3] -> uint8 [F, S, S, 3] at the CLIP size (released square squash, then a
        bicubic resize rounded to uint8 like the CLIP processor's PIL resize), on the host device."""
        square = upload_tensor(squash_to_square(frames), self.device)  # no stream sync (uploads.py)
        size = self.pixel_spec.size
        if square.shape[1] == size:
            return square
        maps = F.interpolate(square.permute(0, 3, 1, 2).float(), size=(size, size), mode="bicubic",
                             antialias=True, align_corners=False)
        return maps.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()

    def frame_tokens(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 [F, S, S, 3] -> concatenated CLIP tokens [F, 64, 4096] (timed as "vit"; the frames pass
        through the VISION methods in order, `vit_frames_per_call` frames per tower call)."""
        pixels = preprocess_frames(frames, self.pixel_spec, self.device, self.dtype, self.normalization)
        step = self.settings.vit_frames_per_call
        with self.timer.stage("vit"):
            features = [tower_features(self.model.vision_tower, pixels[i:i + step], self.arch.select_layer, "default")
                        for i in range(0, pixels.shape[0], step)]
            return concat_2x2(torch.cat(features))

    def encode_clip(self, frames: torch.Tensor, times: Sequence[float], stream_frames: bool = True) -> passes.ClipMemory:
        """One clip through CLIP, the TOKENS methods and compressor pass 1. `stream_frames=False` (a
        provisional tail clip) runs CLIP outside the VISION methods' schedule and skips TOKENS methods,
        so the stream's STC state only ever sees each frame once, in order."""
        return self.encode_clips([frames], [times], stream_frames)[0]

    def encode_clips(self, clips: Sequence[torch.Tensor], times: Sequence[Sequence[float]],
                     stream_frames: bool = True) -> list[passes.ClipMemory]:
        """Several clips: CLIP per clip, then ONE batched pass 1 over all of them (released layout)."""
        texts, visuals, kept_tokens = [], [], []
        embed = self.model.compressor.get_input_embeddings()
        for frames, stamps in zip(clips, times):
            if stream_frames:
                tokens = self.frame_tokens(frames)
            else:
                with self.compression.bypass():
                    tokens = self.frame_tokens(frames)
            kept = tokens
            if stream_frames and self.compression.token_methods:
                with self.timer.stage("pruner"):
                    side = TokenSide(grid=self.grid, frame_offset=self.state.frames_seen)
                    kept, _ = self.compression.compress_tokens(tokens, side)
            if stream_frames:
                self.state.frames_seen += tokens.shape[0]
                self._counts["tokens_in"] += tokens.shape[0] * tokens.shape[1]
                self._counts["tokens_kept"] += kept.shape[0] * kept.shape[1]
            with self.timer.stage("prefill"):
                visuals.append(self.model.pool_projector(kept, full=tokens))
                ids = self.compressor_codec.encode(passes.clip_text(stamps[0], stamps[-1]))
                texts.append(embed(upload(ids, self.device)))
            # clone: a view would keep the whole clip's [16, 64, 4096] tokens alive for the video's lifetime
            kept_tokens.append(tokens[:1].clone() if self.settings.reaction_frames == "first" else tokens)
        with self.timer.stage("prefill"):
            states = passes.clip_memories(self.model.compressor, texts, visuals, self.memory_slots)
        if stream_frames:
            self._counts["clips_encoded"] += len(clips)
        return [passes.ClipMemory(memory, indicator, tokens, int(round(stamps[0])), int(round(stamps[-1])))
                for (memory, indicator), tokens, stamps in zip(states, kept_tokens, times)]

    # ---- question ------------------------------------------------------------------------------
    def answer_clips(self) -> list[passes.ClipMemory]:
        """The clips a question sees: cached (or rebuilt) complete clips, capped at `max_clips` by uniform
        thinning, plus a provisional tail clip when long enough (or when no clip is complete)."""
        state, settings = self.state, self.settings
        if self.settings.recomputes:
            return self.rebuild_clips()
        clips = thin_clips(state.clips, settings.max_clips)
        tail = len(state.pending)
        if self.tail_joins(tail, clips):
            picks = midpoint_indices(tail, settings.frames_per_clip)
            frames = torch.stack([state.pending[i] for i in picks])
            clips.append(self.encode_clip(frames, [state.pending_times[i] for i in picks], stream_frames=False))
            self._counts["tail_frames"] += tail
        if not clips:
            raise RuntimeError("dispider host: answer() before any frame was ingested")
        return clips

    def tail_joins(self, tail_frames: int, clips: list) -> bool:
        """Whether an open clip of `tail_frames` frames joins the answer: long enough, or the only frames."""
        return tail_frames > 0 and (tail_frames >= self.settings.tail_min_frames or not clips)

    def rebuild_clips(self) -> list[passes.ClipMemory]:
        """Released cost model: the VISION/TOKENS state restarts and every clip is encoded again (the
        stream layout's tail clip, as in the cached path, outside the STC schedule)."""
        state, settings = self.state, self.settings
        if not state.kept:
            raise RuntimeError("dispider host: answer() before any frame was ingested")
        size, count = settings.frames_per_clip, len(state.kept)
        tail: list[int] = []
        if settings.sampling == "released":
            groups = released_clips(state.kept_times, size, settings.max_clips)
        else:
            groups = thin_clips([list(range(i, i + size)) for i in range(0, count - size + 1, size)], settings.max_clips)
            remainder = count % size
            if self.tail_joins(remainder, groups):
                tail = [count - remainder + i for i in midpoint_indices(remainder, size)]
        self.compression.reset()
        self.state.frames_seen = 0
        gather = lambda group: torch.stack([state.kept[i] for i in group]).to(self.device)  # noqa: E731
        stamps = lambda group: [state.kept_times[i] for i in group]  # noqa: E731
        clips = self.encode_clips([gather(g) for g in groups], [stamps(g) for g in groups]) if groups else []
        if tail:
            clips.append(self.encode_clip(gather(tail), stamps(tail), stream_frames=False))
            self._counts["tail_frames"] += count % size
        return clips

    def ground(self, clips: list[passes.ClipMemory], question: str) -> tuple[list[int], torch.Tensor]:
        """Pass 2 and question grounding: (selected clip indices in time order, global memory [C, H])."""
        compressor, settings = self.model.compressor, self.settings
        embed = compressor.get_input_embeddings()
        memories = torch.cat([clip.memory for clip in clips])
        indicators = torch.stack([clip.indicator for clip in clips])
        global_memory = passes.global_memory(compressor, memories, indicators)
        ids = lambda values: upload(values, self.device)  # noqa: E731  (no stream sync: uploads.py)
        question_ids = self.compressor_codec.encode(question) + [self.todo_id]
        state = passes.question_state(compressor, embed(ids([self.ans_id])), embed(ids(question_ids)),
                                      embed(ids([self.todo_id])), memories, settings.grounding)
        chosen, scores = passes.select_clips(state, indicators, settings.grounding, settings.top_clips,
                                             settings.video_qa_threshold, settings.video_qa_max_clips, settings.temperature)
        # the silent head is evaluated (as released) but never suppresses the answer
        self.last = {"clips_answered": len(clips), "selected_clips": chosen,
                     "silent_score": float(self.model.silent_head(state).float())}
        return chosen, global_memory

    def reaction_prompt(self, query: Query) -> tuple[str, str]:
        """Text before and after the <image> slot of the `qwen` conversation template (always used:
        the template is where the video goes, so `Query.use_chat_template` does not apply here)."""
        suffix = f"\n{query.prompt} ASSISTANT:"
        if query.answer_prefix:
            suffix += " " + query.answer_prefix
        return f"{self.settings.system_prompt} USER: ", suffix

    def reaction_input(self, clips, chosen: list[int], global_memory: torch.Tensor, query: Query) -> torch.Tensor:
        model = self.model
        video = []
        for index in chosen:
            clip = clips[index]
            video.append(model.clip_projector(clip.clip_tokens.reshape(-1, clip.clip_tokens.shape[-1])))
            video.append(model.compress_projector(clip.memory))
        video.append(model.compress_projector(global_memory))
        embed = model.reaction.get_input_embeddings()
        prefix, suffix = self.reaction_prompt(query)
        text = [embed(upload(self.codec.encode(part), self.device)) for part in (prefix, suffix)]
        return torch.cat([text[0], *video, text[1]])
