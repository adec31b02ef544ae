// A side-by-side view of two texts, line by line: lines only on the left were
// removed, only on the right added (longest common subsequence of lines).

import {h, table} from './dom.js';

// A config's TOML is a few hundred lines; beyond this many cells the table would
// not be readable anyway, and the LCS table would cost too much memory.
const maxCells = 4e6;
// Unchanged lines shown around each change.
const context = 3;

function ops(a, b) {
  const n = a.length;
  const m = b.length;
  if (n * m > maxCells) return null;
  const w = m + 1;
  const L = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      L[i * w + j] = a[i] === b[j] ? L[(i + 1) * w + j + 1] + 1 : Math.max(L[(i + 1) * w + j], L[i * w + j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) out.push(['same', i++, j++]);
    else if (j < m && (i === n || L[i * w + j + 1] >= L[(i + 1) * w + j])) out.push(['add', -1, j++]);
    else out.push(['del', i++, -1]);
  }
  return out;
}

// sideBySide pairs removed and added lines where they meet, so a changed line reads
// across one row.
export function sideBySide(left, right, leftName, rightName) {
  const a = left.split('\n');
  const b = right.split('\n');
  const o = ops(a, b);
  if (!o) return h('p', {class: 'msg warn'}, 'The versions are too large to show side by side; the field changes above list every difference.');
  const rows = [];
  for (let k = 0; k < o.length;) {
    if (o[k][0] === 'same') {
      const run = [];
      while (k < o.length && o[k][0] === 'same') run.push(o[k++]);
      const head = rows.length === 0 ? 0 : context;
      const tail = k === o.length ? 0 : context;
      run.forEach(([, i, j], x) => {
        if (x >= head && x < run.length - tail) {
          if (x === head) rows.push({class: 'skip', cells: [h('td', {colspan: 4}, `… ${run.length - head - tail} unchanged lines`)]});
          return;
        }
        rows.push({class: 'same', cells: [h('td', {class: 'ln'}, i + 1), h('td', {}, h('code', {}, a[i])), h('td', {class: 'ln'}, j + 1), h('td', {}, h('code', {}, b[j]))]});
      });
      continue;
    }
    const dels = [];
    const adds = [];
    while (k < o.length && o[k][0] !== 'same') {
      if (o[k][0] === 'del') dels.push(o[k][1]);
      else adds.push(o[k][2]);
      k++;
    }
    for (let x = 0; x < Math.max(dels.length, adds.length); x++) {
      const i = dels[x];
      const j = adds[x];
      rows.push({class: 'changed', cells: [
        h('td', {class: 'ln'}, i === undefined ? '' : i + 1), h('td', {class: i === undefined ? 'blank' : 'del'}, i === undefined ? '' : h('code', {}, a[i])),
        h('td', {class: 'ln'}, j === undefined ? '' : j + 1), h('td', {class: j === undefined ? 'blank' : 'add'}, j === undefined ? '' : h('code', {}, b[j]))]});
    }
  }
  return table(null, ['#', leftName, '#', rightName], rows, {class: 'side-by-side', id: 'diff-side-by-side'});
}
