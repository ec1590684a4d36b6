"""Train, save and load scalelab's byte-level BPE tokenizer.

The tokenizer is an HF `tokenizers` byte-level BPE saved with `save_pretrained`, so
`AutoTokenizer.from_pretrained(folder)` (and any tool built on transformers) loads it with its
special tokens and chat template. Byte-level means every string round-trips losslessly, whatever
its script. Two choices shape what the models see:

- digits are split one per token, so the arithmetic genre is learned digit by digit (and per-digit
  scoring of arithmetic evals lines up with tokens);
- the chat-format special tokens (`scalelab.chat_format.SPECIAL_TOKENS`) are atomic, single ids, and the
  trainer never sees them as text, so no merges are spent on fragments like `<|` or `user|>`.

Calling the tokenizer on text (`tokenizer(text)`, `encode(text)`) prepends BOS as the packed training
stream does; pass `add_special_tokens=False` for the bare ids. `apply_chat_template` follows
`render_chat`, which has no BOS.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from scalelab.chat_format import BOS, CHAT_TEMPLATE, END, PAD, ROLE_TOKENS, SPECIAL_TOKENS
from scalelab.errors import InputError

# Texts go to the Rust trainer in lists of this many pieces: far fewer Python→Rust crossings than
# one string at a time, small enough to keep memory flat.
_TRAIN_BATCH = 1024
_N_BYTES = 256
_SPECIAL_RE = re.compile("|".join(re.escape(t) for t in SPECIAL_TOKENS))


class TokenizerError(InputError):
    """A tokenizer folder or training input is unusable; the message names it and the fix."""


def _pieces_without_specials(texts: Iterable[str], max_chars: int | None) -> Iterator[list[str]]:
    """Batches of text with special tokens cut out, stopping once `max_chars` characters were read."""
    seen = 0
    batch: list[str] = []
    for text in texts:
        if max_chars is not None and seen >= max_chars:
            break
        if max_chars is not None and seen + len(text) > max_chars:
            text = text[: max_chars - seen]
        seen += len(text)
        batch.extend(p for p in _SPECIAL_RE.split(text) if p)
        if len(batch) >= _TRAIN_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
    if seen == 0:
        raise TokenizerError("train_tokenizer got no text; pass a non-empty corpus (check the corpus source)")


def _empty_bpe() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    return tok


def _wrap(tok: Tokenizer) -> PreTrainedTokenizerFast:
    """A transformers tokenizer around a trained `tokenizers.Tokenizer`, with scalelab's specials set."""
    bos_id = tok.token_to_id(BOS)
    if bos_id is None:
        raise TokenizerError(f"tokenizer has no {BOS} token; train it with train_tokenizer")
    # A post-processor (not transformers' add_bos_token flag) so the backend's own encode agrees.
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B:1", special_tokens=[(BOS, bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=END,
        pad_token=PAD,
        extra_special_tokens=list(ROLE_TOKENS.values()),
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
    )


def train_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: Path,
                    max_chars: int | None = None) -> PreTrainedTokenizerFast:
    """Train byte-level BPE on `texts` (at most `max_chars` characters of them) and save it to `out_dir`.

    The vocabulary holds the special tokens (ids 0..5, in `SPECIAL_TOKENS` order), the 256 bytes and
    merges up to `vocab_size`; a corpus too small to supply that many merges yields fewer. The same
    texts give the same `tokenizer.json`.
    """
    floor = _N_BYTES + len(SPECIAL_TOKENS)
    if vocab_size <= floor:
        raise TokenizerError(
            f"vocab_size={vocab_size} leaves no room for merges: byte-level BPE needs more than "
            f"{floor} (256 bytes + {len(SPECIAL_TOKENS)} special tokens); raise tokenizer.vocab_size"
        )
    if max_chars is not None and max_chars <= 0:
        raise TokenizerError(f"max_chars={max_chars} must be positive (or None for no limit)")
    tok = _empty_bpe()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_pieces_without_specials(texts, max_chars), trainer=trainer)
    hf_tok = _wrap(tok)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    hf_tok.save_pretrained(str(out_dir))
    return hf_tok


def load_tokenizer(directory: Path) -> PreTrainedTokenizerFast:
    """Load a tokenizer folder written by `train_tokenizer` (or any HF tokenizer folder)."""
    directory = Path(directory)
    if not (directory / "tokenizer.json").is_file():
        raise TokenizerError(
            f"{directory} holds no tokenizer.json; train one first (scalelab.data.tokenizer.train_tokenizer "
            f"or the `tokenizer` stage) or point at a folder saved with save_pretrained"
        )
    return AutoTokenizer.from_pretrained(str(directory))
