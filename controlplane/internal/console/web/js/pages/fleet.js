// Fleet: every edge the control plane knows, the version each has applied, and
// whether the current version has reached them all. Refreshed every 2 seconds.

import {h, replace, table, message} from '../dom.js';
import * as api from '../api.js';
import * as fmt from '../fmt.js';
import {every} from '../poll.js';

const refreshMs = 2000;

function rollout(st) {
  const current = st.currentVersion || '0';
  const live = (st.edges || []).filter((e) => e.connected);
  const applied = live.filter((e) => e.appliedVersion === current).length;
  if (live.length === 0) {
    return message('warn', `Current version ${current}. No edge is connected.`);
  }
  if (st.rolledOut) {
    return message('ok', `Version ${current} is rolled out: ${fmt.edgesApplied(live.length)}.`);
  }
  const nacked = live.filter((e) => e.lastNack).length;
  return message(nacked ? 'error' : 'warn', `Rolling out version ${current}: ${applied} of ${live.length} connected edges have applied it` +
    (nacked ? `, ${nacked} refused it (see the reasons below).` : '.'));
}

function row(e, current) {
  const behind = e.connected && e.appliedVersion !== current;
  return {
    attrs: {'data-edge': e.edgeId},
    class: [e.connected ? '' : 'gone', e.lastNack ? 'bad' : '', behind ? 'behind' : ''],
    cells: [
      h('th', {scope: 'row'}, e.edgeId),
      e.address || '—',
      e.buildVersion || '—',
      h('td', {class: 'num version'}, e.appliedVersion || '0', behind ? h('span', {class: 'tag warn'}, 'behind') : null),
      h('td', {}, e.connected ? h('span', {class: 'tag ok'}, 'connected') : h('span', {class: 'tag'}, 'disconnected')),
      fmt.when(e.connectedSince),
      h('td', {title: fmt.when(e.lastSeen)}, fmt.ago(e.lastSeen)),
      h('td', {class: 'num'}, e.lastAckVersion || '—'),
      h('td', {class: 'nack'}, e.lastNack || ''),
    ],
  };
}

export default function fleet(el, {signal}) {
  const status = h('div', {id: 'rollout', 'aria-live': 'polite'});
  const edges = h('div', {id: 'edges'}, message('status', 'Loading…'));
  const updated = h('p', {class: 'updated'});
  replace(el,
    h('h1', {}, 'Fleet'),
    status, edges, updated);
  every(refreshMs, async () => {
    let st;
    try {
      st = await api.call('FleetStatus', {}, signal);
    } catch (err) {
      if (err.name === 'AbortError') return;
      replace(updated, message('error', `Could not refresh: ${api.describe(err)}`));
      return;
    }
    const current = st.currentVersion || '0';
    replace(status, rollout(st));
    const list = (st.edges || []).slice().sort((a, b) => (b.connected - a.connected) || a.edgeId.localeCompare(b.edgeId));
    replace(edges, list.length === 0 ? message('status', 'No edge has connected to this control plane yet.') :
      table(`${list.length} edge${list.length === 1 ? '' : 's'}`,
        ['Edge', 'Serves at', 'Build', 'Applied version', 'Stream', 'Connected since', 'Last report', 'Last ACK/NACK', 'NACK reason'],
        list.map((e) => row(e, current)), {id: 'edge-table', class: 'data'}));
    replace(updated, `Updated ${new Date().toLocaleTimeString()}; refreshes every ${refreshMs / 1000} s.`);
  }, signal);
}
