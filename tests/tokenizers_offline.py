"""A real fast tokenizer built offline (byte-level BPE without merges) for the loading round-trip tests:
every host loads `AutoTokenizer.from_pretrained(local_path)`, and no tokenizer file may be downloaded."""

CHAT_MARKERS = ["<|im_start|>", "<|im_end|>"]


def byte_level_tokenizer(specials=CHAT_MARKERS):
    """A byte-level, merge-free PreTrainedTokenizerFast with the additional special tokens `specials`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    backend = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>")
    tokenizer.add_special_tokens({"additional_special_tokens": list(specials)})
    return tokenizer


def save_byte_level_tokenizer(folder, specials=CHAT_MARKERS):
    """`byte_level_tokenizer(specials)` saved to `folder`; returns it."""
    tokenizer = byte_level_tokenizer(specials)
    tokenizer.save_pretrained(folder)
    return tokenizer
