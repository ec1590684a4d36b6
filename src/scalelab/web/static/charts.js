// Zoomable charts: the server sends plain series of (x, y) points (web/plots.py); uPlot draws them.
// uPlot wants one shared x array, so every series is laid on the union of x values with gaps (null) elsewhere.
(function () {
  const charts = JSON.parse(document.getElementById('charts').textContent);
  const palette = ['#2f5bd3', '#d9480f', '#2b8a3e', '#862e9c', '#c2255c', '#0b7285', '#5c940d', '#e67700',
                   '#364fc7', '#a61e4d', '#087f5b', '#495057'];
  for (const c of charts) {
    const el = document.getElementById('plot-' + c.id);
    const xs = [...new Set(c.series.flatMap(s => s.points.map(p => p[0])))].sort((a, b) => a - b);
    const at = new Map(xs.map((x, i) => [x, i]));
    const data = [xs];
    const series = [{label: c.x}];
    c.series.forEach((s, k) => {
      const ys = new Array(xs.length).fill(null);
      for (const [x, y] of s.points) ys[at.get(x)] = y;
      data.push(ys);
      const colour = palette[(s.group ?? k) % palette.length];
      series.push({label: s.label, stroke: colour, width: s.line ? 1.5 : 0, dash: s.dash ? [6, 4] : undefined,
                   spanGaps: true, paths: s.line ? undefined : () => null,
                   points: {show: !s.line || s.points.length < 30, size: s.line ? 4 : 8, fill: colour}});
    });
    const opts = {width: Math.min(el.clientWidth || 900, 960), height: 380, series: series,
                  scales: {x: {time: false, distr: c.xlog ? 3 : 1}},
                  axes: [{label: c.x}, {label: c.y}], cursor: {drag: {x: true, y: true, uni: 20}}};
    new uPlot(opts, data, el);
  }
})();
