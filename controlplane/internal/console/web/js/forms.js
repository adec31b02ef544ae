// Forms for the config's entries (providers, models, users, settings), and the one
// way every form change is written: a dry run on the control plane (ValidateConfig,
// the same validation as berryctl's and as the write itself) whose errors or diff are
// shown, then the write, based on the version reviewed, then its roll-out.

import {h, replace, table, field, message} from './dom.js';
import * as api from './api.js';
import * as fmt from './fmt.js';

// ---- controls ----

function text(label, value, attrs = {}, hint) {
  const el = h('input', {type: 'text', value: value ?? '', autocomplete: 'off', spellcheck: 'false', ...attrs});
  return {el: field(label, el, hint), get: () => el.value.trim(), input: el};
}

function number(label, value, hint, attrs = {}) {
  const el = h('input', {type: 'number', min: 0, step: 'any', inputmode: 'decimal', value: value === undefined || value === null ? '' : String(Number(value)), ...attrs});
  return {el: field(label, el, hint), get: () => (el.value.trim() === '' ? 0 : Number(el.value)), input: el};
}

function check(label, value, hint) {
  const el = h('input', {type: 'checkbox', checked: !!value});
  return {el: field(label, el, hint), get: () => el.checked, input: el};
}

function choice(label, options, value, hint) {
  const opts = options.slice();
  if (value && !opts.some(([v]) => v === value)) opts.push([value, value]);
  const el = h('select', {}, opts.map(([v, t]) => h('option', {value: v, selected: v === (value || '')}, t)));
  return {el: field(label, el, hint), get: () => el.value, input: el};
}

function list(label, values, hint) {
  return text(label, (values || []).join(', '), {}, hint || 'Separated by commas.');
}

const splitList = (s) => s.split(',').map((v) => v.trim()).filter(Boolean);

// lines reads "name = value" lines into a map.
function lines(label, map, sep, hint) {
  const el = h('textarea', {rows: 3, spellcheck: 'false'});
  el.value = Object.entries(map || {}).map(([k, v]) => `${k}${sep}${v}`).join('\n');
  return {el: field(label, el, hint), input: el, get: () => {
    const out = {};
    for (const line of el.value.split('\n')) {
      const i = line.indexOf(sep.trim());
      if (line.trim() === '') continue;
      if (i < 0) {
        out[line.trim()] = '';
        continue;
      }
      out[line.slice(0, i).trim()] = line.slice(i + sep.trim().length).trim();
    }
    return out;
  }};
}

// datetime edits a protojson Timestamp in the browser's time zone; empty is none.
function datetime(label, ts, hint) {
  const pad = (n) => String(n).padStart(2, '0');
  let v = '';
  if (ts) {
    const d = new Date(ts);
    v = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }
  const el = h('input', {type: 'datetime-local', value: v});
  return {el: field(label, el, hint), input: el, get: () => (el.value ? new Date(el.value).toISOString() : null)};
}

function group(legend, ...items) {
  return h('fieldset', {}, h('legend', {}, legend), items.map((i) => i.el || i));
}

// ---- entries ----

export const backendTypes = [['openai', 'OpenAI-compatible'], ['azure', 'Azure OpenAI'], ['anthropic', 'Anthropic'], ['gemini', 'Gemini']];
export const strategies = ['weighted_random', 'round_robin', 'least_latency', 'failover', 'random'].map((s) => [s, s]);

