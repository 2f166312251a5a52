"""Text <-> token ids for hosts, with one small interface over a real HF tokenizer or a byte fallback.

Hosts need only `encode` (no special tokens added), `decode` (special tokens dropped) and the ids that end
generation. A real checkpoint brings its tokenizer (`HFTextCodec`). Random-weight models (latency runs,
tests) have no tokenizer offline, so `ByteTextCodec` maps UTF-8 bytes to ids 0..255 and the chat markers
to 256.. — enough to drive the same code path with realistic prompt lengths. Its text output is
meaningless (random weights), which is fine for timing.
"""

from __future__ import annotations

import re
from typing import Protocol, Sequence


class TextCodec(Protocol):
    eos_token_ids: tuple[int, ...]

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


class HFTextCodec:
    """Adapter over a transformers tokenizer. `extra_eos` adds ids such as the config's eos (151645)."""

    def __init__(self, tokenizer, extra_eos: Sequence[int] = ()):
        self.tokenizer = tokenizer
        eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        im_end = tokenizer.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tokenizer.get_vocab() else None
        eos += [im_end] if im_end is not None else []
        self.eos_token_ids = tuple(dict.fromkeys(int(i) for i in [*eos, *extra_eos] if i is not None))

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)


class ByteTextCodec:
    """UTF-8 bytes -> ids 0..255; `<|im_start|>`, `<|im_end|>`, `<|endoftext|>` -> 256, 257, 258."""

    SPECIALS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")

    def __init__(self, vocab_size: int):
        if vocab_size < 256 + len(self.SPECIALS):
            raise ValueError(f"ByteTextCodec needs a vocabulary of at least 259 ids, the model has {vocab_size}")
        self.special_ids = {token: 256 + i for i, token in enumerate(self.SPECIALS)}
        self.eos_token_ids = (self.special_ids["<|im_end|>"], self.special_ids["<|endoftext|>"])
        self._split = re.compile("(" + "|".join(re.escape(t) for t in self.SPECIALS) + ")")

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for piece in self._split.split(text):
            if piece in self.special_ids:
                ids.append(self.special_ids[piece])
            elif piece:
                ids.extend(piece.encode("utf-8"))
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(i for i in ids if 0 <= i < 256).decode("utf-8", errors="replace")
