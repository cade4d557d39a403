"""Write a byte-level tokenizer that AIPerf and guidellm load offline.

Both tools generate their synthetic prompts with a Hugging Face tokenizer, which they
would otherwise download. This one maps every byte to one token (GPT-2's byte-to-unicode
alphabet, no merges), so any text encodes and decodes back unchanged. A prompt of n
tokens is therefore n bytes long, which the simulator counts as words.
"""

import json
from pathlib import Path


def byte_alphabet() -> list[str]:
    """Return the character that stands for each byte 0..255 in byte-level BPE vocabularies.

    Printable Latin-1 bytes stand for themselves. The others are shifted to code points
    from 256 up, so that no token is whitespace or a control character.
    """
    printable = {
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    }
    alphabet: list[str] = []
    shifted = 0
    for byte in range(256):
        if byte in printable:
            alphabet.append(chr(byte))
        else:
            alphabet.append(chr(256 + shifted))
            shifted += 1
    return alphabet


def write_byte_tokenizer(folder: Path) -> Path:
    """Write tokenizer.json and tokenizer_config.json into folder and return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    byte_level = {"add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", **byte_level},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", **byte_level},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": {char: token_id for token_id, char in enumerate(byte_alphabet())},
            "merges": [],
        },
    }
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer), encoding="utf-8")
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 1_000_000}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder
