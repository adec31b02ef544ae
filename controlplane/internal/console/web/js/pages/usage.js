// Usage: tokens and cost per key and model from the control plane's usage ledger
// (hourly rows), the keys that use the most, and the keys close to a fleet limit or
// budget in its current window.

import {h, replace, table, field, message} from '../dom.js';
import * as api from '../api.js';
import * as fmt from '../fmt.js';
import {every} from '../poll.js';
import {lineChart} from '../chart.js';

const refreshMs = 15000;
const hourMs = 3600 * 1000;
// A key is near a limit once it has used this share of it.
const nearShare = 0.8;
// The chart draws this many keys (or models); the rest are summed as "other keys".
const chartKeys = 7;

const ranges = [
  {id: '24h', label: 'Last 24 hours', hours: 24},
  {id: '7d', label: 'Last 7 days', hours: 24 * 7},
  {id: '30d', label: 'Last 30 days', hours: 24 * 30},
];

const dims = {
  QUOTA_DIMENSION_REQUESTS_MINUTE: ['requests per minute', fmt.int],
  QUOTA_DIMENSION_REQUESTS_HOUR: ['requests per hour', fmt.int],
  QUOTA_DIMENSION_REQUESTS_DAY: ['requests per day', fmt.int],
  QUOTA_DIMENSION_TOKENS_MINUTE: ['tokens per minute', fmt.int],
  QUOTA_DIMENSION_TOKENS_DAY: ['tokens per day', fmt.int],
  QUOTA_DIMENSION_COST_DAY: ['USD per day', (v) => fmt.usd(Number(v) / 1e6)],
  QUOTA_DIMENSION_COST_MONTH: ['USD per month', (v) => fmt.usd(Number(v) / 1e6)],
};

const tokens = (r) => Number(r.promptTokens || 0) + Number(r.completionTokens || 0);

// chartOf draws metric per hour, one series per value of the row field by ("key"
// or "model").
function chartOf(hourly, by, from, to, metric) {
  const totals = new Map();
  for (const r of hourly) totals.set(r[by], (totals.get(r[by]) || 0) + metric.of(r));
  const top = [...totals.entries()].sort((a, b) => b[1] - a[1]).slice(0, chartKeys).map(([k]) => k);
  const series = new Map(top.map((k) => [k, new Map()]));
  let other = null;
  for (const r of hourly) {
    let s = series.get(r[by]);
    if (!s) {
      other = other || new Map();
      s = other;
    }
    const t = new Date(r.hour).getTime();
    s.set(t, (s.get(t) || 0) + metric.of(r));
  }
  const list = top.map((k) => ({name: k, points: [...series.get(k)].sort((a, b) => a[0] - b[0]).map(([t, v]) => ({t, v}))}));
  if (other) list.push({name: `other ${by}s`, points: [...other].sort((a, b) => a[0] - b[0]).map(([t, v]) => ({t, v}))});
  return lineChart(list, {from, to, title: `${metric.label} per ${by} and hour`, fmtY: metric.fmt,
    fmtX: (t) => to - from > 2 * 86400 * 1000 ? new Date(t).toLocaleDateString([], {month: 'short', day: 'numeric'}) : new Date(t).toLocaleTimeString([], {hour: '2-digit', minute: '2-digit'})});
}

function quotaRows(quotas) {
  const rows = [];
  for (const k of quotas.keys || []) {
    for (const l of k.limits || []) {
      const limit = Number(l.limit);
      if (!(limit > 0)) continue;
      const used = Number(l.used || 0);
      const share = used / limit;
      const [what, show] = dims[l.dimension] || [l.dimension, fmt.int];
      rows.push({share, key: k.key, cells: [
        h('th', {scope: 'row'}, k.key),
        what,
        h('td', {class: 'num'}, `${show(used)} of ${show(limit)}`),
        h('td', {}, h('meter', {min: 0, max: 1, low: 0.5, high: nearShare, optimum: 0, value: Math.min(share, 1).toFixed(3), 'aria-label': `${k.key}: ${fmt.pct(share)} of ${what}`}), ' ', fmt.pct(share)),
        h('td', {class: 'num'}, show(l.outstanding)),
        fmt.when(l.windowEnd),
      ]});
    }
  }
  rows.sort((a, b) => b.share - a.share);
  return rows;
}