export function providerForm(p, isNew) {
  p = p || {enabled: true, backendType: 'openai', models: [], headers: {}};
  const f = {
    id: text('Id', p.id, {required: true, readonly: !isNew}, isNew ? 'The [providers.<id>] key; cannot change later.' : null),
    name: text('Name', p.name),
    backendType: choice('Kind', backendTypes, p.backendType || 'openai'),
    baseUrl: text('Base URL', p.baseUrl, {type: 'url', required: true}),
    apiKey: {...text('API key', '', {id: 'provider-api-key', type: 'password', placeholder: p.apiKeySet ? 'set: leave empty to keep it' : 'none'}, p.apiKeySet ? 'A key is set; type a new one only to replace it.' : null)},
    models: list('Upstream models', p.models),
    enabled: check('Enabled', p.enabled),
    timeoutSeconds: number('Timeout (s)', p.timeoutSeconds, '0: the settings\' request timeout.'),
    maxRetries: number('Max retries', p.maxRetries),
    apiVersion: text('Azure api-version', p.apiVersion),
    responsesApi: choice('Responses API', [['', 'kind\'s default'], ['native', 'native'], ['chat', 'translated to chat']], p.responsesApi),
    streamUsage: choice('Stream usage', [['', 'ask (default)'], ['ask', 'ask'], ['off', 'off']], p.streamUsage),
    headers: lines('Extra headers', p.headers, ': ', 'One "Name: value" per line; REDACTED keeps a stored secret.'),
  };
  const el = h('div', {class: 'form-grid'},
    group('Provider', f.id, f.name, f.backendType, f.baseUrl, f.apiKey, f.enabled),
    group('Models and limits', f.models, f.timeoutSeconds, f.maxRetries),
    group('Protocol', f.apiVersion, f.responsesApi, f.streamUsage, f.headers));
  return {el, newSecret: () => f.apiKey.get() !== '', read: () => ({
    ...p, id: f.id.get(), name: f.name.get(), backendType: f.backendType.get(), baseUrl: f.baseUrl.get(),
    apiKey: f.apiKey.get(), apiKeySet: false, models: splitList(f.models.get()), enabled: f.enabled.get(),
    timeoutSeconds: f.timeoutSeconds.get(), maxRetries: f.maxRetries.get(), apiVersion: f.apiVersion.get(),
    responsesApi: f.responsesApi.get(), streamUsage: f.streamUsage.get(), headers: f.headers.get(),
  })};
}

function backendRow(b, providers, onRemove, n) {
  const f = {
    provider: choice('Provider', providers.map((p) => [p.id, p.id]), b.provider),
    model: text('Upstream model', b.model, {required: true}),
    weight: number('Weight', b.weight ?? 1),
    priority: number('Priority', b.priority ?? 0, null, {min: undefined}),
    enabled: check('Enabled', b.enabled ?? true),
    billingMode: choice('Billing', [['', 'per token (default)'], ['per_token', 'per token'], ['per_request', 'per request']], b.billingMode),
    input: number('Input $/Mtok', b.price?.inputPerMtok),
    output: number('Output $/Mtok', b.price?.outputPerMtok),
    cached: number('Cached input $/Mtok', b.price?.cachedInputPerMtok),
  };
  const remove = h('button', {type: 'button', class: 'quiet danger'}, `Remove backend ${n + 1}`);
  const el = h('fieldset', {class: 'backend'}, h('legend', {}, `Backend ${n + 1}`),
    Object.values(f).map((x) => x.el), remove);
  remove.addEventListener('click', () => onRemove(el));
  return {el, read: () => {
    const price = f.input.get() || f.output.get() || f.cached.get() ? {inputPerMtok: f.input.get(), outputPerMtok: f.output.get(), cachedInputPerMtok: f.cached.get()} : null;
    return {...b, provider: f.provider.get(), model: f.model.get(), weight: f.weight.get(), priority: f.priority.get(),
      enabled: f.enabled.get(), billingMode: f.billingMode.get(), price};
  }};
}

