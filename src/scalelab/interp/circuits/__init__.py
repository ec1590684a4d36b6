"""Circuits: per-layer transcoders, attribution graphs with frozen attention and norms, and their ablation check.

`transcoder` trains and stores a sparse replacement of every MLP; `attribution` builds a prompt's graph of
direct effects between active transcoder features, error nodes, token embeddings and the answer's logit,
prunes it by influence and checks it by ablation; `graph_json` writes it in circuit-tracer's format for its
viewer; `run` is what `scalelab interp circuit` and the `interp` stage call.
"""
