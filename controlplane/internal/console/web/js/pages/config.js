// Config: the current config (redacted), the version history, a side-by-side diff of
// any two versions, rollback with confirmation, and forms for providers, models,
// users and settings whose changes are reviewed as a dry run before they are written.

import {h, replace, table, field, message} from '../dom.js';
import * as api from '../api.js';
import * as fmt from '../fmt.js';
import * as forms from '../forms.js';
import {sideBySide} from '../linediff.js';

const kinds = {
  provider: {label: 'Provider', list: 'providers', put: 'PutProvider', del: 'DeleteProvider', form: (e, isNew, ctx) => forms.providerForm(e, isNew)},
  model: {label: 'Model', list: 'models', put: 'PutModel', del: 'DeleteModel', form: (e, isNew, ctx) => forms.modelForm(e, isNew, ctx.providers)},
  user: {label: 'User (key)', list: 'users', put: 'PutUser', del: 'DeleteUser', form: (e, isNew, ctx) => forms.userForm(e, isNew, ctx.models)},
  settings: {label: 'Settings'},
};

function versionsSection(signal, onChanged) {
  const box = h('div', {id: 'versions'}, message('status', 'Loading…'));
  const diffOut = h('div', {id: 'diff', 'aria-live': 'polite'});
  const dialog = h('dialog', {id: 'rollback-dialog', 'aria-labelledby': 'rollback-title'});
  let current = '0';

  const showDiff = async (from, to) => {
    replace(diffOut, message('status', `Comparing version ${from} with version ${to}…`));
    try {
      const [d, a, b] = await Promise.all([
        api.call('DiffVersions', {from, to}, signal),
        api.call('ExportConfig', {version: from}, signal),
        api.call('ExportConfig', {version: to}, signal),
      ]);
      const changes = d.changes || [];
      replace(diffOut,
        h('h3', {}, `Version ${from} → version ${to}`),
        changes.length ? forms.changesTable(changes, `${changes.length} field change${changes.length === 1 ? '' : 's'}`, 'diff-fields') : message('status', 'The two versions hold the same config.'),
        h('details', {open: true}, h('summary', {}, 'Side by side (seed TOML, secrets redacted)'), sideBySide(a.toml, b.toml, `version ${from}`, `version ${to}`)));
    } catch (err) {
      if (err.name !== 'AbortError') replace(diffOut, message('error', api.describe(err)));
    }
  };

  const confirmRollback = async (to) => {
    const msg = h('input', {type: 'text', id: 'rollback-message', value: `roll back to version ${to}`});
    const go = h('button', {type: 'button', class: 'primary danger', id: 'rollback-confirm'}, `Roll back to version ${to}`);
    const cancel = h('button', {type: 'button', class: 'quiet'}, 'Cancel');
    const out = h('div', {id: 'rollback-result', 'aria-live': 'polite'}, message('status', 'Loading what would change…'));
    const base = current;
    replace(dialog, h('h2', {id: 'rollback-title'}, `Roll back to version ${to}?`),
      h('p', {}, `This writes a new version equal to version ${to}; every edge then applies it. Version ${base} stays in the history.`),
      out, field('Why (stored with the version)', msg), h('div', {class: 'buttons'}, go, cancel));
    cancel.addEventListener('click', () => dialog.close());
    dialog.showModal();
    try {
      const d = await api.call('DiffVersions', {from: base, to}, signal);
      replace(out, (d.changes || []).length ? forms.changesTable(d.changes, `What changes against version ${base}`, 'rollback-changes') : message('status', 'Nothing would change.'));
    } catch (err) {
      replace(out, message('error', api.describe(err)));
    }
    go.addEventListener('click', async () => {
      go.disabled = true;
      try {
        const r = await api.call('Rollback', {toVersion: to, options: {message: msg.value.trim(), expectedVersion: base}});
        dialog.close();
        const status = h('div', {id: 'rollout-status', 'aria-live': 'polite'});
        replace(diffOut, message('ok', `Rolled back: version ${r.version} holds the config of version ${to}.`), status);
        onChanged();
        forms.watchRollout(status, r.version, signal);
      } catch (err) {
        go.disabled = false;
        const why = err.code === 'failed_precondition' ? `${err.message}. The config changed meanwhile: close and try again.` : api.describe(err);
        replace(out, message('error', `Not rolled back: ${why}`));
      }
    });
  };

  const load = async () => {
    let vs;
    try {
      vs = await api.call('ListVersions', {limit: 100}, signal);
    } catch (err) {
      if (err.name !== 'AbortError') replace(box, message('error', api.describe(err)));
      return;
    }
    const list = vs.versions || [];
    current = list[0]?.version || '0';
    const from = (v) => h('input', {type: 'radio', name: 'diff-from', value: v.version, 'aria-label': `from version ${v.version}`, checked: v === list[1]});
    const to = (v) => h('input', {type: 'radio', name: 'diff-to', value: v.version, 'aria-label': `to version ${v.version}`, checked: v === list[0]});
    const rows = list.map((v) => ({attrs: {'data-version': v.version}, cells: [
      h('td', {class: 'pick'}, from(v)), h('td', {class: 'pick'}, to(v)),
      h('th', {scope: 'row', class: 'num'}, v.version, v.version === current ? h('span', {class: 'tag ok'}, 'current') : null),
      fmt.when(v.createdAt), v.author || '—', v.message || '',
      h('td', {}, v.version === current ? '' : h('button', {type: 'button', class: 'quiet', 'data-rollback': v.version, onclick: () => confirmRollback(v.version)}, `Roll back to ${v.version}`)),
    ]}));
    const diffBtn = h('button', {type: 'button', id: 'diff-button'}, 'Compare the selected versions');
    diffBtn.addEventListener('click', () => {
      const f = box.querySelector('input[name=diff-from]:checked');
      const t = box.querySelector('input[name=diff-to]:checked');
      if (!f || !t) {
        replace(diffOut, message('error', 'Pick a "from" and a "to" version.'));
        return;
      }
      showDiff(f.value, t.value);
    });
    replace(box, table(`${list.length} newest versions`, ['From', 'To', 'Version', 'Written', 'Author', 'Message', ''], rows, {class: 'data', id: 'version-table'}),
      h('div', {class: 'buttons'}, diffBtn));
  };
  load();
  return {el: h('section', {}, h('h2', {}, 'Versions'), box, diffOut, dialog), reload: load};
}

