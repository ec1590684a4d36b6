"""Run by SAELens's own interpreter (the `.venv-saelens` that `make test` builds; it never imports scalelab):
load scalelab-written SAE folders with `sae_lens.SAE.load_from_disk`, encode and decode a fixed input, and
save each folder back with SAELens's `save_model`.

    python saelens_roundtrip.py INPUTS.safetensors OUTPUTS.safetensors SAE_DIR...

INPUTS holds `x`, the activations to encode. OUTPUTS gets `<i>.features` and `<i>.reconstruction` for the
i-th folder, which is also saved back to `SAE_DIR/resaved`, and the sae-lens version as metadata; the test
compares both with scalelab's own outputs.
"""

from __future__ import annotations

import sys
from importlib.metadata import version

import torch
from sae_lens import SAE
from safetensors.torch import load_file, save_file


def main(inputs: str, outputs: str, sae_dirs: list[str]) -> None:
    x = load_file(inputs)["x"]
    out = {}
    for i, folder in enumerate(sae_dirs):
        sae = SAE.load_from_disk(folder, device="cpu")
        with torch.no_grad():
            features = sae.encode(x)
            out[f"{i}.features"] = features.contiguous()
            out[f"{i}.reconstruction"] = sae.decode(features).contiguous()
        sae.save_model(f"{folder}/resaved")
    save_file(out, outputs, metadata={"sae_lens": version("sae-lens")})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
