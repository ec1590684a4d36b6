// Load scalelab's attribution graphs with circuit-tracer's own viewer code (its `formatData`, util-cg.js), offline.
//
// circuit-tracer cannot be installed beside transformers 5, and its viewer fetches d3 from a CDN, so this runs
// the viewer's loader in Node with the four d3 helpers it calls (max, sum, sort, nestBy) and the two `util` ones
// (ppToken, params) written out here. The assets come from the wheel, unpacked without installing it:
//   pip download --no-deps circuit-tracer -d /tmp/ct && cd /tmp/ct && python -m zipfile -e circuit_tracer-*.whl x
//   node benchmarks/circuit_viewer_check.js /tmp/ct/x/circuit_tracer/frontend/assets RUN/interp/circuits/graphs/*.json
const fs = require("fs");
const vm = require("vm");

function nestBy(items, key) {
  const groups = new Map();
  for (const item of items) {
    const k = key(item);
    if (!groups.has(k)) groups.set(k, Object.assign([], { key: k }));
    groups.get(k).push(item);
  }
  return [...groups.values()];
}
const compare = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
const d3 = {
  max: (a, f) => a.reduce((m, x) => { const v = f ? f(x) : x; return v > m || m === undefined ? v : m; }, undefined),
  sum: (a, f) => a.reduce((s, x) => s + (+(f ? f(x) : x) || 0), 0),
  sort: (a, f) => [...a].sort((x, y) => compare(f(x), f(y))),
  nestBy,
};
const util = { ppToken: (t) => t, params: { get: () => undefined, set: () => {} } };
const context = { window: {}, d3, util, console };
const [assets, ...graphs] = process.argv.slice(2);
vm.runInNewContext(fs.readFileSync(`${assets}/attribution_graph/util-cg.js`, "utf8"), context);

(async () => {
  let failures = 0;
  for (const path of graphs.filter((p) => !p.endsWith("graph-metadata.json"))) {
    const data = JSON.parse(fs.readFileSync(path, "utf8"));
    const out = await context.window.utilCg.formatData(data, { pinnedIds: [], clerps: new Map() });
    const logit = out.nodes.find((d) => d.feature_type === "logit");
    const problems = [];
    if (!logit || !Number.isFinite(logit.logitPct)) problems.push("no logit node with a probability");
    if (out.links.some((l) => !l.sourceNode || !l.targetNode)) problems.push("a link to a missing node");
    if (!out.links.some((l) => l.targetNode === logit)) problems.push("nothing links to the logit");
    if (out.nodes.some((d) => !Number.isFinite(d.streamIdx))) problems.push("a node without a layer stream");
    failures += problems.length > 0;
    console.log(`${path}: ${out.nodes.length} nodes, ${out.links.length} links, ${out.features.length} features, ` +
      `logit "${logit?.logitToken}" p=${logit?.logitPct}` + (problems.length ? ` PROBLEMS: ${problems}` : " ok"));
  }
  process.exit(failures ? 1 : 0);
})();
