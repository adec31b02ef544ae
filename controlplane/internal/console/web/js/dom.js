// Building DOM nodes from data. Every string becomes a text node or an attribute
// value, never markup, so nothing the API returns can inject HTML; and no style
// attribute is ever set, which the console's CSP would refuse anyway.

const SVG = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'class') {
      el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    } else if (k === 'value' && 'value' in el) {
      el.value = v;
    } else if (k === 'checked' || k === 'selected' || k === 'disabled') {
      el[k] = true;
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// h makes an HTML element: h('a', {href: '#/fleet'}, 'Fleet').
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

// s makes an SVG element.
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG, tag), attrs, children);
}

// replace empties el and fills it with children.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// table builds a table from column headings and rows of cells; a row may be
// {cells, class, attrs}.
export function table(caption, headings, rows, attrs = {}) {
  return h('table', attrs,
    caption ? h('caption', {}, caption) : null,
    h('thead', {}, h('tr', {}, headings.map((c) => h('th', {scope: 'col'}, c)))),
    h('tbody', {}, rows.map((r) => {
      const row = Array.isArray(r) ? {cells: r} : r;
      return h('tr', {class: row.class, ...(row.attrs || {})}, row.cells.map((c) => (c instanceof Node && (c.tagName === 'TD' || c.tagName === 'TH')) ? c : h('td', {}, c)));
    })));
}

// field wraps a control with its label; hint is announced with it.
let fieldSeq = 0;
export function field(label, control, hint) {
  const id = control.id || `f${++fieldSeq}`;
  control.id = id;
  let hintEl = null;
  if (hint) {
    hintEl = h('span', {class: 'hint', id: id + '-hint'}, hint);
    control.setAttribute('aria-describedby', hintEl.id);
  }
  if (control.type === 'checkbox') {
    return h('div', {class: 'field check'}, control, h('label', {for: id}, label), hintEl);
  }
  return h('div', {class: 'field'}, h('label', {for: id}, label), control, hintEl);
}

// message shows a status line: kind is 'ok', 'warn' or 'error'.
export function message(kind, ...text) {
  return h('p', {class: `msg ${kind}`, role: kind === 'error' ? 'alert' : 'status'}, ...text);
}