export function modelForm(m, isNew, providers) {
  m = m || {enabled: true, strategy: 'weighted_random', backends: [], aliases: [], fallbacks: {}};
  const f = {
    id: text('Id', m.id, {required: true, readonly: !isNew}, isNew ? 'The [models.<id>] key; cannot change later.' : null),
    name: text('Name clients send', m.name, {required: true}),
    strategy: choice('Strategy', strategies, m.strategy || 'weighted_random'),
    enabled: check('Enabled', m.enabled),
    aliases: list('Aliases', m.aliases),
    wildcard: text('Wildcard', m.wildcard, {}, '"<provider id>/<prefix>*", or empty.'),
    affinity: text('Affinity', m.affinity, {}, 'Empty, "user" or "header:<name>".'),
    fallbacks: lines('Fallbacks', m.fallbacks, ' = ', 'One "class = model id" per line: context_window, content_filter or any.'),
  };
  const rows = [];
  const box = h('div', {class: 'backends'});
  const renumber = () => rows.forEach((r, i) => {
    r.el.querySelector('legend').textContent = `Backend ${i + 1}`;
  });
  const add = (b) => {
    const r = backendRow(b, providers, (el) => {
      rows.splice(rows.findIndex((x) => x.el === el), 1);
      el.remove();
      renumber();
    }, rows.length);
    rows.push(r);
    box.appendChild(r.el);
  };
  (m.backends || []).forEach(add);
  const addBtn = h('button', {type: 'button', class: 'quiet'}, 'Add a backend');
  addBtn.addEventListener('click', () => {
    add({provider: providers[0]?.id || '', weight: 1, enabled: true});
    rows[rows.length - 1].el.querySelector('select, input').focus();
  });
  const el = h('div', {class: 'form-grid'},
    group('Model', f.id, f.name, f.strategy, f.enabled),
    group('Names and routing', f.aliases, f.wildcard, f.affinity, f.fallbacks),
    h('fieldset', {class: 'wide'}, h('legend', {}, 'Backends'), box, addBtn));
  return {el, newSecret: () => false, read: () => ({
    ...m, id: f.id.get(), name: f.name.get(), strategy: f.strategy.get(), enabled: f.enabled.get(),
    aliases: splitList(f.aliases.get()), wildcard: f.wildcard.get(), affinity: f.affinity.get(),
    fallbacks: f.fallbacks.get(), backends: rows.map((r) => r.read()),
  })};
}

// limitsFields are a key's expiry, rate limits and budget: the Keys page's create
// form and the user form share them.
export function limitsFields(u) {
  const rl = u.rateLimit || {};
  const b = u.budget || {};
  const f = {
    expiresAt: datetime('Expires', u.expiresAt, 'Empty: never.'),
    rpm: number('Requests per minute', rl.requestsPerMinute, '0: unlimited.'),
    rph: number('Requests per hour', rl.requestsPerHour),
    rpd: number('Requests per day', rl.requestsPerDay),
    tpm: number('Tokens per minute', rl.tokensPerMinute),
    tpd: number('Tokens per day', rl.tokensPerDay),
    usdDay: number('Budget, USD per day', b.usdPerDay),
    usdMonth: number('Budget, USD per month', b.usdPerMonth),
  };
  return {
    el: [group('Expiry', f.expiresAt), group('Fleet rate limits', f.rpm, f.rph, f.rpd, f.tpm, f.tpd), group('Budget', f.usdDay, f.usdMonth)],
    read: () => {
      const rateLimit = {requestsPerMinute: f.rpm.get(), requestsPerHour: f.rph.get(), requestsPerDay: f.rpd.get(), tokensPerMinute: f.tpm.get(), tokensPerDay: f.tpd.get()};
      const budget = {usdPerDay: f.usdDay.get(), usdPerMonth: f.usdMonth.get()};
      return {
        expiresAt: f.expiresAt.get(),
        rateLimit: Object.values(rateLimit).some(Boolean) ? rateLimit : null,
        budget: Object.values(budget).some(Boolean) ? budget : null,
      };
    },
  };
}

export function modelChecks(label, models, selected) {
  const boxes = models.map((m) => h('input', {type: 'checkbox', value: m.id, checked: (selected || []).includes(m.id)}));
  const el = h('fieldset', {}, h('legend', {}, label), h('p', {class: 'hint'}, 'None ticked: every model.'),
    models.length ? boxes.map((b, i) => field(models[i].name === models[i].id ? models[i].id : `${models[i].name} (${models[i].id})`, b)) : message('status', 'No models configured.'));
  return {el, get: () => boxes.filter((b) => b.checked).map((b) => b.value)};
}

