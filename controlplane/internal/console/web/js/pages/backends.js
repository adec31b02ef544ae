// Backends: per model and backend, the fleet's merged latency and TTFT, a sparkline
// of the last hour, the error rate, the fleet's down mark and who probes it. Slow,
// down and failing-probe backends stand out (rules in docs/console.md, "Backends").

import {h, replace, table, message} from '../dom.js';
import * as api from '../api.js';
import * as fmt from '../fmt.js';
import {every} from '../poll.js';
import {sparkline} from '../chart.js';

const refreshMs = 3000;
const hourMs = 3600 * 1000;
const minSpanMs = 60 * 1000;

// A backend is slow when it takes at least slowFactor times, and slowMargin seconds
// more than, the fastest backend of a model it serves; or than its own median of the
// last hour.
const slowFactor = 2;
const slowMargin = 0.2;
// A backend is failing when this share of its recent attempts that speak to its
// health failed, whether or not there were enough of them for the fleet to mark it
// down (which it does at 50%).
const failingRate = 0.25;

// The control plane keeps an hour of fleet scores, sampled every 30 s or so
// (GetScoreHistory); the page adds the scores it read while open, so a sparkline is
// finer where it can be and ends at the current value. seen holds those, per backend.
const seen = new Map();

function keyOf(provider, model) {
  return `${provider}/${model}`;
}

function remember(scores, now) {
  for (const b of scores) {
    const k = keyOf(b.provider, b.upstreamModel);
    const list = seen.get(k) || [];
    if (Number(b.latencySeconds) > 0) list.push({t: now, v: Number(b.latencySeconds)});
    while (list.length && list[0].t < now - hourMs) list.shift();
    seen.set(k, list);
  }
}

// histories merges the control plane's samples with the page's own, in time order.
function histories(history, now) {
  const out = new Map();
  for (const b of history.backends || []) {
    const pts = (b.samples || []).filter((p) => Number(p.latencySeconds) > 0)
      .map((p) => ({t: new Date(p.time).getTime(), v: Number(p.latencySeconds)}))
      .filter((p) => p.t >= now - hourMs);
    out.set(keyOf(b.provider, b.upstreamModel), pts);
  }
  for (const [k, pts] of seen) {
    out.set(k, (out.get(k) || []).concat(pts).sort((a, b) => a.t - b.t));
  }
  return out;
}

function median(values) {
  if (values.length === 0) return 0;
  const v = values.slice().sort((a, b) => a - b);
  return v[Math.floor(v.length / 2)];
}

function isSlow(lat, fastest, usual) {
  const over = (base) => base > 0 && lat >= base * slowFactor && lat - base >= slowMargin;
  return lat > 0 && (over(fastest) || over(usual));
}

// states decides, per backend, the state the page shows: down, failing, slow, probe
// failing, ok or no data (the first that applies).
function states(models, byKey, history) {
  const slow = new Set();
  for (const m of models) {
    const lats = (m.backends || []).map((b) => Number(byKey.get(keyOf(b.provider, b.model))?.latencySeconds || 0)).filter((v) => v > 0);
    const fastest = lats.length > 1 ? Math.min(...lats) : 0;
    for (const b of m.backends || []) {
      const k = keyOf(b.provider, b.model);
      const lat = Number(byKey.get(k)?.latencySeconds || 0);
      const usual = median((history.get(k) || []).slice(0, -1).map((p) => p.v));
      if (isSlow(lat, fastest, usual)) slow.add(k);
    }
  }
  const out = new Map();
  for (const [k, sc] of byKey) {
    if (sc.down) out.set(k, 'down');
    else if (Number(sc.errorRate) >= failingRate) out.set(k, 'failing');
    else if (slow.has(k)) out.set(k, 'slow');
    else if (sc.probed && !sc.probeHealthy) out.set(k, 'probe failing');
    else if (!(Number(sc.latencySeconds) > 0) && !(Number(sc.requests) > 0)) out.set(k, 'no data');
    else out.set(k, 'ok');
  }
  return out;
}

const stateClass = {'down': 'bad', 'failing': 'bad', 'slow': 'warn', 'probe failing': 'warn', 'ok': 'ok', 'no data': ''};

