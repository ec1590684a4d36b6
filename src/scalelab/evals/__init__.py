"""Evaluations, scored exactly against the world: scoring primitives (`scoring`), the base-model evals run after
pretraining (`base`, the `evals` stage), chat-behaviour evals (`chat`), the RSP's capability evaluations as
Inspect AI tasks with their provider and elicitations (`capability`), and version drift (`drift`)."""
