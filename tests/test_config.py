"""Presets, overrides and the errors a user gets for bad keys, values and files."""

import pytest

from scalelab.config import ConfigError, config_hash
from scalelab.presets import load_config, preset


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
    cfg = load_config(None, [], f)
    assert cfg.preset == "smoke" and cfg.train.lr == 0.01 and cfg.world.seed == 7
    assert load_config("smoke", [], f).train.lr == 0.01  # the same preset named twice is fine
    # an explicit --preset that disagrees with the file is refused, never silently replaced by the file's
    with pytest.raises(ConfigError, match=r"--preset tiny disagrees with preset: smoke"):
        load_config("tiny", [], f)
    assert load_config(None).preset == "tiny"  # no preset anywhere: the default
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


def test_yaml_syntax_error_names_the_file_and_line(tmp_path):
    f = tmp_path / "broken.yaml"
    f.write_text("train:\n  lr: 0.01\n  seq_len: [64\nworld:\n  seed: 1\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml line \d+, column \d+ is not valid YAML"):
        load_config("smoke", [], f)


def test_every_section_is_settable_including_nested_sae_parts():
    cfg = load_config("smoke", ["interp.sae.k=4", "interp.cache.site=mlp_out.1", "interp.train.lr=2e-3",
                                "interp.train.resample_at=[0.25,0.5]", "interp.train.adam_betas=[0.8,0.99]",
                                "posttrain.steps=[sft,rl_cai]", "rsp.limit=5"])
    assert cfg.interp.sae.k == 4 and cfg.interp.cache.site == "mlp_out.1" and cfg.interp.train.lr == 2e-3
    assert cfg.interp.train.resample_at == (0.25, 0.5) and cfg.interp.train.adam_betas == (0.8, 0.99)
    assert cfg.posttrain.steps == ["sft", "rl_cai"] and cfg.rsp.limit == 5
    with pytest.raises(ConfigError, match=r"interp\.train\.adam_betas"):
        load_config("smoke", ["interp.train.adam_betas=[0.9]"])  # a pair, not one number
    with pytest.raises(ConfigError, match=r"interp\.sae\.k"):
        load_config("smoke", ["interp.k=4"])  # the old flat key names the nested ones


def test_describe_shows_every_key_with_its_docstring():
    from scalelab.config import describe, field_docs
    from scalelab.interp.config import ActivationsConfig

    text = describe(preset("smoke"))
    assert "  expansion_factor: 8" in text and "interp:" in text and "    site: resid_post.mid" in text
    assert "# the preset this config was built from" in text
    assert field_docs(ActivationsConfig)["tokens"].startswith("activation rows cached to disk")