function currentSection(signal) {
  const pre = h('pre', {id: 'current-toml', class: 'toml', tabindex: 0});
  const head = h('summary', {}, 'Current config (seed TOML, secrets redacted)');
  const load = async () => {
    try {
      const r = await api.call('ExportConfig', {version: 0}, signal);
      head.textContent = `Current config: version ${r.version} (seed TOML, secrets redacted)`;
      pre.textContent = r.toml;
    } catch (err) {
      if (err.name !== 'AbortError') pre.textContent = api.describe(err);
    }
  };
  load();
  return {el: h('section', {}, h('details', {}, head, pre)), reload: load};
}

function editorSection(signal, params, onChanged) {
  const kindSel = h('select', {id: 'edit-kind'}, Object.entries(kinds).map(([k, v]) => h('option', {value: k}, v.label)));
  const entrySel = h('select', {id: 'edit-entry'});
  const formBox = h('div', {id: 'edit-form'});
  const out = h('div', {id: 'edit-review', 'aria-live': 'polite'});
  const msg = h('input', {type: 'text', id: 'edit-message', placeholder: 'e.g. add a fallback backend'});
  const reviewBtn = h('button', {type: 'button', id: 'review-button', class: 'primary'}, 'Review changes');
  const deleteBtn = h('button', {type: 'button', id: 'delete-button', class: 'quiet danger'}, 'Review deletion');
  const entryField = field('Entry', entrySel);
  let cfg = null;

  // build shows the form of the chosen entry; keepOut keeps what the review area
  // says (a write's roll-out, after which the form is rebuilt from the new config).
  const build = (keepOut) => {
    const kind = kindSel.value;
    const k = kinds[kind];
    const ctx = {providers: cfg.providers || [], models: cfg.models || []};
    if (!keepOut) replace(out);
    let f;
    let id = null;
    if (kind === 'settings') {
      entryField.hidden = true;
      deleteBtn.hidden = true;
      reviewBtn.hidden = false;
      f = forms.settingsForm(cfg.settings);
    } else {
      entryField.hidden = false;
      id = entrySel.value;
      const entry = (cfg[k.list] || []).find((e) => e.id === id);
      deleteBtn.hidden = !entry;
      if (!entry && kind === 'user') {
        // A new key needs its secret made and shown once: that is the Keys page's.
        reviewBtn.hidden = true;
        replace(formBox, message('status', 'New keys are created on the ', h('a', {href: '#/keys'}, 'Keys page'), ', which shows the key once.'));
        return {f: null, kind, id};
      }
      reviewBtn.hidden = false;
      f = k.form(entry ? structuredClone(entry) : null, !entry, ctx);
    }
    replace(formBox, f.el);
    const form = {f, kind, id};
    formBox.dataset.kind = kind;
    return form;
  };
  let current = null;
  const fillEntries = (want) => {
    const k = kinds[kindSel.value];
    if (!k.list) return replace(entrySel);
    const list = cfg[k.list] || [];
    replace(entrySel, list.map((e) => h('option', {value: e.id, selected: e.id === want}, e.name && e.name !== e.id ? `${e.id} (${e.name})` : e.id)),
      h('option', {value: '', selected: want === ''}, `New ${k.label.toLowerCase()}…`));
  };
  const load = async (want, keepOut) => {
    try {
      cfg = (await api.call('GetConfig', {}, signal)).config || {};
    } catch (err) {
      if (err.name !== 'AbortError') replace(formBox, message('error', api.describe(err)));
      return;
    }
    fillEntries(want);
    current = build(keepOut);
  };
  kindSel.addEventListener('change', () => {
    fillEntries();
    current = build();
  });
  entrySel.addEventListener('change', () => {
    current = build();
  });

  const mutate = (c) => {
    const {f, kind} = current;
    if (kind === 'settings') {
      c.settings = f.read();
      return;
    }
    const e = f.read();
    const listName = kinds[kind].list;
    const list = c[listName] = c[listName] || [];
    const i = list.findIndex((x) => x.id === e.id);
    if (i >= 0) list[i] = e;
    else list.push(e);
  };
  const write = (options) => {
    const {f, kind} = current;
    switch (kind) {
      case 'settings': return api.call('UpdateSettings', {settings: f.read(), options});
      case 'provider': return api.call('PutProvider', {provider: f.read(), options});
      case 'model': return api.call('PutModel', {model: f.read(), options});
      default: return api.call('PutUser', {user: f.read(), options});
    }
  };
  const written = () => {
    onChanged();
    load(current.kind === 'settings' ? undefined : current.f.read().id, true);
  };
  forms.reviewFlow({reviewBtn, out, mutate, write, signal, messageInput: msg, newSecret: () => current.f.newSecret(), onWritten: written});
  forms.reviewFlow({reviewBtn: deleteBtn, out, signal, messageInput: msg, applyLabel: 'Delete',
    mutate: (c) => {
      const listName = kinds[current.kind].list;
      c[listName] = (c[listName] || []).filter((x) => x.id !== current.id);
    },
    write: (options) => api.call(kinds[current.kind].del, {id: current.id, options}),
    onWritten: () => {
      onChanged();
      load(undefined, true);
    }});

  const want = params.get('edit');
  if (want) {
    const [k, id] = want.split(':');
    if (kinds[k]) kindSel.value = k;
    load(id || '');
  } else {
    load();
  }
  return h('section', {id: 'editor'}, h('h2', {}, 'Change the config'),
    h('p', {class: 'lead'}, 'Pick what to change; "Review changes" checks it on the control plane exactly as the write will (a dry run) and shows the diff, which you then apply.'),
    h('form', {class: 'controls', onsubmit: (e) => e.preventDefault()}, field('Change', kindSel), entryField),
    formBox, field('Why (stored with the version)', msg), h('div', {class: 'buttons'}, reviewBtn, deleteBtn), out);
}

export default function config(el, {signal, params}) {
  const cur = currentSection(signal);
  let versions = null;
  const changed = () => {
    versions.reload();
    cur.reload();
  };
  versions = versionsSection(signal, () => {
    changed();
  });
  replace(el, h('h1', {}, 'Config'), cur.el, editorSection(signal, params, changed), versions.el);
}
