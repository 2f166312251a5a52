"""StreamForest streaming video QA (SigLIP-26 -> position embeddings -> event memory forest -> MLP -> Qwen2).

    host = StreamForestHost(build_random(streamforest_sizes("tiny"), "float32", "cpu"), StreamForestConfig(...))
    host.reset()                               # new video: fresh memory forest, compression state
    host.ingest(frames_uint8, timestamps)      # incremental: encode + insert only these frames
    text = host.answer(Query(prompt=...))      # memory tokens -> MLP -> ChatML splice -> pre-fill -> greedy
    host.timings

Per frame (incremental protocol): pixels -> SigLIP (VISION-stage compression such as STC-Cacher rides on
the tower; hidden state of the last of the 26 layers, before the post-layernorm) -> + sin-cos
position embeddings (frame index in the stream) -> [TOKENS-stage compression when
`pruner_placement="before_memory"`] -> memory.insert + memory.maintain. Per question: memory tokens
(events ++ short-term frames ++ current frame) -> [TOKENS-stage compression per memory frame when
`pruner_placement="before_llm"`] -> MLP -> spliced between the ChatML prefix and the time message +
question -> one pre-fill of the whole sequence (the memory changes between questions, so no KV reuse)
-> greedy decoding with a DynamicCache. The "reread" protocol instead stores the frames and, per
question, re-encodes all of them (thinned to `max_frames`) into a fresh memory maintained once, as
upstream evaluates. See docs/streamforest/README.md.
"""

from __future__ import annotations

from typing import Sequence

import torch
from transformers import DynamicCache

from frameworks.common.compression import HostCompression
from frameworks.common.frame_sampling import uniform_indices
from frameworks.common.host_checks import check_ingest, peak_memory_mb, reset_peak_memory
from frameworks.common.llava_video import pixel_normalization, preprocess_frames, tower_features
from frameworks.common.timing import EventTimer
from frameworks.common.uploads import upload_tensor
from frameworks.protocol import Query, StageTimings
from frameworks.streamforest.config import StreamForestConfig
from frameworks.streamforest.loading import LoadedStreamForest
from frameworks.streamforest.memory import EventMemoryForest, MemorySettings
from frameworks.streamforest.positions import FramePositions
from frameworks.streamforest.prompt import prompt_halves
from stc.compression import CompressionSpec, Stage, TokenSide
from stc.compression.registry import method_class


def stage_spec(spec: CompressionSpec, stage: Stage) -> CompressionSpec:
    """The methods of `spec` that act at `stage` (the host applies VISION and TOKENS methods at different
    points and resets them on different schedules)."""
    configs = {name: config for name, config in spec.configs.items() if method_class(name).stage == stage}
    return CompressionSpec(configs=configs, label=spec.label)


