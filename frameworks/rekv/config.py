"""ReKV host settings (one frozen dataclass; Hydra's `configs/framework/rekv.yaml` maps onto it 1:1).

Defaults are the upstream ReKV/STC values (frameworks-benchmarks.md §A1.2-A1.3): n_local 15000 tokens,
64 retrieved frame blocks, one frame per LLM pre-fill call (STC's encode_chunk_size), the ReKV init prompt
and question template. `from_mapping` accepts a plain dict (what `build_host` passes) and names any
unknown or invalid field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

from frameworks.common.settings import check_settings, settings_from_mapping

INIT_PROMPT = "<|im_start|>system \nYou are a helpful assistant.<|im_end|><|im_start|>user "
QUESTION_TEMPLATE = "\n{prompt}<|im_end|><|im_start|>assistant\n"
SINK_POSITIONS = ("window", "released")
LLM_STEPS = ("eager", "static", "graph")


@dataclass(frozen=True)
class ReKVConfig:
    """Args:
    model_path: local LLaVA-OneVision checkpoint folder; None = random weights built from `preset`.
    preset: released size for random weights ("7b", "0.5b", "tiny"; frameworks/common/model_sizes.py).
    dtype: "bfloat16" | "float16" | "float32".
    device: "auto" (cuda if available) | "cuda" | "cuda:1" | "cpu".
    seed: seed for random weights.
    n_local: tokens of the sliding local window used while encoding (init sink not counted).
    retrieve_size: frame blocks retrieved per layer at question time; None = all blocks.
    frames_per_chunk: frames per vision-tower batch and per LLM pre-fill call (pruning stays per frame).
    offload: keep frame blocks on CPU (pinned on CUDA); False keeps them on the compute device.
    page_blocks: frame blocks per storage page (one pinned allocation per page).
    gpu_cache_blocks: retrieved frame blocks kept per layer in a device LRU across questions (ReKV's
        max_cached_block = 128): a hit is a device copy instead of a host->device one. 0 disables it;
        unused when offload=False on CUDA (the blocks are already on the device). Memory: L x this x one block.
    async_block_loading: issue the question's block copies on a side CUDA stream, the compute stream
        waiting per layer (docs/rekv/answer-path.md); False = the same copies on the compute stream.
    block_loading: how retrieved blocks leave the host pages. "gather" (default): every layer's blocks in
        one pass, two kernels per page touched, kernels reading the pinned pages directly (UVA);
        "copies": one host->device copy per run of consecutive blocks per layer (the path before
        2026-11-30; also used by `load_during_prefill`, which loads layer by layer).
    load_during_prefill: load each layer's retrieved blocks right before that layer attends in the answer
        pre-fill, issuing copies LOAD_AHEAD layers ahead, so copies overlap the pre-fill. Same outputs;
        `retrieval_ms` then holds the selection and the first copies, the rest is in `answer_prefill_ms`
        (compare first-token latency). False (default): everything is loaded inside `retrieval_ms`.
    init_prompt: text encoded once before the video; its tokens are the attention sink.
    question_template: wraps `Query.prompt` when `Query.use_chat_template` is True ("{prompt}" placeholder).
    forbid_eos_first: replace an end-of-sequence token at the first decoding step by the next best token.
    sink_positions: where the init sink sits for RoPE once the stream exceeds n_local tokens. "window"
        (ours): just before the window's first token, so positions stay contiguous; "released" (ReKV/
        InfLLM as released, frameworks-benchmarks.md §A1.4): every query sees the init tokens at the fixed
        distance n_local (keys at 0, query at n_local), merged by log-sum-exp. Identical until the
        stream exceeds n_local tokens; reproduction scripts use "released".
    llm_step: how a streaming pre-fill step runs. "eager": the window in a growable buffer, SDPA with an
        explicit mask, one Python pass per call (the way HF/ReKV code runs; the speed harness's "eager
        baseline"). "static": fixed buffers with device-side lengths and split attention
        (frameworks/rekv/static_window.py), no graphs. "graph" (default): "static" captured in CUDA graphs,
        one per chunk size (frameworks/rekv/graphed_step.py); on CPU it runs as "static". All three give
        the same results up to floating-point rounding (tests compare them).
    attention_kernel: kernel of the static step: "auto" (FlashAttention-2 varlen on CUDA fp16/bf16, else the
        torch reference), "flash" or "reference".
    compile_glue: with the flash kernel, compile the elementwise glue of the static step (attention merge,
        RoPE, RMSNorm, SwiGLU) with torch.compile (Inductor): a few fused kernels per layer instead of ~35.
    graph_token_stage: on CUDA, run projector -> pool -> TOKENS methods as one CUDA graph per frames-per-call
        when the methods are graph-safe (docs/rekv/token-stage-graph.md); eager elsewhere, same results.
    """

    model_path: Optional[str] = None
    preset: str = "7b"
    dtype: str = "bfloat16"
    device: str = "auto"
    seed: int = 0
    n_local: int = 15000
    retrieve_size: Optional[int] = 64
    frames_per_chunk: int = 1
    offload: bool = True
    page_blocks: int = 16
    gpu_cache_blocks: int = 128
    async_block_loading: bool = True
    block_loading: str = "gather"
    load_during_prefill: bool = False
    init_prompt: str = INIT_PROMPT
    question_template: str = QUESTION_TEMPLATE
    forbid_eos_first: bool = True
    sink_positions: str = "window"
    llm_step: str = "graph"
    attention_kernel: str = "auto"
    compile_glue: bool = True
    graph_token_stage: bool = True

    def __post_init__(self):
        checks = [
            ("sink_positions", self.sink_positions in SINK_POSITIONS, f"must be one of {SINK_POSITIONS}"),
            ("llm_step", self.llm_step in LLM_STEPS, f"must be one of {LLM_STEPS}"),
            ("attention_kernel", self.attention_kernel in ("auto", "flash", "reference"), "must be auto | flash | reference"),
            ("n_local", self.n_local >= 1, "must be >= 1 tokens"),
            ("retrieve_size", self.retrieve_size is None or self.retrieve_size >= 1, "must be >= 1 or null (all blocks)"),
            ("frames_per_chunk", self.frames_per_chunk >= 1, "must be >= 1"),
            ("page_blocks", self.page_blocks >= 1, "must be >= 1"),
            ("block_loading", self.block_loading in ("gather", "copies"), "must be gather | copies"),
            ("gpu_cache_blocks", self.gpu_cache_blocks >= 0, "must be >= 0 (0 disables the device block cache)"),
            ("question_template", "{prompt}" in self.question_template, "must contain '{prompt}'"),
        ]
        check_settings(self, "ReKV", checks)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> "ReKVConfig":
        """Build from a plain mapping; `name` (the Hydra group key) and `random_weights` (the evaluation
        layer's explicit consent to run without model_path) are ignored, unknown keys are errors."""
        return settings_from_mapping(cls, mapping, "ReKV", ignore=("name", "random_weights"))
