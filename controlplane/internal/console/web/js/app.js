// The console's shell: login, navigation between pages (#/fleet, #/backends, …) and
// the lifetime of each page (its polling stops when another page is shown).

import {h, replace, field, message} from './dom.js';
import * as api from './api.js';
import fleet from './pages/fleet.js';
import backends from './pages/backends.js';
import usage from './pages/usage.js';
import config from './pages/config.js';
import keys from './pages/keys.js';

const pages = [
  {id: 'fleet', title: 'Fleet', render: fleet},
  {id: 'backends', title: 'Backends', render: backends},
  {id: 'usage', title: 'Usage', render: usage},
  {id: 'config', title: 'Config', render: config},
  {id: 'keys', title: 'Keys', render: keys},
];

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const serverEl = document.getElementById('server');
const logoutBtn = document.getElementById('logout');
let stopPage = null;
let loggingIn = false;

function leavePage() {
  if (stopPage) stopPage();
  stopPage = null;
}

function showLogin(reason) {
  leavePage();
  nav.hidden = true;
  logoutBtn.hidden = true;
  serverEl.textContent = '';
  document.title = 'Log in · Berry console';
  const input = h('input', {type: 'password', id: 'token', name: 'token', autocomplete: 'off', spellcheck: 'false', required: true});
  const out = h('div', {id: 'login-msg', 'aria-live': 'polite'}, reason ? message('error', reason) : null);
  const submit = h('button', {type: 'submit', id: 'login-submit'}, 'Log in');
  const form = h('form', {id: 'login', class: 'card login'},
    h('h1', {}, 'Log in'),
    h('p', {}, 'Paste the control plane\'s admin token (to change config and keys) or its read token (to look). ' +
      'It is kept in this tab only, and sent with each call.'),
    field('Token', input),
    submit, out);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const t = input.value.trim();
    if (!t) return;
    submit.disabled = true;
    replace(out, message('status', 'Checking the token…'));
    api.setToken(t);
    loggingIn = true;
    try {
      await api.call('GetServerInfo');
      loggingIn = false;
      if (!location.hash || location.hash === '#') location.hash = '#/fleet'; // routes on hashchange
      else route();
    } catch (err) {
      loggingIn = false;
      api.clearToken();
      submit.disabled = false;
      const why = err.code === 'unauthenticated' ? `Token refused: ${err.message}` : api.describe(err);
      replace(out, message('error', why));
      input.select();
    }
  });
  replace(main, form);
  input.focus();
}

async function showServer() {
  try {
    const info = await api.call('GetServerInfo');
    const rev = info.revision ? ` (${info.revision.slice(0, 12)}${info.modified ? ', modified' : ''})` : '';
    serverEl.textContent = `control plane ${info.version || 'dev'}${rev}` + (api.token() === api.noToken ? ', no tokens (loopback only)' : '');
  } catch {
    serverEl.textContent = '';
  }
}

// openControlPlane asks, with no token, whether the control plane has none (a local
// one, serving loopback clients only): then there is nothing to log in with.
async function openControlPlane() {
  loggingIn = true;
  try {
    await api.call('GetServerInfo');
    api.setToken(api.noToken);
    return true;
  } catch {
    return false;
  } finally {
    loggingIn = false;
  }
}

async function route(focus) {
  leavePage();
  if (!api.token() && !(await openControlPlane())) {
    showLogin();
    return;
  }
  nav.hidden = false;
  logoutBtn.hidden = api.token() === api.noToken;
  const [name, query] = location.hash.replace(/^#\/?/, '').split('?');
  const page = pages.find((p) => p.id === name) || pages[0];
  for (const a of nav.querySelectorAll('a')) {
    if (a.dataset.page === page.id) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${page.title} · Berry console`;
  const ctl = new AbortController();
  const el = h('div', {class: 'page', id: `page-${page.id}`});
  replace(main, el);
  const stop = page.render(el, {signal: ctl.signal, params: new URLSearchParams(query || '')});
  stopPage = () => {
    ctl.abort();
    if (typeof stop === 'function') stop();
  };
  if (focus) main.focus();
  if (!serverEl.textContent) showServer();
}

window.addEventListener('berry:unauthenticated', (e) => {
  if (loggingIn || !api.token()) return;
  api.clearToken();
  showLogin(`The control plane refused the token: ${e.detail.message}. Log in again.`);
});
window.addEventListener('hashchange', () => route(true));
logoutBtn.addEventListener('click', () => {
  api.clearToken();
  showLogin();
});
route();
