"""`DIR/index.html`: a self-contained viewer that steps through each episode's screenshots with the action
drawn on them (a red dot for a click, an arrow for a drag, the typed text in a caption).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title><style>
body{{font:14px sans-serif;margin:1em}} .ep{{cursor:pointer;margin:2px 0}} .ok{{color:#080}} .bad{{color:#b00}}
#view{{display:flex;gap:1em}} canvas{{border:1px solid #888;image-rendering:pixelated}} pre{{white-space:pre-wrap}}
</style></head><body><h1>{title}</h1><p>{summary}</p><div id="view"><div id="list">{items}</div><div>
<div><button onclick="go(-1)">&larr; prev</button> <button onclick="go(1)">next &rarr;</button>
<span id="pos"></span></div><canvas id="c"></canvas><pre id="info"></pre></div></div>
<script>
const EPISODES = {data};
let ep = null, i = 0;
const c = document.getElementById('c'), ctx = c.getContext('2d'), SCALE = 3;
function show(k) {{ ep = EPISODES[k]; i = 0; draw(); }}
function go(d) {{ if (!ep) return; i = Math.max(0, Math.min(ep.steps.length, i + d)); draw(); }}
function draw() {{
  const step = ep.steps[i], img = new Image();
  img.onload = () => {{
    c.width = img.width * SCALE; c.height = img.height * SCALE; ctx.imageSmoothingEnabled = false;
    ctx.drawImage(img, 0, 0, c.width, c.height);
    const a = step ? step.action : null; ctx.strokeStyle = ctx.fillStyle = 'red'; ctx.lineWidth = 3;
    if (a && a.coordinate) {{ const [x, y] = a.coordinate.map(v => v * SCALE);
      if (a.start_coordinate) {{ const [sx, sy] = a.start_coordinate.map(v => v * SCALE);
        ctx.beginPath(); ctx.moveTo(sx, sy); ctx.lineTo(x, y); ctx.stroke(); }}
      ctx.beginPath(); ctx.arc(x, y, 6, 0, 7); ctx.fill(); }}
  }};
  img.src = step ? step.screenshot : ep.final;
  document.getElementById('pos').textContent = `${{ep.name}}  step ${{i}} / ${{ep.steps.length}}`;
  document.getElementById('info').textContent = ep.utterance + '\\n\\n' + (step ? JSON.stringify(step.action) +
    (step.error ? '\\nerror: ' + step.error : '') + `\\nreward ${{step.reward}}  done ${{step.done}}` :
    `final: success ${{ep.success}}  reward ${{ep.reward}}`);
}}
document.addEventListener('keydown', e => {{ if (e.key === 'ArrowRight') go(1); if (e.key === 'ArrowLeft') go(-1); }});
if (EPISODES.length) show(0);
</script></body></html>"""


def write_viewer(out_dir: Path, results: dict[str, Any]) -> Path:
    """Write out_dir/index.html over out_dir/trajectories/*.jsonl (paths relative, so the folder can move)."""
    traj = out_dir / "trajectories"
    episodes = []
    for meta_path in sorted(traj.glob("*.meta.json")):
        meta = json.loads(meta_path.read_text())
        stem = meta_path.name[: -len(".meta.json")]
        steps = [json.loads(line) for line in (traj / f"{stem}.jsonl").read_text().splitlines()]
        for s in steps:
            s["screenshot"] = f"trajectories/{s['screenshot']}"
        episodes.append({"name": stem, "utterance": meta.get("utterance", ""), "success": meta["success"],
                         "reward": meta["reward"], "steps": steps,
                         "final": f"trajectories/{meta['final_screenshot']}"})
    items = "".join(f'<div class="ep {"ok" if e["success"] else "bad"}" onclick="show({k})">'
                    f'{"✓" if e["success"] else "✗"} {html.escape(e["name"])}</div>' for k, e in enumerate(episodes))
    summary = (f"agent <b>{html.escape(str(results['agent']))}</b>, backend {results['backend']}, split "
               f"{results['split']}: success {results['success_rate']:.1%} (95% CI {results['ci95'][0]:.1%}–"
               f"{results['ci95'][1]:.1%}) over {results['episodes']} episodes")
    if results.get("attack"):
        summary += f"; under attack, attack success {results['attack_success_rate']:.1%}"
    page = _PAGE.format(title="scalelab computer run", summary=summary, items=items,
                        data=json.dumps(episodes).replace("</", "<\\/"))
    path = out_dir / "index.html"
    path.write_text(page)
    return path
