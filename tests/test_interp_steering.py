"""Steering API: clamping at scale 0 is ablation, relative scale 1 is the clean model, the edit lies along the
feature's decoder direction only, max activations come from the feature store, and hooks leave with the block."""

from __future__ import annotations

import pytest
import torch

from scalelab.errors import InputError, MissingInput
from scalelab.interp.sae import SAEConfig, make_sae
from scalelab.interp.saelens import save_sae
from scalelab.interp.sites import logits_of, parse_site, read_site
from scalelab.interp.steering import ablate, max_activations, parse_feature_scales, steer
from scalelab.model.config import ModelConfig
from scalelab.model.llama import Llama

SITE = "resid_post.1"


@pytest.fixture(scope="module")
def model_and_sae() -> tuple[Llama, torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = Llama(ModelConfig(depth=2, aspect_ratio=16, head_dim=16, vocab_size=97, max_seq_len=32)).eval()
    ids = torch.randint(1, 97, (3, 16))
    x = read_site(model, parse_site(SITE, 2), ids).reshape(-1, 32)
    sae = make_sae(SAEConfig(arch="topk", d_in=32, d_sae=64, k=8))
    sae.fit_normalisation(x)
    return model, sae.eval(), ids


def _active_feature(model, sae, ids) -> int:
    f = sae.encode(read_site(model, parse_site(SITE, 2), ids))
    return int((f > 0).float().sum((0, 1)).argmax())


def test_scale_zero_is_ablation_and_relative_one_is_the_clean_model(model_and_sae) -> None:
    model, sae, ids = model_and_sae
    j = _active_feature(model, sae, ids)
    clean = logits_of(model, ids)
    with steer(model, sae, {j: 0.0}, site=SITE, max_acts={j: 3.0}):
        zero = logits_of(model, ids)
    with ablate(model, sae, [j], site=SITE):
        ablated = logits_of(model, ids)
    with steer(model, sae, {j: 1.0}, site=SITE, relative=True):
        same = logits_of(model, ids)
    torch.testing.assert_close(zero, ablated, rtol=0, atol=0)
    assert (zero - clean).abs().max() > 1e-3  # the feature fires, so removing it changes the logits
    torch.testing.assert_close(same, clean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits_of(model, ids), clean, rtol=0, atol=0)  # the hook left with the block
    again = ablate(model, sae, [j], site=SITE)
    for _ in range(2):  # one prepared intervention serves several blocks (a chat's turns)
        with again:
            torch.testing.assert_close(logits_of(model, ids), ablated, rtol=0, atol=0)
        torch.testing.assert_close(logits_of(model, ids), clean, rtol=0, atol=0)


def test_the_clamp_moves_the_site_along_the_feature_direction_only(model_and_sae) -> None:
    model, sae, ids = model_and_sae
    j = _active_feature(model, sae, ids)
    site = parse_site(SITE, 2)
    x = read_site(model, site, ids)
    f = sae.encode(x)[..., j]
    with steer(model, sae, {j: 10.0}, site=SITE, max_acts={j: 2.5}):
        x_steered = read_site(model, site, ids)
    direction = sae.W_dec[j].detach() / sae.norm_scale
    expected = x + (25.0 - f)[..., None] * direction
    torch.testing.assert_close(x_steered, expected, rtol=1e-4, atol=1e-4)


def test_generation_changes_under_a_strong_clamp(model_and_sae) -> None:
    from scalelab.model.generate import generate

    model, sae, ids = model_and_sae
    prompts = [ids[0, :6].tolist(), ids[1, :6].tolist()]
    clean = generate(model, prompts, 12, temperature=0.0)
    outs = []
    for j in range(8):  # a random model: some feature's 20x clamp flips a greedy token
        with steer(model, sae, {j: 20.0}, site=SITE, max_acts={j: float(sae.W_dec.shape[1])}):
            outs.append(generate(model, prompts, 12, temperature=0.0))
    assert any(o != clean for o in outs)
    assert generate(model, prompts, 12, temperature=0.0) == clean


def test_max_activations_come_from_the_feature_store(model_and_sae, tmp_path) -> None:
    import sqlite3

    model, sae, ids = model_and_sae
    folder = save_sae(sae, tmp_path / "sae", metadata={"site": SITE})
    with pytest.raises(MissingInput, match="scalelab interp features"), steer(model, folder, {3: 2.0}):
        pass
    with ablate(model, folder, [3]):  # ablation needs no max activation, and the folder names its site
        ablated = logits_of(model, ids)
    with steer(model, sae, {3: 0.0}, site=SITE):
        torch.testing.assert_close(logits_of(model, ids), ablated, rtol=1e-5, atol=1e-5)
    con = sqlite3.connect(folder / "features.sqlite")
    con.execute("CREATE TABLE features (id INTEGER PRIMARY KEY, max_act REAL)")
    con.executemany("INSERT INTO features VALUES (?, ?)", [(i, 0.5 * i) for i in range(64)])
    con.commit()
    con.close()
    assert max_activations(folder)[4] == 2.0
    with steer(model, folder, {4: 3.0}):
        by_store = logits_of(model, ids)
    with steer(model, sae, {4: 1.0}, site=SITE, max_acts={4: 6.0}):
        torch.testing.assert_close(logits_of(model, ids), by_store, rtol=1e-5, atol=1e-5)


def test_bad_requests_name_the_fix(model_and_sae) -> None:
    model, sae, _ = model_and_sae
    assert parse_feature_scales(["12=10", "7=-2.5"]) == {12: 10.0, 7: -2.5}
    for bad in ("12", "x=1", "3=big"):
        with pytest.raises(InputError, match="FEATURE=SCALE"):
            parse_feature_scales([bad])
    with pytest.raises(InputError, match=r"0\.\.63"), ablate(model, sae, [64], site=SITE):
        pass
    with pytest.raises(InputError, match="site="), ablate(model, sae, [1]):
        pass
    with pytest.raises(InputError, match="max_acts"), steer(model, sae, {1: 2.0}, site=SITE):
        pass
