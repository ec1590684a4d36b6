// The chat page: settings A (and B for an A/B comparison), steering rows, and replies streamed over SSE from
// POST /api/chat/stream. Model text is only ever set with textContent, never parsed as HTML.
(function () {
  const models = JSON.parse(document.getElementById('models').textContent);
  const preset = JSON.parse(document.getElementById('preset').textContent);
  const byName = Object.fromEntries(models.map(m => [m.name, m]));
  const $ = id => document.getElementById(id);
  const modelSel = $('model');
  const conversation = {a: [], b: []};

  function panel(side) { return $('settings-' + side); }

  function fillSaes(side) {
    const sel = panel(side).querySelector('.sae');
    sel.textContent = '';
    const saes = (byName[modelSel.value] || {saes: []}).saes;
    for (const s of saes) { const o = document.createElement('option'); o.value = o.textContent = s; sel.appendChild(o); }
    if (!saes.length) { const o = document.createElement('option'); o.value = ''; o.textContent = '(no SAE reads this model)'; sel.appendChild(o); }
    panel(side).querySelector('.rows').textContent = '';
  }

  function addRow(side, feature, scale) {
    const row = document.createElement('div');
    row.className = 'row';
    row.innerHTML = 'feature <input class="feat" type="number" min="0" style="width:5em"> scale ' +
      '<input class="scale" type="range" min="-10" max="20" step="0.5"> <output></output> <button type="button">✕</button>';
    row.querySelector('.feat').value = feature;
    const slider = row.querySelector('.scale'), out = row.querySelector('output');
    slider.value = scale; out.textContent = slider.value;
    slider.addEventListener('input', () => { out.textContent = slider.value; });
    row.querySelector('button').addEventListener('click', () => row.remove());
    panel(side).querySelector('.rows').appendChild(row);
  }

  function settings(side) {
    const p = panel(side), v = cls => p.querySelector('.' + cls);
    const rows = [...p.querySelectorAll('.steering .row')];
    const features = {};
    for (const r of rows) features[r.querySelector('.feat').value] = parseFloat(r.querySelector('.scale').value);
    const sae = v('sae').value;
    return {system: v('system').value || null, temperature: parseFloat(v('temperature').value),
            top_p: parseFloat(v('top_p').value), max_tokens: parseInt(v('max_tokens').value, 10),
            seed: parseInt(v('seed').value, 10), safeguards: v('safeguards').checked,
            steer: rows.length && sae ? {sae: sae, features: features} : null};
  }

  function showGate() {
    const m = byName[modelSel.value], box = $('gate');
    if (m && !m.gate.off.served) {
      box.textContent = 'Without safeguards this model is refused: ' + m.gate.off.reason +
        (m.gate.on.served ? ' (switch safeguards on to chat with it)' : '');
      box.hidden = false;
    } else { box.hidden = true; box.textContent = ''; }
  }

  function turn(side, role, text) {
    const div = document.createElement('div');
    div.className = 'turn ' + role;
    div.textContent = text;
    $('transcript-' + side).appendChild(div);
    return div;
  }

  async function run(side, message) {
    const err = $('error-' + side);
    err.textContent = '';
    const body = {model: modelSel.value, messages: [...conversation[side], {role: 'user', content: message}],
                  ...settings(side)};
    turn(side, 'user', message);
    const reply = turn(side, 'assistant', '');
    let resp;
    try {
      resp = await fetch('/api/chat/stream', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                              body: JSON.stringify(body)});
    } catch (e) { err.textContent = 'network error: ' + e; reply.remove(); return; }
    if (!resp.ok) {
      const data = await resp.json().catch(() => ({error: resp.statusText}));
      err.textContent = (data.refused ? 'Refused by the RSP gate: ' : 'Error: ') + data.error;
      err.dataset.status = resp.status;
      reply.remove();
      return;
    }
    const reader = resp.body.getReader(), decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, {stream: true});
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
        const kind = (block.match(/^event: (.*)$/m) || [])[1];
        const data = JSON.parse((block.match(/^data: (.*)$/m) || [])[1] || 'null');
        if (kind === 'token') { reply.textContent += data; reply.dataset.tokens = (+(reply.dataset.tokens || 0)) + 1; }
        else if (kind === 'done') {
          reply.textContent = data.reply;
          reply.dataset.done = '1';
          if (data.filtered) reply.dataset.filtered = '1';
          conversation[side].push({role: 'user', content: message}, {role: 'assistant', content: data.reply});
        } else if (kind === 'error') { err.textContent = 'Error: ' + data; }
      }
    }
  }

  $('send').addEventListener('click', async () => {
    const message = $('message').value.trim();
    if (!message) return;
    $('send').disabled = true;
    try {
      await run('a', message);
      if ($('ab').checked) await run('b', message);
    } finally { $('send').disabled = false; }
  });
  $('reset').addEventListener('click', () => {
    for (const s of ['a', 'b']) { conversation[s] = []; $('transcript-' + s).textContent = ''; $('error-' + s).textContent = ''; }
  });
  $('ab').addEventListener('change', () => { $('panel-b').hidden = $('side-b').hidden = !$('ab').checked; });
  for (const s of ['a', 'b']) panel(s).querySelector('.add-feature').addEventListener('click', () => addRow(s, 0, 10));
  modelSel.addEventListener('change', () => { fillSaes('a'); fillSaes('b'); showGate(); });
  fillSaes('a'); fillSaes('b'); showGate();
  if (preset && preset.sae) {
    for (const s of ['a', 'b']) panel(s).querySelector('.sae').value = preset.sae;
    addRow('a', preset.feature, 10);
  }
})();
