"""The model: scalelab's Llama (HF-compatible weights), HF folder I/O, GGUF import, FLOP counts, the fused loss,
and the LM handle every stage loads, samples and chats through (`model.lm`)."""
