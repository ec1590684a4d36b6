"""Byte-level BPE training: lossless round trips, atomic special tokens, chat template, saving, loading."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from scalelab.chat_format import BOS, CHAT_TEMPLATE, END, PAD, SPECIAL_TOKENS, render_chat
from scalelab.data.tokenizer import TokenizerError, load_tokenizer, train_tokenizer

CORPUS = [
    "Ælfric of Brønholm traded 12 silver tools with Mireille at dawn.",
    "The creature Vøllik sleeps in the caves north of Quinby; it fears fire.",
    "<|user|>Where does Ælfric live?<|end|><|assistant|>Ælfric lives in Brønholm.<|end|>",
    "Question: what is 347 plus 58? Answer: 405.",
    "Encyclopedia: Mireille (born 1893) is a weaver from Quinby. She owns 3 looms.",
] * 40

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 12 plus 30?"},
    {"role": "assistant", "content": "42 — “forty-two”."},
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("tok")
    return out, train_tokenizer(CORPUS, vocab_size=320, out_dir=out)


@pytest.mark.parametrize("text", [
    "Ælfric of Brønholm traded 12 silver tools.",
    "never seen: Кириллица, 日本語, emoji 🐉🧪, tabs\tand\nnewlines  double  spaces ",
    "",
    "<|user|>hi<|end|>",
])
def test_round_trip_is_lossless(trained: tuple[Path, object], text: str) -> None:
    _, tok = trained
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text


def test_special_tokens_are_single_ids_in_order(trained: tuple[Path, object]) -> None:
    _, tok = trained
    for expected_id, special in enumerate(SPECIAL_TOKENS):
        assert tok.encode(special, add_special_tokens=False) == [expected_id]
    ids = tok.encode("<|user|>hi<|end|>", add_special_tokens=False)
    assert ids[0] == tok.convert_tokens_to_ids("<|user|>")
    assert ids[-1] == tok.convert_tokens_to_ids(END)


def test_no_merges_are_spent_on_special_token_fragments(trained: tuple[Path, object]) -> None:
    _, tok = trained
    # The corpus is full of chat turns; without cutting specials out of the training text, BPE would
    # learn pieces like "<|" and "|>".
    fragments = [t for t in tok.get_vocab() if t not in SPECIAL_TOKENS and ("|>" in t or "<|" in t)]
    assert fragments == []


def test_calling_the_tokenizer_prepends_bos(trained: tuple[Path, object]) -> None:
    _, tok = trained
    bare = tok.encode("Quinby", add_special_tokens=False)
    assert tok("Quinby").input_ids == [tok.bos_token_id, *bare]
    assert tok.bos_token == BOS and tok.pad_token == PAD and tok.eos_token == END


def test_digits_are_split_one_per_token(trained: tuple[Path, object]) -> None:
    _, tok = trained
    assert tok.convert_ids_to_tokens(tok.encode("1893", add_special_tokens=False)) == ["1", "8", "9", "3"]


@pytest.mark.parametrize("gen_prompt", [False, True])
def test_chat_template_matches_render_chat(trained: tuple[Path, object], gen_prompt: bool) -> None:
    _, tok = trained
    ids = tok.apply_chat_template(CHAT, tokenize=True, add_generation_prompt=gen_prompt, return_dict=False)
    expected = tok.encode(render_chat(CHAT, add_generation_prompt=gen_prompt), add_special_tokens=False)
    assert list(ids) == expected
    text = tok.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=gen_prompt)
    assert text == render_chat(CHAT, add_generation_prompt=gen_prompt)


def test_auto_tokenizer_loads_the_saved_folder(trained: tuple[Path, object]) -> None:
    out, tok = trained
    assert (out / "tokenizer.json").is_file()
    for loaded in (AutoTokenizer.from_pretrained(str(out)), load_tokenizer(out)):
        assert (loaded.bos_token, loaded.eos_token, loaded.pad_token) == (BOS, END, PAD)
        assert loaded.chat_template == CHAT_TEMPLATE
        assert len(loaded) == len(tok)
        text = render_chat(CHAT) + " 🐉 Brønholm"
        assert loaded(text).input_ids == tok(text).input_ids


def test_training_is_deterministic(tmp_path: Path, trained: tuple[Path, object]) -> None:
    out, _ = trained
    train_tokenizer(CORPUS, vocab_size=320, out_dir=tmp_path)
    assert (tmp_path / "tokenizer.json").read_bytes() == (out / "tokenizer.json").read_bytes()


def test_vocab_has_the_requested_size(trained: tuple[Path, object]) -> None:
    _, tok = trained
    assert len(tok) == 320


def test_max_chars_limits_the_training_text(tmp_path: Path) -> None:
    texts = ["ab " * 500, "xy " * 500]
    full = train_tokenizer(texts, vocab_size=300, out_dir=tmp_path / "full")
    capped = train_tokenizer(texts, vocab_size=300, out_dir=tmp_path / "capped", max_chars=len(texts[0]))
    assert "ab" in full.get_vocab() and "xy" in full.get_vocab()
    assert "ab" in capped.get_vocab() and "xy" not in capped.get_vocab()


def test_bad_inputs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match="vocab_size=200"):
        train_tokenizer(CORPUS, vocab_size=200, out_dir=tmp_path)
    with pytest.raises(TokenizerError, match="no text"):
        train_tokenizer([], vocab_size=300, out_dir=tmp_path)
    with pytest.raises(TokenizerError, match="max_chars=0"):
        train_tokenizer(CORPUS, vocab_size=300, out_dir=tmp_path, max_chars=0)
    with pytest.raises(TokenizerError, match=str(tmp_path / "empty")):
        load_tokenizer(tmp_path / "empty")
