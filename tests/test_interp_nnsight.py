"""Interoperability: an exported scalelab checkpoint opens in nnsight offline (`TransformersModel(local_dir,
task="text-generation")`, nnsight 0.8's successor of `LanguageModel`), its activations there are scalelab's, and an
SAE-feature ablation written in nnsight gives scalelab's logits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from nnsight.modeling.transformers import TransformersModel

from scalelab.interp.sae import SAEConfig, make_sae
from scalelab.interp.sites import logits_of, parse_site, read_site
from scalelab.interp.steering import ablate
from scalelab.model.lm import load_lm


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    from conftest import random_smoke_model

    model_dir, _ = random_smoke_model(tmp_path_factory.mktemp("nnsight"))
    return model_dir


def test_nnsight_reads_and_intervenes_like_scalelab(exported: Path) -> None:
    lm = load_lm(exported)
    nl = TransformersModel(str(exported), task="text-generation", device_map="cpu", dispatch=True)
    ids = torch.tensor([lm.encode("Ask around and you will learn that", bos=True)])
    site = parse_site("resid_post.0", 1)
    with nl.trace(ids):
        resid = nl.model.layers[0].output.save()
        clean = nl.output.logits.save()
    ours = read_site(lm.model, site, ids)
    torch.testing.assert_close(resid, ours, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(clean, logits_of(lm.model, ids), rtol=1e-4, atol=1e-4)

    torch.manual_seed(0)
    sae = make_sae(SAEConfig(arch="topk", d_in=ours.shape[-1], d_sae=4 * ours.shape[-1], k=4))
    sae.fit_normalisation(ours[0])
    j = int((sae.encode(ours[0]) > 0).sum(0).argmax())
    direction = sae.W_dec[j].detach() / sae.norm_scale
    with torch.no_grad(), nl.trace(ids):
        h = nl.model.layers[0].output
        nl.model.layers[0].output = h - sae.encode(h)[..., j:j + 1] * direction
        ablated_nnsight = nl.output.logits.save()
    with ablate(lm, sae, [j], site="resid_post.0"):
        ablated_ours = logits_of(lm.model, ids)
    torch.testing.assert_close(ablated_nnsight, ablated_ours, rtol=1e-4, atol=1e-4)
    assert (ablated_ours - clean).abs().max() > 1e-4  # the feature fired: the ablation changed something
