"""The chat format shared by the world corpus, the tokenizer's chat template and the chat CLI.

One definition serves all three so that a dialogue the world writes into pretraining text is
token-for-token what `tokenizer.apply_chat_template` produces at inference time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

from scalelab.errors import InputError

BOS = "<|bos|>"  # begins every packed document; predicting it is predicting the previous doc's end
PAD = "<|pad|>"
END = "<|end|>"  # closes one message
ROLES = ("system", "user", "assistant")
ROLE_TOKENS = {role: f"<|{role}|>" for role in ROLES}
SPECIAL_TOKENS = [BOS, PAD, END, *ROLE_TOKENS.values()]

# Jinja for HF tokenizers (`tokenizer.chat_template`); must render exactly like `render_chat`.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


class Message(TypedDict):
    role: str
    content: str


def render_chat(messages: Sequence[Message], add_generation_prompt: bool = False) -> str:
    """Render messages as text in scalelab's chat format (no BOS; the packer adds it)."""
    parts = []
    for m in messages:
        if m["role"] not in ROLE_TOKENS:
            raise InputError(f"unknown chat role {m['role']!r}; valid roles: {', '.join(ROLES)}")
        parts.append(f"{ROLE_TOKENS[m['role']]}{m['content']}{END}")
    if add_generation_prompt:
        parts.append(ROLE_TOKENS["assistant"])
    return "".join(parts)
