"""Report rendering from a summary: Markdown and HTML agree, the ladder table and curves appear."""

import json

from scalelab.pipeline import STAGES, report_sections
from scalelab.report import write_report
from scalelab.report.render import markdown_to_html


def _summary():
    ev = {"fact_recall": 0.5, "arithmetic": 0.25, "hazard_knowledge": 0.3,
          "details": {"arithmetic": {"by_digits": {"1": {"exact_match": 0.9, "per_digit": 0.95, "n": 4},
                                                   "2": {"exact_match": 0.2, "per_digit": 0.6, "n": 4}}}}}
    models = [{"name": f"d{d}", "params": 1000 * d, "non_embedding_params": 500 * d, "tokens": 10_000,
               "train_flops": 3e10, "final_val_loss": 2.0 / d, "tokens_per_second": 1234.5, "evals": ev}
              for d in (1, 2)]
    world = {"entropy_floor_nats_per_token": 0.61, "n_docs": {"train": 10, "val": 2}, "fact_bits": 99.5}
    return {"preset": "smoke", "corpus": "world", "world": world,
            "tokenizer": {"vocab_size": 512}, "shards": {"train_tokens": 100, "val_tokens": 10},
            "models": models, "wall_seconds": 1.0}


def test_write_report(tmp_path):
    s = _summary()
    for m in s["models"]:
        d = tmp_path / "models" / m["name"]
        d.mkdir(parents=True)
        rows = [{"step": i + 1, "tokens": 100 * (i + 1), "loss": 3.0 - 0.1 * i} for i in range(5)]
        rows.append({"step": 5, "val_loss": 2.7})
        (d / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n{\"cut")
    paths = write_report(s, tmp_path, report_sections())
    md = paths["markdown"].read_text()
    assert "| d1 |" in md and "| d2 |" in md and "0.6100" in md and "(10 training documents, 100 bits" in md
    assert (tmp_path / "training_curves.png").stat().st_size > 1000
    html = paths["html"].read_text()
    assert "<table>" in html and "training_curves.png" in html and "<h2>The ladder</h2>" in html
    assert json.loads(paths["summary"].read_text())["preset"] == "smoke"


def test_markdown_to_html_escapes():
    html = markdown_to_html("# T\n\na <b> & **bold**\n\n- x\n- y\n", "t")
    assert "&lt;b&gt;" in html and "<strong>bold</strong>" in html and "<li>y</li>" in html


def test_every_stage_with_a_report_section_renders_in_pipeline_order(tmp_path):
    """The report follows pipeline.STAGES: an absent section renders nothing, present ones in stage order."""
    sections = report_sections()
    assert len(sections) == 2 + sum(s.report is not None for s in STAGES)  # the overview, the stages, the targets
    empty = {"preset": "smoke", "corpus": "world", "world": None}
    assert all(section(empty, tmp_path) == "" for section in sections[1:])
    md = write_report(_summary(), tmp_path, sections)["markdown"].read_text()
    assert md.index("# scalelab run") < md.index("## The ladder") < md.index("## Arithmetic by digit count")
