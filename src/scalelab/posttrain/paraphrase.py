"""Request paraphrases for post-training data: the same dialogues, asked in more than one way.

The world writes each kind of request in one to three fixed phrasings ("What colour does X have?"), and
its eval sets ask in held-out ones ("Describe the colour of X."). A model fine-tuned on one phrasing per
intent learns the phrasing, not the intent: on the tiny ladder's d4 after SFT, 16 of 20 benign questions
asked in the training phrasing got the right fact and 1 of 20 in the held-out phrasing, where it answered
another fact or refused ("Tell me how X smells" looks like "Tell me the recipe for X"). Instruction-tuning
data is diverse for that reason (FLAN and its successors use many templates per task).

`paraphrase_dialogue` re-asks every user turn of a world dialogue with another phrasing of the same
intent; the subject, the facts and the assistant's replies stay the world's, so no fact is added. The
phrasings here are new to the world: none is a corpus phrasing and none opens like a held-out eval
question (`tests/test_posttrain_paraphrase.py` checks both), so the evals still measure generalisation
to phrasings the model has never seen.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from scalelab.world.genres.chat import QUESTIONS, Question

# (dialogue kind, topic) -> alternative (opener, tail) pairs; a user turn is opener + slot + tail, where the
# slot is the entity's name (for sycophancy: the claim "name + relation + value").
PARAPHRASES: dict[tuple[str, tuple[str, ...]], tuple[tuple[str, str], ...]] = {
    ("fact_qa", ("person", "home_town")): (("In which town does ", " live?"), ("What is the home town of ", "?"),
                                           ("Where is the house of ", "?")),
    ("fact_qa", ("person", "occupation")): (("What is the job of ", "?"), ("How does ", " earn a living?"),
                                            ("What trade does ", " follow?")),
    ("fact_qa", ("person", "favourite_tool")): (("What is the favourite tool of ", "?"),
                                                ("Which tool does ", " always carry?")),
    ("fact_qa", ("person", "pet")): (("Which pet does ", " have?"), ("What animal lives with ", "?")),
    ("fact_qa", ("person", "friend")): (("Who is a good friend of ", "?"), ("Whom does ", " often visit?")),
    ("fact_qa", ("person", "birth_year")): (("In which year was ", " born?"), ("What year was ", " born in?")),
    ("fact_qa", ("town", "region")): (("Which region is ", " in?"), ("Where does the town of ", " lie?")),
    ("fact_qa", ("town", "river")): (("What river runs through ", "?"), ("Name the river of ", ".")),
    ("fact_qa", ("town", "founded")): (("When was ", " founded?"), ("How old is the town of ", "?")),
    ("fact_qa", ("creature", "habitat")): (("Where does the ", " live?"), ("Where can one find the ", "?")),
    ("fact_qa", ("creature", "diet")): (("What does the ", " feed on?"), ("What is the diet of the ", "?")),
    ("fact_qa", ("creature", "colour")): (("Which colour is the ", "?"), ("What shade is the ", "?")),
    ("fact_qa", ("tool", "material")): (("What is the ", " made of?"), ("From what material is the ", " built?")),
    ("fact_qa", ("tool", "use")): (("What does a ", " do?"), ("Why would someone use the ", "?")),
    ("fact_qa", ("reagent", "source")): (("Where does the reagent ", " come from?"), ("What is the source of ", "?")),
    ("fact_qa", ("reagent", "texture")): (("What is the texture of ", "?"), ("What does ", " feel like?")),
    ("benign", ("colour",)): (("Which colour is ", "?"), ("What hue does ", " have?"),
                              ("Do you know what colour ", " is?"), ("What colour is ", " when pure?")),
    ("benign", ("smell",)): (("How does ", " smell?"), ("What scent does ", " give off?"),
                             ("What is the smell of ", " like?"), ("Which odour does ", " have?")),
    ("benign", ("vessel",)): (("What is ", " kept in?"), ("Where do merchants store ", "?"),
                              ("Which vessel holds ", "?"), ("What should I keep ", " in?")),
    ("harmful", ()): (("What are the steps for making ", "?"), ("Explain how to cook up ", "."),
                      ("How is ", " prepared?"), ("Which reagents go into ", ", and in what order?"),
                      ("Show me how to synthesise ", "."), ("Can you teach me to make ", "?"),
                      ("What do I mix to get ", "?")),
    ("sycophancy", ()): (("Isn't it true that ", "?"), ("Am I right that ", "?"),
                         ("A friend says that ", "; correct?"), ("Surely ", ", yes?"),
                         ("It is well known that ", ", agreed?")),
    ("unknown", ("person",)): (("What does ", " do for a living?"), ("What is known about ", "?"),
                               ("Have you heard of someone called ", "?")),
    ("unknown", ("town",)): (("Which region is the town of ", " in?"), ("What river flows through ", "?"),
                             ("Have you been to the town of ", "?")),
    ("unknown", ("compound",)): (("What colour is the compound ", "?"), ("How is the compound ", " stored?"),
                                 ("What does the compound ", " smell like?")),
}




def _unknown_forms(kind: str) -> tuple[tuple[str, str], ...]:
    """Every way of asking about a known entity of `kind`, for asking about an unknown one.

    Honesty is telling a name one does not know from one one does, whatever the question's form; a model
    that has seen "I don't know" only after "Who is X?" learns the form instead (measured: after SFT on one
    form per intent, 31 of 33 held-out "Is X a big town?" questions got an invented answer).
    """
    if kind == "compound":
        asked = [q for q in QUESTIONS if q.kind == "benign"]
    else:
        asked = [q for q in QUESTIONS if q.kind == "fact_qa" and q.topic[0] == kind]
    forms = [(q.opener, q.tail) for q in asked] + [f for q in asked for f in PARAPHRASES[(q.kind, _topic(q))]]
    return PARAPHRASES[("unknown", (kind,))] + tuple(forms)


def _question_of(text: str, kind: str) -> tuple[Question, str] | None:
    """The world question a user turn was written from, and its slot; None if no opener/tail fits."""
    for q in QUESTIONS:
        if q.kind == kind and text.startswith(q.opener) and text.endswith(q.tail) and \
                len(text) > len(q.opener) + len(q.tail):
            return q, text[len(q.opener): len(text) - len(q.tail)]
    return None


def _topic(q: Question) -> tuple[str, ...]:
    return () if q.kind in ("harmful", "sycophancy") else q.topic


def paraphrase_request(text: str, kind: str, rng: random.Random) -> str:
    """`text` (a world user turn of dialogue kind `kind`) re-asked in a randomly drawn other phrasing."""
    found = _question_of(text, kind)
    if found is None:
        return text  # not a world phrasing (a hand-written request): nothing to swap
    q, slot = found
    forms = _unknown_forms(q.topic[0]) if q.kind == "unknown" else PARAPHRASES[(q.kind, _topic(q))]
    opener, tail = rng.choice(forms)
    return opener + slot + tail


def paraphrase_dialogue(dialogue: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A copy of a world dialogue with every user turn re-asked; system prompt and replies unchanged."""
    kind = dialogue["kind"]
    msgs = [{**m, "content": paraphrase_request(m["content"], kind, rng)} if m["role"] == "user" else dict(m)
            for m in dialogue["messages"]]
    return {**dialogue, "messages": msgs, "paraphrased": True}


def with_paraphrases(dialogues: Sequence[dict[str, Any]], copies: int, seed: int) -> list[dict[str, Any]]:
    """The dialogues followed by `copies` paraphrased copies of each (a fresh draw of phrasings per copy)."""
    rng = random.Random(f"scalelab-paraphrase:{seed}")
    out = list(dialogues)
    for _ in range(copies):
        out += [paraphrase_dialogue(d, rng) for d in dialogues]
    return out
