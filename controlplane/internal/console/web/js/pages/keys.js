// Keys: the gateway's API keys (the config's users): create one (its clear key is
// shown once, with a copy button), disable or enable it, and change its expiry and
// fleet limits (through the same reviewed write as the Config page's forms).

import {h, replace, table, field, message} from '../dom.js';
import * as api from '../api.js';
import * as fmt from '../fmt.js';
import * as forms from '../forms.js';

function limitsText(u) {
  const rl = u.rateLimit || {};
  const b = u.budget || {};
  const parts = [];
  if (Number(rl.requestsPerMinute)) parts.push(`${fmt.int(rl.requestsPerMinute)} req/min`);
  if (Number(rl.requestsPerHour)) parts.push(`${fmt.int(rl.requestsPerHour)} req/h`);
  if (Number(rl.requestsPerDay)) parts.push(`${fmt.int(rl.requestsPerDay)} req/day`);
  if (Number(rl.tokensPerMinute)) parts.push(`${fmt.int(rl.tokensPerMinute)} tok/min`);
  if (Number(rl.tokensPerDay)) parts.push(`${fmt.int(rl.tokensPerDay)} tok/day`);
  if (Number(b.usdPerDay)) parts.push(`${fmt.usd(b.usdPerDay)}/day`);
  if (Number(b.usdPerMonth)) parts.push(`${fmt.usd(b.usdPerMonth)}/month`);
  return parts.join(', ') || 'none';
}

function expiry(u, now) {
  if (!u.expiresAt) return 'never';
  const t = new Date(u.expiresAt).getTime();
  return t <= now ? h('span', {class: 'tag bad'}, `expired ${fmt.when(u.expiresAt)}`) : fmt.when(u.expiresAt);
}

function createSection(models, signal, onCreated) {
  const id = h('input', {type: 'text', id: 'key-id', autocomplete: 'off', spellcheck: 'false', pattern: '[A-Za-z0-9_\\-]*'});
  const name = h('input', {type: 'text', id: 'key-name', autocomplete: 'off'});
  const tags = h('input', {type: 'text', id: 'key-tags', autocomplete: 'off'});
  const msg = h('input', {type: 'text', id: 'key-message'});
  const allowed = forms.modelChecks('Allowed models', models);
  const limits = forms.limitsFields({});
  const out = h('div', {id: 'create-result', 'aria-live': 'polite'});
  const submit = h('button', {type: 'submit', class: 'primary', id: 'create-key'}, 'Create the key');
  const form = h('form', {id: 'create-form'},
    h('div', {class: 'form-grid'},
      h('fieldset', {}, h('legend', {}, 'New key'),
        field('Id', id, 'The [users.<id>] key; generated when empty.'), field('Name', name), field('Tags', tags, 'Separated by commas.')),
      allowed.el, limits.el),
    field('Why (stored with the version)', msg), h('div', {class: 'buttons'}, submit), out);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    submit.disabled = true;
    replace(out, message('status', 'Creating…'));
    const l = limits.read();
    try {
      const r = await api.call('CreateKey', {
        userId: id.value.trim(), name: name.value.trim(), allowedModels: allowed.get(),
        tags: tags.value.split(',').map((t) => t.trim()).filter(Boolean),
        rateLimit: l.rateLimit, budget: l.budget, expiresAt: l.expiresAt, options: {message: msg.value.trim()},
      }, signal);
      const key = h('input', {type: 'text', id: 'new-key', readonly: true, value: r.key, class: 'secret', 'aria-label': 'The new key', spellcheck: 'false'});
      const copy = h('button', {type: 'button', id: 'copy-key'}, 'Copy');
      const copied = h('span', {class: 'hint', 'aria-live': 'polite'});
      copy.addEventListener('click', async () => {
        key.select();
        try {
          await navigator.clipboard.writeText(r.key);
          copied.textContent = 'Copied.';
        } catch {
          copied.textContent = 'Selected: press Ctrl+C (⌘C) to copy.';
        }
      });
      const done = h('button', {type: 'button', class: 'quiet', id: 'forget-key'}, 'I have copied it: hide it');
      done.addEventListener('click', () => replace(out, message('status', `Key "${r.userId}" created in version ${r.version}; its value is no longer shown.`)));
      replace(out, h('div', {class: 'card created'},
        message('ok', `Key "${r.userId}" created in version ${r.version}. Copy it now: it is shown only this once (the control plane keeps only its SHA-256).`),
        h('div', {class: 'keyline'}, key, copy, done, copied)));
      form.querySelectorAll('input:not(#new-key)').forEach((i) => {
        if (i.type === 'checkbox') i.checked = false;
        else i.value = '';
      });
      key.focus();
      key.select();
      onCreated();
    } catch (err) {
      replace(out, message('error', `Not created: ${api.describe(err)}`));
    } finally {
      submit.disabled = false;
    }
  });
  return h('section', {}, h('h2', {}, 'Create a key'), form);
}

