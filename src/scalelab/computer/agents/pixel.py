"""The pixel agent: a small conv net that reads the screenshot and the instruction and emits tool calls.

As in CC-Net and Pix2Act, the policy sees pixels and the instruction text, not the DOM. Its heads:
*kind* of action (click, type, Enter, scroll up/down, drag, wait), a *click* map over an 8-pixel grid of
the screen (also a scroll's position and a drag's start), a *drop* map for the drag's end, a scroll
amount, and for `type` a pointer to a span of instruction words plus a transform (as written, upper,
lower, without `/` and `:`) — typed text is copied from the instruction, never generated. The instruction
conditions the image features by FiLM and by a query vector matched against every grid cell.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scalelab.computer.envs.base import decode_png
from scalelab.errors import InputError, MissingInput

KINDS = ("left_click", "type", "key", "scroll_up", "scroll_down", "left_click_drag", "wait")
SCROLL_AMOUNTS = (1, 2, 5, 10, 20)
TRANSFORMS = ("none", "upper", "lower", "nodelim")
CELL = 8  # grid cell, screenshot pixels
MAX_TOKENS = 40
VOCAB = 4096
_STRIP = "\"'“”‘’,.!?;()"


def tokens(utterance: str) -> list[str]:
    return utterance.split()[:MAX_TOKENS]


def clean(tok: str) -> str:
    return tok.strip(_STRIP)


def transform(text: str, how: str) -> str:
    return {"none": text, "upper": text.upper(), "lower": text.lower(),
            "nodelim": text.replace("/", "").replace(":", "")}[how]


def _hash(word: str) -> int:
    return int(hashlib.md5(word.lower().encode()).hexdigest()[:8], 16) % (VOCAB - 1) + 1


def encode_text(utterance: str) -> tuple[np.ndarray, np.ndarray]:
    """Word ids (hashed) and per-word features (quoted, capitalised, has digit, position)."""
    toks = tokens(utterance)
    ids = np.zeros(MAX_TOKENS, dtype=np.int64)
    feats = np.zeros((MAX_TOKENS, 5), dtype=np.float32)
    for i, t in enumerate(toks):
        ids[i] = _hash(clean(t))
        feats[i] = [t[:1] in "\"“'", t.rstrip(".,")[-1:] in "\"”'", clean(t)[:1].isupper(),
                    any(c.isdigit() for c in t), i / MAX_TOKENS]
    return ids, feats


def encode_image(png_b64: str) -> np.ndarray:
    img = decode_png(png_b64)
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()  # 3 x H x W


class PixelPolicy(nn.Module):
    """Conv trunk + FiLM from the instruction; heads as described in the module docstring."""

    def __init__(self, width: int = 32, size: tuple[int, int] = (160, 210)):
        super().__init__()
        self.width, self.size = width, size
        w, d = width, 2 * width
        self.grid = (size[1] // CELL, size[0] // CELL)  # rows, cols
        # 8-pixel cells from three stride-2 stages: the first pools the 160x210 screenshot to half size
        self.trunk = nn.Sequential(
            nn.AvgPool2d(2), nn.Conv2d(5, w, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(w, d, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(d, d, 3, padding=1), nn.ReLU())
        self.emb = nn.Embedding(VOCAB, d, padding_idx=0)
        self.tok = nn.Linear(d + 5, d)
        self.ctx = nn.TransformerEncoder(nn.TransformerEncoderLayer(d, 4, 2 * d, 0.0, batch_first=True), 1,
                                         enable_nested_tensor=False)
        self.prev = nn.Embedding(len(KINDS) + 1, d)
        self.film = nn.Linear(d, 2 * d)
        self.mix = nn.Conv2d(d + 2, d, 3, padding=1)
        self.query = nn.Linear(d, 2 * d)
        self.click = nn.Conv2d(d, 1, 1)
        self.drop = nn.Conv2d(d, 1, 1)
        self.head = nn.Sequential(nn.Linear(2 * d, d), nn.ReLU(),
                                  nn.Linear(d, len(KINDS) + len(SCROLL_AMOUNTS) + len(TRANSFORMS)))
        self.span = nn.Linear(2 * d, 2)

    def forward(self, img: torch.Tensor, ids: torch.Tensor, tfeat: torch.Tensor, prev: torch.Tensor,
                step: torch.Tensor) -> dict[str, torch.Tensor]:
        b = img.shape[0]
        x = img.float() / 255.0
        ys = torch.linspace(-1, 1, x.shape[2], device=x.device).view(1, 1, -1, 1).expand(b, 1, -1, x.shape[3])
        xs = torch.linspace(-1, 1, x.shape[3], device=x.device).view(1, 1, 1, -1).expand(b, 1, x.shape[2], -1)
        h = self.trunk(torch.cat([x, ys, xs], 1))
        h = F.adaptive_avg_pool2d(h, self.grid)
        mask = ids > 0
        t = self.tok(torch.cat([self.emb(ids), tfeat], -1))
        t = self.ctx(t, src_key_padding_mask=~mask)
        tg = (t * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        g = tg + self.prev(prev) + step.unsqueeze(-1).float() * 0.1
        gamma, beta = self.film(g).chunk(2, -1)
        h = h * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]
        gy = torch.linspace(-1, 1, self.grid[0], device=h.device).view(1, 1, -1, 1).expand(b, 1, -1, self.grid[1])
        gx = torch.linspace(-1, 1, self.grid[1], device=h.device).view(1, 1, 1, -1).expand(b, 1, self.grid[0], -1)
        h = F.relu(self.mix(torch.cat([h, gy, gx], 1)))
        q, _ = self.query(g).chunk(2, -1)
        match = (h * q[:, :, None, None]).sum(1, keepdim=True) / h.shape[1] ** 0.5
        pooled = h.mean((2, 3))
        logits = self.head(torch.cat([pooled, g], -1))
        nk, ns = len(KINDS), len(SCROLL_AMOUNTS)
        span = self.span(torch.cat([t, g.unsqueeze(1).expand_as(t)], -1)).masked_fill(~mask.unsqueeze(-1), -1e4)
        return {"kind": logits[:, :nk], "amount": logits[:, nk:nk + ns], "transform": logits[:, nk + ns:],
                "click": (self.click(h) + match).flatten(1), "drop": self.drop(h).flatten(1),
                "start": span[..., 0], "end": span[..., 1]}

    def cell_centre(self, index: int) -> list[int]:
        r, c = divmod(int(index), self.grid[1])
        return [min(self.size[0] - 1, c * CELL + CELL // 2), min(self.size[1] - 1, r * CELL + CELL // 2)]


def save_policy(model: PixelPolicy, out: Path, meta: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), str(out / "policy.safetensors"))
    (out / "config.json").write_text(json.dumps({"kind": "pixel-policy", "width": model.width,
                                                 "size": list(model.size), **meta}, indent=2))


def load_policy(path: Path) -> PixelPolicy:
    from safetensors.torch import load_file

    cfg_path = Path(path) / "config.json"
    if not cfg_path.exists():
        raise MissingInput(f"{path} is not a trained pixel agent (no config.json); train one with "
                           "`scalelab computer train --agent pixel --out DIR`")
    cfg = json.loads(cfg_path.read_text())
    model = PixelPolicy(cfg["width"], tuple(cfg["size"]))
    model.load_state_dict(load_file(str(Path(path) / "policy.safetensors")))
    return model.eval()


class PixelAgent:
    """Greedy decoding of a trained `PixelPolicy`; remembers its previous action kind and the step."""

    def __init__(self, model: PixelPolicy, name: str = "pixel"):
        self.model, self.name = model, name
        self.prev, self.step = len(KINDS), 0

    def reset(self, obs: dict[str, Any]) -> None:
        if tuple(obs["size"]) != tuple(self.model.size):
            raise InputError(f"this pixel agent was trained on {self.model.size[0]}x{self.model.size[1]} screenshots "
                             f"(the miniwob backend) but the screen is {obs['size'][0]}x{obs['size'][1]}; run it "
                             "with --backend miniwob")
        self.prev, self.step = len(KINDS), 0

    @torch.no_grad()
    def act(self, obs: dict[str, Any], last: dict[str, Any] | None) -> dict[str, Any]:
        ids, feats = encode_text(obs["utterance"])
        out = self.model(torch.from_numpy(encode_image(obs["screenshot"]))[None], torch.from_numpy(ids)[None],
                         torch.from_numpy(feats)[None], torch.tensor([self.prev]), torch.tensor([self.step]))
        kind = int(out["kind"][0].argmax())
        self.prev, self.step = kind, self.step + 1
        return decode_action(self.model, out, kind, obs["utterance"])

    def close(self) -> None:
        pass


def decode_action(model: PixelPolicy, out: dict[str, torch.Tensor], kind: int, utterance: str) -> dict[str, Any]:
    name = KINDS[kind]
    where = model.cell_centre(int(out["click"][0].argmax()))
    if name == "left_click":
        return {"action": "left_click", "coordinate": where}
    if name == "left_click_drag":
        return {"action": "left_click_drag", "start_coordinate": where,
                "coordinate": model.cell_centre(int(out["drop"][0].argmax()))}
    if name in ("scroll_up", "scroll_down"):
        return {"action": "scroll", "coordinate": where, "scroll_direction": name.split("_")[1],
                "scroll_amount": SCROLL_AMOUNTS[int(out["amount"][0].argmax())]}
    if name == "key":
        return {"action": "key", "text": "Return"}
    if name == "type":
        toks = tokens(utterance) or [""]
        s = int(out["start"][0].argmax())
        e = s + int(out["end"][0, s:s + 6].argmax())
        text = clean(" ".join(toks[s:e + 1]))
        return {"action": "type", "text": transform(text, TRANSFORMS[int(out["transform"][0].argmax())]) or " "}
    return {"action": "wait", "duration": 0.4}


def label(action: dict[str, Any], utterance: str) -> dict[str, Any] | None:
    """Training targets for one oracle action, or None if the pixel agent's heads cannot express it."""
    a = action["action"]
    if a == "left_click" and "text" not in action:
        return {"kind": 0, "click": action["coordinate"]}
    if a == "type":
        toks = tokens(utterance)
        for s in range(len(toks)):
            for e in range(s, min(len(toks), s + 6)):
                for ti, how in enumerate(TRANSFORMS):
                    if transform(clean(" ".join(toks[s:e + 1])), how) == action["text"]:
                        return {"kind": 1, "start": s, "end": e - s, "transform": ti}
        return None
    if a == "key" and action["text"] == "Return":
        return {"kind": 2}
    if a == "scroll" and action["scroll_direction"] in ("up", "down") and action["scroll_amount"] in SCROLL_AMOUNTS:
        return {"kind": 3 if action["scroll_direction"] == "up" else 4, "click": action["coordinate"],
                "amount": SCROLL_AMOUNTS.index(action["scroll_amount"])}
    if a == "left_click_drag":
        return {"kind": 5, "click": action["start_coordinate"], "drop": action["coordinate"]}
    if a == "wait":
        return {"kind": 6}
    return None


def cell_index(model_grid: tuple[int, int], xy: list[int]) -> int:
    r = min(model_grid[0] - 1, int(xy[1]) // CELL)
    c = min(model_grid[1] - 1, int(xy[0]) // CELL)
    return r * model_grid[1] + c


def prev_kinds(actions: list[dict[str, Any]], utterance: str) -> list[int]:
    out, prev = [], len(KINDS)
    for a in actions:
        out.append(prev)
        lab = label(a, utterance)
        prev = lab["kind"] if lab else prev
    return out

