"""Pretraining: the loop, its schedule and optimiser, checkpoints, data-parallel runs, and the fine-tuning loop
later stages share. Import from the submodules (`train.loop.pretrain`, `train.finetune.train_sft`, ...)."""
