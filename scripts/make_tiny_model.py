"""Write a tiny Llama-style model with random weights that real engines can serve.

Usage: python scripts/make_tiny_model.py OUT_DIR [--seed N]

The folder contains what an engine loads from a Hugging Face checkpoint: config.json,
model.safetensors (float32), tokenizer.json, tokenizer_config.json with a chat template,
and generation_config.json. Nothing is downloaded. The tokenizer is a byte-level BPE
trained on a fixed, sorted subset of the running Python's standard-library sources, so
the output is the same on every run with the same Python version and seed.

Every request runs to max_tokens: channel 0 of the residual stream is 1.0 in every
embedding and no layer writes to it (its row is zero in every o_proj and down_proj), and
the output head gives that channel a large negative weight for the special tokens and for
every token that is not printable ASCII. So the model never samples the end-of-text token
nor a token that a detokenizer would hold back as an incomplete character.

Needs numpy, safetensors and tokenizers.
"""

from __future__ import annotations

import argparse
import json
import sys
import sysconfig
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

HIDDEN_SIZE = 128
INTERMEDIATE_SIZE = 256
NUM_LAYERS = 2
NUM_HEADS = 4
NUM_KV_HEADS = 2
# vLLM's CPU attention backend (0.32) accepts head sizes 32, 64, 80 and up, not 16.
HEAD_DIM = 32
VOCAB_SIZE = 2048
MAX_POSITION_EMBEDDINGS = 4096
# Tokens longer than 16 bytes have broken some engines' incremental detokenizers.
MAX_TOKEN_BYTES = 16
# Bytes of standard-library source the tokenizer trains on: enough for 2048 merges,
# small enough that training takes about a second.
TRAINING_TEXT_BYTES = 2_000_000

CONSTANT_CHANNEL = 0
# Weight of the constant channel in the output head for banned tokens. After the final
# RMSNorm the channel is about 0.8 or more (checked with transformers on random 1000-token
# prompts), so a banned token's logit sits about 800 below the best allowed token's.
BANNED_LOGIT_WEIGHT = -1000.0
WEIGHT_STD = 0.05