export function userForm(u, isNew, models) {
  u = u || {enabled: true};
  const f = {
    id: text('Id', u.id, {required: true, readonly: !isNew}),
    name: text('Name', u.name),
    enabled: check('Enabled', u.enabled),
    tags: list('Tags', u.tags),
  };
  const allowed = modelChecks('Allowed models', models, u.allowedModels);
  const limits = limitsFields(u);
  const el = h('div', {class: 'form-grid'}, group('Key', f.id, f.name, f.enabled, f.tags), allowed.el, limits.el);
  return {el, newSecret: () => false, read: () => ({
    ...u, id: f.id.get(), name: f.name.get(), enabled: f.enabled.get(), tags: splitList(f.tags.get()),
    allowedModels: allowed.get(), token: '', tokenSha256: '', ...limits.read(),
  })};
}

export function settingsForm(st) {
  st = st || {};
  const keys = [
    ['requestTimeoutSeconds', 'Request timeout (s)'],
    ['maxRetries', 'Max retries'],
    ['healthCheckIntervalSeconds', 'Health check interval (s)'],
    ['circuitBreakerFailureThreshold', 'Breaker failure threshold'],
    ['circuitBreakerTimeoutSeconds', 'Breaker timeout (s)'],
    ['recoveryCheckIntervalSeconds', 'Recovery check interval (s)'],
    ['maxRequestBodyBytes', 'Max request body (bytes)'],
    ['usageRetentionDays', 'Usage retention (days)'],
  ];
  const f = Object.fromEntries(keys.map(([k, label]) => [k, number(label, st[k], '0: the default.')]));
  const quota = choice('Fleet limits when disconnected', [['', 'share (default)'], ['share', 'share'], ['open', 'open'], ['closed', 'closed']], st.quotaWhenDisconnected);
  const el = h('div', {class: 'form-grid'}, group('Settings', Object.values(f), quota));
  return {el, newSecret: () => false, read: () => ({...st, ...Object.fromEntries(keys.map(([k]) => [k, f[k].get()])), quotaWhenDisconnected: quota.get()})};
}

// ---- dry run, write and roll-out ----

// Stand-ins for the token hashes a redacted read leaves out: the dry run needs a
// complete config, and ValidateConfig has no "keep the stored secret" rule of its own.
// Each user gets its own, as no two keys may share a token.
function placeholderHash(i) {
  const b = new Array(32).fill(0xb5);
  b[0] = i & 0xff;
  b[1] = (i >> 8) & 0xff;
  b[2] = (i >> 16) & 0xff;
  return btoa(String.fromCharCode(...b));
}

const secretPath = /\.(api_key|token|token_sha256)$/;

// secretNoise says whether a change only reflects what the redacted read left out
// (not something the form changed).
function secretNoise(c, newSecret) {
  if (c.kind === 'changed' && c.before === c.after) return true;
  return secretPath.test(c.path) && !(newSecret && c.path.endsWith('.api_key'));
}

// dryRun validates the current config with mutate applied, as the write would.
export async function dryRun(mutate, newSecret) {
  const cur = await api.call('GetConfig');
  const cfg = structuredClone(cur.config || {});
  mutate(cfg);
  (cfg.users || []).forEach((u, i) => {
    if (!u.token && !u.tokenSha256) u.tokenSha256 = placeholderHash(i);
  });
  const r = await api.call('ValidateConfig', {config: cfg, expectedVersion: cur.version});
  return {
    version: r.currentVersion,
    valid: r.valid,
    errors: r.errors || [],
    warnings: r.warnings || [],
    changes: (r.changes || []).filter((c) => !secretNoise(c, newSecret)),
  };
}

export function changesTable(changes, captionText, id) {
  return table(captionText, ['Path', 'Change', 'Before', 'After'], changes.map((c) => ({class: `chg-${c.kind}`, attrs: {'data-path': c.path}, cells: [
    h('th', {scope: 'row'}, h('code', {}, c.path)), c.kind, h('td', {class: 'before'}, h('code', {}, c.before)), h('td', {class: 'after'}, h('code', {}, c.after))]})),
  {class: 'data diff', id});
}

export function errorList(errors) {
  return h('ul', {class: 'errors', id: 'validation-errors'}, errors.map((e) => h('li', {}, e.path ? h('code', {}, e.path) : null, e.path ? ': ' : '', e.message)));
}

