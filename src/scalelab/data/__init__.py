"""Text in, tokens out: chat format, tokenizer training, corpus reading, shard packing and loading."""