BOS_TOKEN = "<|bos|>"
EOS_TOKEN = "<|eos|>"
SPECIAL_TOKENS = [BOS_TOKEN, EOS_TOKEN, "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def read_training_text(limit_bytes: int = TRAINING_TEXT_BYTES) -> list[str]:
    """Read standard-library .py files in sorted name order until limit_bytes is reached."""
    stdlib_dir = Path(sysconfig.get_paths()["stdlib"])
    texts: list[str] = []
    total_bytes = 0
    for path in sorted(stdlib_dir.glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        texts.append(text)
        total_bytes += len(text.encode("utf-8"))
        if total_bytes >= limit_bytes:
            return texts
    raise SystemExit(
        f"only {total_bytes} bytes of .py files in {stdlib_dir}, need {limit_bytes}: "
        "run this script with a full CPython installation"
    )


def train_tokenizer(texts: list[str]) -> Tokenizer:
    """Train a byte-level BPE whose tokens are at most MAX_TOKEN_BYTES long."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        show_progress=False,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        # Byte-level BPE maps each byte to one character, so characters count bytes.
        max_token_length=MAX_TOKEN_BYTES,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)

    bos_id = tokenizer.token_to_id(BOS_TOKEN)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A",
        pair=f"{BOS_TOKEN} $A {BOS_TOKEN} $B",
        special_tokens=[(BOS_TOKEN, bos_id)],
    )
    return tokenizer


def find_banned_token_ids(tokenizer: Tokenizer) -> list[int]:
    """List the special tokens and the tokens that do not decode to printable ASCII."""
    special_ids = {tokenizer.token_to_id(token) for token in SPECIAL_TOKENS}
    banned = []
    for token_id in range(tokenizer.get_vocab_size()):
        text = tokenizer.decode([token_id], skip_special_tokens=False)
        printable = text != "" and all(" " <= char <= "~" for char in text)
        if token_id in special_ids or not printable:
            banned.append(token_id)
    return banned


def make_weights(vocab_size: int, banned_ids: list[int], seed: int) -> dict[str, np.ndarray]:
    """Draw float32 weights with the constant channel and the output-head ban in place."""
    rng = np.random.default_rng(seed)

    def normal(*shape: int) -> np.ndarray:
        return rng.normal(0.0, WEIGHT_STD, size=shape).astype(np.float32)

    q_size = NUM_HEADS * HEAD_DIM
    kv_size = NUM_KV_HEADS * HEAD_DIM

    embed = rng.normal(0.0, 1.0, size=(vocab_size, HIDDEN_SIZE)).astype(np.float32)
    embed[:, CONSTANT_CHANNEL] = 1.0
    weights = {"model.embed_tokens.weight": embed}

    for layer in range(NUM_LAYERS):
        prefix = f"model.layers.{layer}"
        o_proj = normal(HIDDEN_SIZE, q_size)
        down_proj = normal(HIDDEN_SIZE, INTERMEDIATE_SIZE)
        # Rows are output channels: a zero row means the layer never adds to that channel.
        o_proj[CONSTANT_CHANNEL, :] = 0.0
        down_proj[CONSTANT_CHANNEL, :] = 0.0
        weights.update({
            f"{prefix}.input_layernorm.weight": np.ones(HIDDEN_SIZE, dtype=np.float32),
            f"{prefix}.self_attn.q_proj.weight": normal(q_size, HIDDEN_SIZE),
            f"{prefix}.self_attn.k_proj.weight": normal(kv_size, HIDDEN_SIZE),
            f"{prefix}.self_attn.v_proj.weight": normal(kv_size, HIDDEN_SIZE),
            f"{prefix}.self_attn.o_proj.weight": o_proj,
            f"{prefix}.post_attention_layernorm.weight": np.ones(HIDDEN_SIZE, dtype=np.float32),
            f"{prefix}.mlp.gate_proj.weight": normal(INTERMEDIATE_SIZE, HIDDEN_SIZE),
            f"{prefix}.mlp.up_proj.weight": normal(INTERMEDIATE_SIZE, HIDDEN_SIZE),
            f"{prefix}.mlp.down_proj.weight": down_proj,
        })

    lm_head = normal(vocab_size, HIDDEN_SIZE)
    lm_head[:, CONSTANT_CHANNEL] = 0.0
    lm_head[banned_ids, CONSTANT_CHANNEL] = BANNED_LOGIT_WEIGHT
    weights["model.norm.weight"] = np.ones(HIDDEN_SIZE, dtype=np.float32)
    weights["lm_head.weight"] = lm_head
    return weights


def make_config(vocab_size: int, bos_id: int, eos_id: int) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN_SIZE,
        "intermediate_size": INTERMEDIATE_SIZE,
        "num_hidden_layers": NUM_LAYERS,
        "num_attention_heads": NUM_HEADS,
        "num_key_value_heads": NUM_KV_HEADS,
        "head_dim": HEAD_DIM,
        "hidden_act": "silu",
        "max_position_embeddings": MAX_POSITION_EMBEDDINGS,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": False,
        "vocab_size": vocab_size,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "torch_dtype": "float32",
    }


def make_tokenizer_config() -> dict:
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS_TOKEN,
        "eos_token": EOS_TOKEN,
        "pad_token": EOS_TOKEN,
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": MAX_POSITION_EMBEDDINGS,
        "chat_template": CHAT_TEMPLATE,
    }


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def make_tiny_model(out_dir: Path, seed: int = 0) -> Path:
    """Write the model folder, overwriting files already in out_dir, and return it."""
    out_dir.mkdir(parents=True, exist_ok=True)

    tokenizer = train_tokenizer(read_training_text())
    vocab_size = tokenizer.get_vocab_size()
    bos_id = tokenizer.token_to_id(BOS_TOKEN)
    eos_id = tokenizer.token_to_id(EOS_TOKEN)
    banned_ids = find_banned_token_ids(tokenizer)

    weights = make_weights(vocab_size, banned_ids, seed)
    save_file(weights, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save(str(out_dir / "tokenizer.json"))
    write_json(out_dir / "config.json", make_config(vocab_size, bos_id, eos_id))
    write_json(out_dir / "tokenizer_config.json", make_tokenizer_config())
    write_json(
        out_dir / "generation_config.json",
        {"bos_token_id": bos_id, "eos_token_id": eos_id},
    )
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="folder to write the model into")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    args = parser.parse_args(argv)

    out_dir = make_tiny_model(args.out_dir, args.seed)

    # This is a command-line script: the folder and file sizes go to stdout.
    print(out_dir.resolve())
    for path in sorted(out_dir.iterdir()):
        print(f"{path.stat().st_size:>10}  {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