class StreamForestHost:
    """Implements `frameworks.protocol.StreamingVideoLLM` for one stream at a time."""

    name = "streamforest"

    def __init__(self, loaded: LoadedStreamForest, config: StreamForestConfig | None = None, compression=None,
                 memory: MemorySettings | None = None):
        self.config = config or StreamForestConfig()
        self.model, self.codec, self.pixel_spec = loaded.model, loaded.codec, loaded.pixels
        sizes = self.model.sizes
        self.memory_settings = memory or MemorySettings.from_mapping(
            {**vars(sizes.memory), **dict(self.config.memory or {})})
        self.device, self.dtype = self.model.device, self.model.dtype
        self.normalization = pixel_normalization(self.pixel_spec.mean, self.pixel_spec.std, self.device)
        self.tower, self.lm = self.model.vision_tower, self.model.language_model
        self.grid = sizes.grid
        self.heads = sizes.vision.num_attention_heads
        self.tokens_per_frame = self.grid * self.grid
        self.supports_incremental = self.config.protocol == "incremental"
        spec = CompressionSpec.coerce(compression)
        self.spec = spec
        self.vision_compression = HostCompression(stage_spec(spec, Stage.VISION), self.tokens_per_frame,
                                                  host="streamforest", supported_stages=(Stage.VISION,))
        before_memory = self.config.pruner_placement == "before_memory"
        budget = self.tokens_per_frame if before_memory else min(self.memory_settings.long_tokens, self.tokens_per_frame)
        self.token_compression = HostCompression(stage_spec(spec, Stage.TOKENS), budget, host="streamforest",
                                                 supported_stages=(Stage.TOKENS,))
        unsupported = set(spec.configs) - set(self.vision_compression.spec.configs) - set(self.token_compression.spec.configs)
        if unsupported:
            raise ValueError(f"compression.{sorted(unsupported)[0]}: the streamforest host supports VISION and TOKENS "
                             "methods only")
        self.positions = FramePositions(sizes.vision.hidden_size, self.grid, self.device, self.dtype)
        self.vision_compression.attach(self.tower)
        self.timer = EventTimer(self.device)
        self.reset()

    # ---- protocol ------------------------------------------------------------------------------
    def reset(self) -> None:
        self.vision_compression.reset()
        self.token_compression.reset()
        self.timer.reset()
        self.memory = self._new_memory()
        self.timestamps: list[float] = []
        self.stored_frames: list[torch.Tensor] = []   # "reread" protocol: tower input of every frame
        self._counts = dict(frames=0, encoded=0, tokens_in=0, tokens_kept=0, answers=0, generated_tokens=0,
                            llm_visual_tokens=0)
        reset_peak_memory(self.device)

    @torch.no_grad()
    def ingest(self, frames: torch.Tensor, timestamps: Sequence[float] = ()) -> None:
        check_ingest(frames, timestamps)
        first = self._counts["frames"]
        stamps = [float(t) for t in timestamps] if len(timestamps) else [float(first + i) for i in range(frames.shape[0])]
        self.timestamps.extend(stamps)
        self._counts["frames"] += frames.shape[0]
        if self.supports_incremental:
            self._encode_into(self.memory, frames, first_index=first, maintain_each=True)
        else:   # keep the tower input (S x S, not the native resolution) on the CPU for the re-reads
            for start in range(0, frames.shape[0], self.config.vit_batch):
                self.stored_frames.append(self.pixels(frames[start:start + self.config.vit_batch]).cpu())

    @torch.no_grad()
    def answer(self, query: Query) -> str:
        embeds = self._answer_embeds(query)
        with self.timer.stage("prefill"):
            output = self.lm(inputs_embeds=embeds, past_key_values=DynamicCache(config=self.lm.config), use_cache=True,
                             logits_to_keep=1)   # ~9k positions x 152k vocabulary would be 2.7 GB of logits
        with self.timer.stage("decode"):
            ids = self._greedy(output, query.max_new_tokens)
        self._counts["answers"] += 1
        self._counts["generated_tokens"] += len(ids)
        return self.codec.decode(ids)

    @property
    def timings(self) -> StageTimings:
        totals = self.timer.totals()
        counts = self._counts
        reference, selective = self.vision_compression.frame_kinds()
        peak = peak_memory_mb(self.device)
        extra = {f"{name}_ms": totals.get(name, 0.0) for name in ("preprocess", "positions", "memory", "mlp")}
        extra.update(answers=counts["answers"], generated_tokens=counts["generated_tokens"],
                     frames_encoded=counts["encoded"], llm_visual_tokens=counts["llm_visual_tokens"],
                     protocol=self.config.protocol, pruner_placement=self.config.pruner_placement,
                     memory=self.memory.counts(), memory_token_bound=self.memory_settings.token_bound(),
                     compression={**self.vision_compression.stats(), **self.token_compression.stats()})
        return StageTimings(
            vit_ms=totals.get("vit", 0.0), prefill_ms=totals.get("prefill", 0.0), pruner_ms=totals.get("pruner", 0.0),
            decode_ms=totals.get("decode", 0.0), frames=counts["frames"], visual_tokens_in=counts["tokens_in"],
            visual_tokens_kept=counts["tokens_kept"], vit_reference_frames=reference, vit_selective_frames=selective,
            peak_memory_mb=peak, extra=extra)

    def close(self) -> None:
        """Detach VISION-stage methods (the tower's original layer classes come back)."""
        self.vision_compression.close()
        self.token_compression.close()

    # ---- video -> memory -----------------------------------------------------------------------
    def _new_memory(self) -> EventMemoryForest:
        return EventMemoryForest(self.memory_settings, self.heads)

    def pixels(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 [F, H, W, 3] -> normalised tower input [F, 3, S, S] on the host device (timed)."""
        with self.timer.stage("preprocess"):
            return preprocess_frames(frames, self.pixel_spec, self.device, self.dtype, self.normalization)

    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames [F, H, W, 3] or tower input [F, 3, S, S] -> tower tokens [F, grid*grid, C]
        (output of the last of the tower's layers, before the post-layernorm)."""
        pixels = self.pixels(frames) if frames.dtype == torch.uint8 else upload_tensor(frames, self.device)
        with self.timer.stage("vit"):
            return tower_features(self.tower, pixels, -1, "full")

    def _encode_into(self, memory: EventMemoryForest, frames: torch.Tensor, first_index: int, maintain_each: bool) -> None:
        """Encode `frames` (uint8 frames or tower input; stream indices first_index, ...) in tower batches
        and insert them into `memory`."""
        step = self.config.vit_batch
        for start in range(0, frames.shape[0], step):
            features = self.frame_features(frames[start:start + step])
            index = first_index + start
            with self.timer.stage("positions"):
                features = self.positions(features, index)
            self._counts["encoded"] += features.shape[0]
            self._counts["tokens_in"] += features.shape[0] * features.shape[1]
            if self.config.pruner_placement == "before_memory" and self.token_compression.token_methods:
                with self.timer.stage("pruner"):
                    features, _ = self.token_compression.compress_tokens(
                        features, TokenSide(grid=(self.grid, self.grid), frame_offset=index))
            with self.timer.stage("memory"):
                for frame in features:
                    memory.insert(frame)
                    if maintain_each:
                        memory.maintain()

    def _reread_memory(self) -> tuple[EventMemoryForest, list[float]]:
        """Released protocol: all stored frames (thinned to max_frames) into a fresh memory, maintained once."""
        if not self.stored_frames:
            raise RuntimeError("streamforest host: answer() before any frame was ingested")
        frames = torch.cat(self.stored_frames)
        keep = uniform_indices(frames.shape[0], self.config.max_frames)
        self.vision_compression.reset()   # a re-read is a new pass over the video
        self.token_compression.reset()
        memory = self._new_memory()
        self._encode_into(memory, frames[keep], first_index=0, maintain_each=False)
        with self.timer.stage("memory"):
            memory.maintain()
        self.memory = memory
        return memory, [self.timestamps[i] for i in keep]

    def memory_tokens(self) -> tuple[torch.Tensor, list[float]]:
        """Memory output [N, C] for the next question and the timestamps of the frames it covers."""
        if self.supports_incremental:
            if self.memory.frames_seen == 0:
                raise RuntimeError("streamforest host: answer() before any frame was ingested")
            tokens, stamps = self.memory.tokens(), self.timestamps
        else:
            memory, stamps = self._reread_memory()
            tokens = memory.tokens()
        if self.config.pruner_placement == "before_llm" and self.token_compression.token_methods:
            with self.timer.stage("pruner"):
                tokens = self._prune_memory_frames()
        return tokens, stamps

    def _prune_memory_frames(self) -> torch.Tensor:
        """TOKENS methods on every frame of the memory output (events, short-term frames, current frame),
        oldest first; state starts fresh per question since the memory output is a full re-read."""
        self.token_compression.reset()
        groups = [event.tokens for event in self.memory.events]
        groups += [torch.stack(self.memory.short)] if self.memory.short else []
        groups += [torch.stack(self.memory.now)]
        kept, offset = [], 0
        for group in groups:
            grid = (self.grid, self.grid) if group.shape[1] == self.tokens_per_frame else None
            out, _ = self.token_compression.compress_tokens(group, TokenSide(grid=grid, frame_offset=offset))
            kept.append(out.reshape(-1, out.shape[-1]))
            offset += group.shape[0]
        return torch.cat(kept)

    # ---- question ------------------------------------------------------------------------------
    def _embed_text(self, text: str) -> torch.Tensor:
        ids = torch.tensor(self.codec.encode(text), dtype=torch.long, device=self.device)
        return self.lm.get_input_embeddings()(ids)

    def _answer_embeds(self, query: Query) -> torch.Tensor:
        tokens, stamps = self.memory_tokens()
        with self.timer.stage("mlp"):
            visual = self.model.projector(tokens.to(self.dtype))
        self._counts["tokens_kept"] += visual.shape[0]
        self._counts["llm_visual_tokens"] = visual.shape[0]
        before, after = prompt_halves(query.prompt, stamps, self.config.time_message, query.answer_prefix)
        return torch.cat([self._embed_text(before), visual, self._embed_text(after)])[None]

    def _greedy(self, output, max_new_tokens: int) -> list[int]:
        eos = set(self.codec.eos_token_ids)
        cache, logits = output.past_key_values, output.logits[0, -1]
        out: list[int] = []
        for step in range(max_new_tokens):
            token = int(torch.argmax(logits))
            if token in eos:
                break
            out.append(token)
            if step + 1 < max_new_tokens:
                step_out = self.lm(input_ids=torch.tensor([[token]], device=self.device), past_key_values=cache, use_cache=True)
                cache, logits = step_out.past_key_values, step_out.logits[0, -1]
        return out

    @torch.no_grad()
    def answer_logits(self, query: Query) -> torch.Tensor:
        """Logits [vocab] at the last prompt position (for equivalence checks)."""
        return self.lm(inputs_embeds=self._answer_embeds(query), logits_to_keep=1).logits[0, -1].float()