export default function usage(el, {signal, params}) {
  const range = ranges.find((r) => r.id === params.get('range')) || ranges[0];
  const metricSel = h('select', {id: 'usage-metric'},
    h('option', {value: 'tokens'}, 'Tokens'), h('option', {value: 'cost'}, 'Cost (USD)'), h('option', {value: 'requests'}, 'Requests'));
  const bySel = h('select', {id: 'usage-by'}, h('option', {value: 'key'}, 'Per key'), h('option', {value: 'model'}, 'Per model'));
  const rangeSel = h('select', {id: 'usage-range'}, ranges.map((r) => h('option', {value: r.id, selected: r === range}, r.label)));
  rangeSel.addEventListener('change', () => {
    location.hash = `#/usage?range=${rangeSel.value}`;
  });
  const chart = h('div', {id: 'usage-chart'}, message('status', 'Loading…'));
  const near = h('div', {id: 'usage-near'});
  const top = h('div', {id: 'usage-top'});
  const byModel = h('div', {id: 'usage-by-model'});
  const updated = h('p', {class: 'updated'});
  replace(el,
    h('h1', {}, 'Usage'),
    h('form', {class: 'controls', onsubmit: (e) => e.preventDefault()}, field('Period', rangeSel), field('Chart', metricSel), field('Lines', bySel)),
    h('section', {}, h('h2', {}, 'Over time'), chart),
    h('section', {}, h('h2', {}, 'Keys near a limit or budget'), near),
    h('div', {class: 'cols'},
      h('section', {}, h('h2', {}, 'Top keys'), top),
      h('section', {}, h('h2', {}, 'Per key and model'), byModel)),
    updated);
  let last = null;
  const metrics = {
    tokens: {label: 'Tokens', of: tokens, fmt: (v) => fmt.int(Math.round(v))},
    cost: {label: 'Cost', of: (r) => Number(r.costUsd || 0), fmt: fmt.usd},
    requests: {label: 'Requests', of: (r) => Number(r.requests || 0), fmt: (v) => fmt.int(Math.round(v))},
  };
  const draw = () => {
    if (!last) return;
    const {from, to} = last;
    const rows = last[bySel.value];
    replace(chart, rows.length ? chartOf(rows, bySel.value, from, to, metrics[metricSel.value]) : message('status', 'No usage recorded in this period.'));
  };
  metricSel.addEventListener('change', draw);
  bySel.addEventListener('change', draw);
  every(refreshMs, async () => {
    const to = Date.now();
    const from = Math.floor((to - range.hours * hourMs) / hourMs) * hourMs;
    const span = {since: new Date(from).toISOString(), until: new Date(to).toISOString()};
    let hourly, modelHourly, keyModel, quotas;
    try {
      [hourly, modelHourly, keyModel, quotas] = await Promise.all([
        api.call('GetUsage', {...span, groupBy: ['key', 'hour']}, signal),
        api.call('GetUsage', {...span, groupBy: ['model', 'hour']}, signal),
        api.call('GetUsage', {...span, groupBy: ['key', 'model']}, signal),
        api.call('GetQuotas', {minUsedFraction: nearShare}, signal),
      ]);
    } catch (err) {
      if (err.name === 'AbortError') return;
      replace(updated, message('error', `Could not refresh: ${api.describe(err)}`));
      return;
    }
    last = {key: hourly.rows || [], model: modelHourly.rows || [], from, to};
    draw();

    // The keys with a limit at nearShare or more (the control plane filters), each
    // with all its limits, the nearest first.
    const qrows = quotaRows(quotas);
    const nearRows = qrows.filter((r) => r.share >= nearShare);
    replace(near,
      nearRows.length === 0 ? message('ok', `No key has used ${fmt.pct(nearShare)} or more of a fleet limit or budget.`) :
        message('warn', `${nearRows.length} limit${nearRows.length === 1 ? '' : 's'} at ${fmt.pct(nearShare)} or more of the window.`),
      qrows.length ? table(null, ['Key', 'Limit', 'Used', 'Share', 'Granted to edges, not yet used', 'Window ends'],
        qrows.map((r) => ({cells: r.cells, class: r.share >= nearShare ? 'row-warn' : '', attrs: {'data-key': r.key}})), {class: 'data', id: 'quota-table'}) : null);

    const perKey = new Map();
    for (const r of keyModel.rows || []) {
      const t = perKey.get(r.key) || {key: r.key, requests: 0, tokens: 0, cost: 0};
      t.requests += Number(r.requests || 0);
      t.tokens += tokens(r);
      t.cost += Number(r.costUsd || 0);
      perKey.set(r.key, t);
    }
    const topKeys = [...perKey.values()].sort((a, b) => b.tokens - a.tokens || b.cost - a.cost).slice(0, 10);
    replace(top, topKeys.length === 0 ? message('status', 'No usage recorded in this period.') :
      table(null, ['Key', 'Requests', 'Tokens', 'Cost'], topKeys.map((t) => ({attrs: {'data-key': t.key}, cells: [
        h('th', {scope: 'row'}, t.key), h('td', {class: 'num'}, fmt.int(t.requests)), h('td', {class: 'num'}, fmt.int(t.tokens)), h('td', {class: 'num'}, fmt.usd(t.cost))]})),
      {class: 'data', id: 'top-keys'}));
    const rows = (keyModel.rows || []).slice().sort((a, b) => a.key.localeCompare(b.key) || a.model.localeCompare(b.model));
    replace(byModel, rows.length === 0 ? message('status', 'No usage recorded in this period.') :
      table(null, ['Key', 'Model', 'Requests', 'Prompt tokens', 'Completion tokens', 'Cost', 'Estimated'], rows.map((r) => ({cells: [
        h('th', {scope: 'row'}, r.key), r.model, h('td', {class: 'num'}, fmt.int(r.requests)), h('td', {class: 'num'}, fmt.int(r.promptTokens)),
        h('td', {class: 'num'}, fmt.int(r.completionTokens)), h('td', {class: 'num'}, fmt.usd(r.costUsd)), h('td', {class: 'num'}, fmt.int(r.estimated))]})),
      {class: 'data', id: 'usage-table'}));
    replace(updated, `Updated ${new Date().toLocaleTimeString()}; refreshes every ${refreshMs / 1000} s. Usage reaches the ledger within seconds of each request.`);
  }, signal);
}
