"""The model: scalelab's Llama (HF-compatible weights), HF folder I/O, FLOP counts, the fused loss, generation."""
