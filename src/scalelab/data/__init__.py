"""Text in, tokens out: corpus reading, tokenizer training, shard packing and loading, the entropy floor."""