export default function keys(el, {signal}) {
  const listBox = h('div', {id: 'keys'}, message('status', 'Loading…'));
  const editBox = h('div', {id: 'key-edit'});
  const createBox = h('div');
  const status = h('div', {id: 'key-status', 'aria-live': 'polite'});
  replace(el, h('h1', {}, 'Keys'), status, listBox, editBox, createBox);

  const edit = (u, models) => {
    const f = forms.userForm(structuredClone(u), false, models);
    const msg = h('input', {type: 'text', id: 'key-edit-message'});
    const out = h('div', {'aria-live': 'polite'});
    const review = h('button', {type: 'button', class: 'primary', id: 'key-review'}, 'Review changes');
    const close = h('button', {type: 'button', class: 'quiet'}, 'Close');
    close.addEventListener('click', () => replace(editBox));
    replace(editBox, h('section', {class: 'card'}, h('h2', {}, `Edit key ${u.id}`), f.el, field('Why (stored with the version)', msg),
      h('div', {class: 'buttons'}, review, close), out));
    forms.reviewFlow({reviewBtn: review, out, signal, messageInput: msg, newSecret: () => false,
      mutate: (c) => {
        const e = f.read();
        c.users = (c.users || []).map((x) => (x.id === e.id ? e : x));
      },
      write: (options) => api.call('PutUser', {user: f.read(), options}),
      onWritten: () => load()});
    editBox.querySelector('input:not([readonly])')?.focus();
  };

  const setEnabled = async (u, enabled) => {
    replace(status, message('status', `${enabled ? 'Enabling' : 'Disabling'} ${u.id}…`));
    try {
      const r = await api.call('SetKeyEnabled', {userId: u.id, enabled, options: {message: `${enabled ? 'enable' : 'disable'} key ${u.id}`}}, signal);
      const roll = h('div', {id: 'rollout-status'});
      replace(status, message('ok', `Key ${u.id} ${enabled ? 'enabled' : 'disabled'} in version ${r.version}.`), roll);
      load();
      forms.watchRollout(roll, r.version, signal);
    } catch (err) {
      if (err.name !== 'AbortError') replace(status, message('error', `${u.id}: ${api.describe(err)}`));
    }
  };

  let created = false;
  const load = async () => {
    let users, models;
    try {
      [users, models] = await Promise.all([api.call('ListUsers', {}, signal), api.call('ListModels', {}, signal)]);
    } catch (err) {
      if (err.name !== 'AbortError') replace(listBox, message('error', api.describe(err)));
      return;
    }
    const now = Date.now();
    const ms = models.models || [];
    const list = (users.users || []).slice().sort((a, b) => a.id.localeCompare(b.id));
    replace(listBox, list.length === 0 ? message('status', 'No keys yet.') :
      table(`${list.length} key${list.length === 1 ? '' : 's'} (config version ${users.version})`, ['Key', 'Name', 'State', 'Models', 'Expires', 'Limits and budget', ''],
        list.map((u) => ({attrs: {'data-key': u.id}, class: u.enabled ? '' : 'gone', cells: [
          h('th', {scope: 'row'}, u.id), u.name || '',
          h('td', {}, h('span', {class: ['tag', u.enabled ? 'ok' : '']}, u.enabled ? 'enabled' : 'disabled')),
          (u.allowedModels || []).length ? u.allowedModels.join(', ') : 'all',
          h('td', {}, expiry(u, now)), limitsText(u),
          h('td', {class: 'actions'},
            h('button', {type: 'button', class: 'quiet', 'data-action': u.enabled ? 'disable' : 'enable', onclick: () => setEnabled(u, !u.enabled)}, u.enabled ? `Disable ${u.id}` : `Enable ${u.id}`),
            h('button', {type: 'button', class: 'quiet', 'data-action': 'edit', onclick: () => edit(u, ms)}, `Edit ${u.id}`)),
        ]})), {class: 'data', id: 'key-table'}));
    if (!created) {
      created = true;
      replace(createBox, createSection(ms, signal, load));
    }
  };
  load();
}
