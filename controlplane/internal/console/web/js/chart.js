// Small SVG charts drawn from data: a sparkline and a line chart. Colours come from
// the stylesheet (classes series-0 … series-7), so the charts follow its contrast
// choices and need no style attribute.

import {h, s} from './dom.js';

const seriesClasses = 8;

function scale(d0, d1, r0, r1) {
  const span = d1 - d0 || 1;
  return (v) => r0 + ((v - d0) / span) * (r1 - r0);
}

// niceMax rounds a maximum up to 1, 2 or 5 times a power of ten.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) {
    if (v <= m * p) return m * p;
  }
  return 10 * p;
}

// timeStep is the spacing of the time axis's ticks: a whole number of hours (or
// days) that gives about six of them.
function timeStep(span) {
  const hour = 3600 * 1000;
  for (const h of [1, 2, 3, 4, 6, 12, 24, 48, 96, 168]) {
    if (span / (h * hour) <= 7) return h * hour;
  }
  return 336 * hour;
}

function pathOf(points, x, y) {
  return points.map((p, i) => `${i ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ');
}

// sparkline draws points ({t: ms, v}) between from and to; label names what they
// are, for screen readers (the figure's numbers are in the table beside it).
export function sparkline(points, {from, to, label, width = 140, height = 30, max}) {
  const top = Math.max(max || 0, ...points.map((p) => p.v));
  const x = scale(from, to, 1, width - 3);
  const y = scale(0, top || 1, height - 2, 2);
  const svg = s('svg', {class: 'spark', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': label},
    s('title', {}, label),
    s('line', {class: 'base', x1: 0, x2: width, y1: height - 1.5, y2: height - 1.5}));
  if (points.length === 0) {
    svg.appendChild(s('text', {class: 'empty', x: width / 2, y: height / 2 + 4, 'text-anchor': 'middle'}, 'no samples'));
    return svg;
  }
  svg.appendChild(s('path', {class: 'line', d: pathOf(points, x, y)}));
  const last = points[points.length - 1];
  svg.appendChild(s('circle', {class: 'dot', cx: x(last.t).toFixed(1), cy: y(last.v).toFixed(1), r: 2.5}));
  return svg;
}

// lineChart draws series ({name, points: [{t: ms, v}]}) over [from, to] with a y
// axis formatted by fmtY and time ticks by fmtX; under it, a legend, and the same
// numbers as a table for whoever cannot see the chart.
export function lineChart(series, {from, to, title, fmtY = String, fmtX, width = 760, height = 260}) {
  const m = {l: 64, r: 28, t: 12, b: 28};
  const top = niceMax(Math.max(0, ...series.flatMap((sr) => sr.points.map((p) => p.v))));
  const x = scale(from, to, m.l, width - m.r);
  const y = scale(0, top, height - m.b, m.t);
  const svg = s('svg', {class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': title, preserveAspectRatio: 'xMidYMid meet'},
    s('title', {}, title));
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    svg.appendChild(s('line', {class: 'grid', x1: m.l, x2: width - m.r, y1: y(v), y2: y(v)}));
    svg.appendChild(s('text', {class: 'tick', x: m.l - 6, y: y(v) + 4, 'text-anchor': 'end'}, fmtY(v)));
  }
  const step = timeStep(to - from);
  for (let t = Math.ceil(from / step) * step; t <= to; t += step) {
    svg.appendChild(s('line', {class: 'grid', x1: x(t), x2: x(t), y1: height - m.b, y2: height - m.b + 4}));
    svg.appendChild(s('text', {class: 'tick', x: x(t), y: height - 8, 'text-anchor': 'middle'}, fmtX(t)));
  }
  series.forEach((sr, i) => {
    const cls = `series-${i % seriesClasses}`;
    if (sr.points.length === 1) {
      const p = sr.points[0];
      svg.appendChild(s('circle', {class: `pt ${cls}`, cx: x(p.t), cy: y(p.v), r: 3.5}));
    } else if (sr.points.length > 1) {
      svg.appendChild(s('path', {class: `line ${cls}`, d: pathOf(sr.points, x, y)}));
      for (const p of sr.points) svg.appendChild(s('circle', {class: `pt ${cls}`, cx: x(p.t), cy: y(p.v), r: 2.5}));
    }
  });
  const legend = h('ul', {class: 'legend'}, series.map((sr, i) =>
    h('li', {}, s('svg', {width: 12, height: 12, 'aria-hidden': 'true'}, s('rect', {class: `swatch series-${i % seriesClasses}`, width: 12, height: 12, rx: 2})), ' ', sr.name)));
  return h('figure', {class: 'chart'}, svg, legend);
}