function backendRow(model, b, sc, state, history, from, now) {
  const k = keyOf(b.provider, b.model);
  const lat = Number(sc?.latencySeconds || 0);
  const probe = !sc || !sc.probeOwner ? '—' :
    `${sc.probeOwner}: ${sc.probed ? (sc.probeHealthy ? 'healthy' : 'failing') : 'not probed yet'}`;
  return {
    attrs: {'data-backend': k, 'data-state': state || 'no data'},
    class: [stateClass[state] ? `row-${stateClass[state]}` : '', b.enabled === false ? 'gone' : ''],
    cells: [
      h('th', {scope: 'row'}, k, b.enabled === false ? h('span', {class: 'tag'}, 'disabled') : null),
      h('td', {class: 'state'}, h('span', {class: ['tag', stateClass[state]]}, state || 'no data')),
      h('td', {class: 'num latency'}, fmt.secs(lat)),
      h('td', {class: 'num'}, fmt.secs(sc?.ttftSeconds)),
      h('td', {}, sparkline(history.get(k) || [], {from, to: now,
        label: `${k} latency since ${new Date(from).toLocaleTimeString()}${lat ? `, now ${fmt.secs(lat)}` : ''}`})),
      h('td', {class: 'num'}, sc ? fmt.pct(sc.errorRate) : '—'),
      h('td', {class: 'num'}, sc ? Number(sc.requests).toFixed(1) : '—'),
      h('td', {class: 'num'}, sc ? String(sc.edges) : '—'),
      probe,
    ],
  };
}

export default function backends(el, {signal}) {
  const body = h('div', {id: 'backends'}, message('status', 'Loading…'));
  const updated = h('p', {class: 'updated'});
  replace(el,
    h('h1', {}, 'Backends'),
    h('p', {class: 'lead'}, 'The fleet\'s view of each backend, merged from every edge\'s measurements. ' +
      'Down: the fleet takes it out of rotation. Failing: a quarter or more of its recent attempts failed. ' +
      'Slow: twice as slow as the fastest backend of its model, or as its own last hour.'),
    body, updated);
  every(refreshMs, async () => {
    let models, scores, history;
    const since = new Date(Date.now() - hourMs).toISOString();
    try {
      [models, scores, history] = await Promise.all([api.call('ListModels', {}, signal), api.call('GetScores', {}, signal),
        api.call('GetScoreHistory', {since}, signal).catch((err) => {
          // A control plane older than the history: the page's own samples only.
          if (err.code === 'unimplemented') return {};
          throw err;
        })]);
    } catch (err) {
      if (err.name === 'AbortError') return;
      replace(updated, message('error', `Could not refresh: ${api.describe(err)}`));
      return;
    }
    const now = Date.now();
    const list = scores.backends || [];
    remember(list, now);
    const hist = histories(history, now);
    const byKey = new Map(list.map((b) => [keyOf(b.provider, b.upstreamModel), b]));
    // Every sparkline spans the same time: the last hour, or less when there is less
    // history (a control plane that just started), but at least a minute.
    const earliest = Math.min(now - minSpanMs, ...[...hist.values()].filter((p) => p.length).map((p) => p[0].t));
    const from = Math.max(now - hourMs, earliest);
    const st = states(models.models || [], byKey, hist);
    const heads = ['Backend', 'Fleet state', 'Latency', 'TTFT', `Latency since ${new Date(from).toLocaleTimeString([], {hour: '2-digit', minute: '2-digit'})}`, 'Error rate', 'Recent requests', 'Edges measuring', 'Probe owner'];
    const tables = (models.models || []).map((m) => {
      const rows = (m.backends || []).map((b) => backendRow(m, b, byKey.get(keyOf(b.provider, b.model)), st.get(keyOf(b.provider, b.model)), hist, from, now));
      const cap = h('span', {}, `Model ${m.name}`, m.name !== m.id ? ` (${m.id})` : '', ` · ${m.strategy || 'weighted_random'}`,
        m.enabled === false ? ' · disabled' : '', rows.length === 0 ? ' · wildcard, backends named by clients' : '');
      return h('section', {class: 'model', 'data-model': m.id}, table(cap, heads, rows, {class: 'data'}));
    });
    const worst = [...st.entries()].filter(([, s]) => s !== 'ok' && s !== 'no data');
    replace(body,
      worst.length ? message(worst.some(([, s]) => stateClass[s] === 'bad') ? 'error' : 'warn', `Needs a look: ${worst.map(([k, s]) => `${k} (${s})`).join(', ')}.`) :
        message('ok', 'No backend is down, failing, slow or failing its probe.'),
      tables.length ? tables : message('status', 'No models are configured.'));
    replace(updated, `Updated ${new Date().toLocaleTimeString()} (score epoch ${scores.epoch || 0}); refreshes every ${refreshMs / 1000} s.`);
  }, signal);
}
