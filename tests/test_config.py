"""Presets, overrides and the errors a user gets for bad keys, values and files."""

import pytest

from scalelab.config import ConfigError, config_hash, load_config, preset


def test_presets_derive_shared_fields():
    for name in ("smoke", "tiny", "gpu"):
        cfg = preset(name)
        assert cfg.preset == name
        assert cfg.model.vocab_size == cfg.tokenizer.vocab_size
        assert cfg.model.max_seq_len >= cfg.train.seq_len
        assert len(cfg.ladder) >= 3
        assert cfg.model.d_model % cfg.model.head_dim == 0


def test_overrides_are_typed():
    cfg = load_config("smoke", ["train.lr=1e-3", "ladder=[1,2]", "tokenizer.vocab_size=600", "train.compile=true"])
    assert cfg.train.lr == 1e-3
    assert cfg.ladder == [1, 2]
    assert cfg.model.vocab_size == 600  # derived from the tokenizer, never set twice
    assert cfg.train.compile is True


def test_unknown_preset_lists_valid():
    with pytest.raises(ConfigError, match="smoke, tiny, gpu"):
        preset("huge")


def test_unknown_key_lists_valid():
    with pytest.raises(ConfigError, match=r"train\.lr"):
        load_config("smoke", ["train.learning_rate=1"])
    with pytest.raises(ConfigError, match="world"):
        load_config("smoke", ["wrld.seed=1"])


def test_bad_value_and_bad_syntax():
    with pytest.raises(ConfigError, match=r"train\.batch_size"):
        load_config("smoke", ["train.batch_size=abc"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config("smoke", ["train.lr"])


def test_yaml_file(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("preset: smoke\ntrain:\n  lr: 0.01\nworld:\n  seed: 7\n")
    cfg = load_config("tiny", [], f)
    assert cfg.preset == "smoke" and cfg.train.lr == 0.01 and cfg.world.seed == 7
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  nope: 1\n")
    with pytest.raises(ConfigError, match=r"train\.nope"):
        load_config("smoke", [], bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("smoke", [], tmp_path / "missing.yaml")


def test_config_hash_tracks_changes():
    a, b = preset("smoke"), preset("smoke")
    assert config_hash(a.train) == config_hash(b.train)
    b.train.lr *= 2
    assert config_hash(a.train) != config_hash(b.train)
