"""A TopK encoder and decoder that never materialise the dense (batch × d_sae) gradient work.

With k of d_sae latents active, a dense implementation spends most of a training step on matmuls whose
operands are almost all zeros: the decoder (f @ W_dec and its two gradients) and the encoder's weight
gradient. Here only the encoder's forward matmul is dense, and it runs once per step: the AuxK latents
(the top `aux_k` among dead latents) are picked from the same pre-activations as the main top-k, instead
of a second encoder pass. The backward gathers the gradients of every selected pre-activation (main and
AuxK) into one sparse CSR (d_sae × batch) matrix, so ∂W_enc is one sparse-dense product; decoding is
`F.embedding_bag` over the selected decoder rows, whose backward is a scatter-add of k rows per token.
Profiled on this CPU (BENCHMARKS.md): the dense encoder matmul and the top-k then take most of a step, so
the matmul writes into a buffer reused across steps (a fresh 2048 × 9,216 output costs ~25 ms of page faults
per step) and the top-k goes through `grouped_topk`, which reads the full row only once.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from scalelab.model.precision import active_autocast_dtype


def _csr_transpose_mm(idx: torch.Tensor, g: torch.Tensor, n_cols: int, dense: torch.Tensor) -> torch.Tensor:
    """Gᵀ @ dense for the (batch × n_cols) matrix G with G[b, idx[b, j]] = g[b, j] (duplicates add up)."""
    b, k = idx.shape
    cols = idx.reshape(-1)
    order = cols.argsort()
    rows = torch.arange(b, device=idx.device).repeat_interleave(k)[order]
    crow = torch.zeros(n_cols + 1, dtype=torch.long, device=idx.device)
    crow[1:] = torch.bincount(cols, minlength=n_cols).cumsum(0)
    with warnings.catch_warnings():  # torch flags CSR as beta on every construction; it is tested here
        warnings.simplefilter("ignore", UserWarning)
        gt = torch.sparse_csr_tensor(crow, rows, g.reshape(-1)[order], (n_cols, b), check_invariants=False)
    out = dense.new_empty(n_cols, dense.shape[1])
    # beta=0 into an empty output: `gt @ dense` zero-fills a result and copies it, ~2x the time at 9,216 x 576.
    return torch.addmm(out, gt, dense, beta=0, out=out)


def _n_groups(d: int, k: int) -> int:
    """The number of strided groups for `grouped_topk`: a divisor of d near sqrt(d·k), at least 2k, so the
    candidates (k groups of d/G) are few; 0 when no divisor leaves at least two members per group."""
    target = (d * k) ** 0.5
    divisors = [g for g in range(2 * k, d // 2 + 1) if d % g == 0]
    return min(divisors, key=lambda g: abs(g - target)) if divisors else 0


def grouped_topk(pre: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exactly `pre.topk(k, dim=-1, sorted=False)`'s values (as a multiset, ties included), ~1.6× faster on wide rows.

    Latent j belongs to group j mod G. Every top-k element lies in one of the k groups with the largest maxima
    (if its group were not among them, those k groups' maxima would be k distinct elements at least as large),
    so one pass computes the group maxima, a small top-k picks k groups, and the final top-k runs over their
    k·d/G members only. torch's CPU top-k costs per row far more than the max-reduction, which is why this wins.
    """
    b, d = pre.shape
    g = _n_groups(d, k)
    if not g:
        return pre.topk(k, dim=-1, sorted=False)
    m = d // g
    grouped = pre.view(b, m, g)
    _, gi = grouped.amax(1).topk(k, dim=-1, sorted=False)  # (b, k) chosen groups
    cand = grouped.gather(2, gi[:, None, :].expand(b, m, k)).reshape(b, m * k)
    vals, j = cand.topk(k, dim=-1, sorted=False)
    return vals, gi.gather(1, j % k) + (j // k) * g


EXACT_CHUNK = 128  # rows per gather in `_exact_values`: their encoder rows (128 × k × d_in floats) stay in cache


def _exact_values(xc: torch.Tensor, w_enc: torch.Tensor, b_enc: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The fp32 pre-activations of the latents `idx` (batch, k): k dot products per row, a k/d_sae fraction of
    the dense product's work. The chosen encoder rows are gathered a chunk of rows at a time: gathered for the
    whole batch at once (2048 × 32 × 576 floats, 151 MB) they left the cache before the product read them, and
    the gather took 78 ms against 17 ms chunked (one step at SmolLM2's width, 2 threads)."""
    rows_of = w_enc.t()  # (d_sae, d_in); contiguous, since W_enc is the transposed view of W_enc_T
    out = torch.empty(idx.shape, dtype=xc.dtype, device=xc.device)
    for start in range(0, len(idx), EXACT_CHUNK):
        i = idx[start:start + EXACT_CHUNK]
        rows = rows_of.index_select(0, i.reshape(-1)).view(*i.shape, -1)
        out[start:start + EXACT_CHUNK] = torch.bmm(rows, xc[start:start + EXACT_CHUNK].unsqueeze(-1)).squeeze(-1)
    return out + b_enc[idx]


class _TopKEncode(torch.autograd.Function):
    """Under bf16 autocast only the dense product runs in bf16, and only to choose the latents: the chosen
    (main and AuxK) values are recomputed in fp32 (`_exact_values`), and the backward, which reads the fp32
    inputs, is fp32 throughout. A near-tie between latents may resolve differently; no value carries bf16's
    rounding into the loss or the gradients."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w_enc: torch.Tensor, b_enc: torch.Tensor, b_dec: torch.Tensor,  # type: ignore[override]
                k: int, aux_k: int, aux_candidates: torch.Tensor | None, workspace: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        dev = x.device.type
        amp = active_autocast_dtype(dev)
        with torch.autocast(dev, enabled=False):  # the products below choose their own precision
            xc = x - b_dec
            shape = (len(xc), w_enc.shape[1])
            a, w = (xc.to(amp), w_enc.to(amp)) if amp is not None else (xc, w_enc)
            bias = b_enc.to(a.dtype)  # an fp32 bias added into a bf16 output takes a slow mixed-dtype path
            if workspace is not None and workspace.shape == shape and workspace.dtype == a.dtype:
                pre = torch.mm(a, w, out=workspace).add_(bias)
            else:
                pre = torch.addmm(bias, a, w)
            vals, idx = grouped_topk(pre, k)
            if amp is not None:
                vals = _exact_values(xc, w_enc, b_enc, idx)
            out = vals.relu()
            aux_out = out.new_zeros(len(x), 0)
            aux_idx = idx.new_zeros(len(x), 0)
            if aux_k and aux_candidates is not None:
                # Dead: a candidate (silent long enough before this batch) that did not fire in this batch either.
                fired = torch.zeros_like(aux_candidates).index_fill_(0, idx[out > 0], True)
                dead = (aux_candidates & ~fired).nonzero().squeeze(-1)
                if len(dead):
                    a_vals, a_pos = pre.index_select(1, dead).topk(min(aux_k, len(dead)), dim=-1, sorted=False)
                    aux_idx = dead[a_pos]
                    aux_out = (_exact_values(xc, w_enc, b_enc, aux_idx) if amp is not None else a_vals).relu()
        ctx.save_for_backward(xc, w_enc, torch.cat([idx, aux_idx], 1), torch.cat([out, aux_out], 1) > 0)
        ctx.k = k
        ctx.mark_non_differentiable(idx, aux_idx)
        return out, idx, aux_out, aux_idx

    @staticmethod
    def backward(ctx, g_vals: torch.Tensor, _g_idx: torch.Tensor | None,  # type: ignore[override]
                 g_aux: torch.Tensor | None, _g_aux_idx: torch.Tensor | None):
        xc, w_enc, idx, positive = ctx.saved_tensors
        if g_aux is None or g_aux.numel() == 0:
            g_aux = g_vals.new_zeros(len(g_vals), idx.shape[1] - ctx.k)
        g = torch.cat([g_vals, g_aux], 1) * positive
        d_sae = w_enc.shape[1]
        g_w = _csr_transpose_mm(idx, g, d_sae, xc).t()  # (d_in, d_sae)
        g_b_enc = torch.zeros(d_sae, dtype=g.dtype, device=g.device).index_add_(0, idx.reshape(-1), g.reshape(-1))
        g_b_dec = -(w_enc @ g_b_enc)
        return None, g_w, g_b_enc, g_b_dec, None, None, None, None


def topk_encode(x: torch.Tensor, w_enc: torch.Tensor, b_enc: torch.Tensor, b_dec: torch.Tensor, k: int,
                aux_k: int = 0, aux_candidates: torch.Tensor | None = None, workspace: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(values, indices) of the ReLU'd top-k pre-activations, each (batch, k), then the same for the top
    `aux_k` among `aux_candidates` that did not fire in this batch (each (batch, ≤ aux_k); empty if none).

    `workspace`, a (batch, d_sae) tensor the caller keeps between steps (in the autocast dtype under autocast),
    receives the pre-activations (nothing reads it after this call returns); without one, a fresh tensor is
    allocated."""
    return _TopKEncode.apply(x, w_enc, b_enc, b_dec, k, aux_k, aux_candidates, workspace)


class _TopKDecode(torch.autograd.Function):
    """`F.embedding_bag` forward; backward writes ∂W_dec with the same CSR product as the encoder's instead of
    embedding_bag's zero-filled dense scatter, and the value gradients with its per-sample-weights kernel.

    With `tangent`, ∂W_dec comes without its component along each (unit) decoder row, which the training loop
    would otherwise remove with a full pass over both matrices: that component of row l is
    Σ vals[b, j]·(g[b]·W_dec[l]) over the (b, j) that selected l, and g[b]·W_dec[idx[b, j]] is exactly the value
    gradient already computed, so it costs one index_add over batch × k entries.
    """

    @staticmethod
    def forward(ctx, vals: torch.Tensor, idx: torch.Tensor, w_dec: torch.Tensor,  # type: ignore[override]
                tangent: bool) -> torch.Tensor:
        ctx.save_for_backward(vals, idx, w_dec)
        ctx.tangent = tangent
        return F.embedding_bag(idx, w_dec, per_sample_weights=vals, mode="sum")

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        vals, idx, w_dec = ctx.saved_tensors
        b, k = idx.shape
        g_w = _csr_transpose_mm(idx, vals, w_dec.shape[0], g)
        offsets = torch.arange(0, b * k, k, device=idx.device)
        bag_of = torch.arange(b, device=idx.device).repeat_interleave(k)
        g_vals = torch.ops.aten._embedding_bag_per_sample_weights_backward(
            g.contiguous(), w_dec, idx.reshape(-1), offsets, bag_of, 0).view(b, k)  # mode 0 = sum
        if ctx.tangent:
            radial = torch.zeros(w_dec.shape[0], dtype=g_w.dtype, device=g_w.device)
            radial.index_add_(0, idx.reshape(-1), (vals * g_vals).reshape(-1))
            g_w.addcmul_(radial.unsqueeze(1), w_dec, value=-1.0)
        return g_vals, None, g_w, None


def topk_decode(vals: torch.Tensor, idx: torch.Tensor, w_dec: torch.Tensor, tangent: bool = False) -> torch.Tensor:
    """Σ_j vals[:, j] · W_dec[idx[:, j]], without the bias. `tangent`: W_dec's gradient comes with its component
    along each row removed (`SAE.remove_parallel_grad`'s job, done here for unit-norm rows at almost no cost)."""
    return _TopKDecode.apply(vals, idx, w_dec, tangent)