// watchRollout shows, in el, how far version has reached the connected edges, until
// every one has applied it (or signal aborts).
export async function watchRollout(el, version, signal) {
  for (let i = 0; !signal.aborted; i++) {
    let st;
    try {
      st = await api.call('FleetStatus', {}, signal);
    } catch (err) {
      if (err.name === 'AbortError') return;
      replace(el, message('error', `Version ${version} written; could not read the fleet: ${api.describe(err)}`));
      return;
    }
    const live = (st.edges || []).filter((e) => e.connected);
    const applied = live.filter((e) => BigInt(e.appliedVersion || 0) >= BigInt(version)).length;
    const nacks = live.filter((e) => e.lastNack && e.lastAckVersion === String(version));
    if (BigInt(st.currentVersion || 0) > BigInt(version)) {
      replace(el, message('status', `Version ${version} written; version ${st.currentVersion} has been written since.`));
      return;
    }
    if (live.length && applied === live.length) {
      replace(el, message('ok', `Version ${version} is rolled out: ${fmt.edgesApplied(live.length)}.`));
      return;
    }
    if (nacks.length) {
      replace(el, message('error', `Version ${version} written, but refused by ${nacks.map((e) => `${e.edgeId} (${e.lastNack})`).join(', ')}; they keep serving their previous version.`));
      return;
    }
    replace(el, message('warn', live.length ? `Version ${version} written; rolling out: ${applied} of ${live.length} connected edges have applied it…` :
      `Version ${version} written; no edge is connected.`));
    if (!live.length) return;
    await new Promise((r) => setTimeout(r, i < 20 ? 500 : 2000));
  }
}

// reviewFlow wires a form's review and apply buttons: review runs the dry run of
// mutate and shows its errors or changes; apply sends write(options) with the
// reviewed version as expected_version, then follows the roll-out.
export function reviewFlow({reviewBtn, out, mutate, write, newSecret, signal, messageInput, onWritten, applyLabel = 'Apply'}) {
  reviewBtn.addEventListener('click', async () => {
    reviewBtn.disabled = true;
    replace(out, message('status', 'Checking on the control plane (dry run, nothing is written)…'));
    let r;
    try {
      r = await dryRun(mutate, newSecret && newSecret());
    } catch (err) {
      replace(out, message('error', api.describe(err)));
      reviewBtn.disabled = false;
      return;
    }
    reviewBtn.disabled = false;
    if (!r.valid) {
      replace(out, h('div', {class: 'review', id: 'review'}, message('error', `Not valid; nothing written. ${r.errors.length} problem${r.errors.length === 1 ? '' : 's'}:`), errorList(r.errors)));
      return;
    }
    if (r.changes.length === 0) {
      replace(out, h('div', {class: 'review', id: 'review'}, message('status', `No change against version ${r.version}.`)));
      return;
    }
    const apply = h('button', {type: 'button', id: 'apply', class: 'primary'}, `${applyLabel} (version ${BigInt(r.version) + 1n})`);
    const cancel = h('button', {type: 'button', class: 'quiet'}, 'Cancel');
    const result = h('div', {id: 'apply-result', 'aria-live': 'polite'});
    replace(out, h('div', {class: 'review', id: 'review'},
      message('status', `Valid. ${r.changes.length} change${r.changes.length === 1 ? '' : 's'} against version ${r.version}:`),
      r.warnings.length ? message('warn', `Ignored: ${r.warnings.join(', ')}`) : null,
      changesTable(r.changes, null, 'review-changes'),
      h('div', {class: 'buttons'}, apply, cancel), result));
    cancel.addEventListener('click', () => replace(out));
    apply.focus();
    apply.addEventListener('click', async () => {
      apply.disabled = true;
      cancel.disabled = true;
      let resp;
      try {
        resp = await write({message: messageInput ? messageInput.value.trim() : '', expectedVersion: r.version});
      } catch (err) {
        const why = err.code === 'failed_precondition' ? `${err.message}. The config changed since this review: review again.` : api.describe(err);
        replace(result, message('error', `Not written: ${why}`));
        return;
      }
      if (onWritten) onWritten(resp.version);
      await watchRollout(result, resp.version, signal);
    });
  });
}
