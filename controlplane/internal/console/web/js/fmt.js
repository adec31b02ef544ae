// How the console writes numbers, times and durations: one definition each.

const nf = new Intl.NumberFormat('en-US');
const usdf = new Intl.NumberFormat('en-US', {style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: 4});

// int formats a count; protojson sends 64-bit integers as strings.
export function int(v) {
  return nf.format(Number(v || 0));
}

export function usd(v) {
  return usdf.format(Number(v || 0));
}

export function pct(v) {
  return `${(Number(v || 0) * 100).toFixed(1)}%`;
}

// secs formats a duration given in seconds, in ms below 10 s.
export function secs(v) {
  const n = Number(v || 0);
  if (!n) return '—';
  return n < 10 ? `${Math.round(n * 1000)} ms` : `${n.toFixed(1)} s`;
}

// when formats a protojson Timestamp (RFC 3339) in the browser's time zone.
export function when(ts) {
  if (!ts) return '—';
  const d = new Date(ts);
  return isNaN(d) ? String(ts) : d.toLocaleString();
}

// ago says how long before now a timestamp was.
export function ago(ts, now = Date.now()) {
  if (!ts) return '—';
  const sec = Math.max(0, Math.round((now - new Date(ts).getTime()) / 1000));
  if (sec < 60) return `${sec} s ago`;
  if (sec < 3600) return `${Math.floor(sec / 60)} min ago`;
  if (sec < 86400) return `${Math.floor(sec / 3600)} h ${Math.floor((sec % 3600) / 60)} min ago`;
  return `${Math.floor(sec / 86400)} d ago`;
}

export function hour(ts) {
  const d = new Date(ts);
  return d.toLocaleString([], {month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit'});
}

// edgesApplied says that n connected edges (all of them) have applied a version.
export function edgesApplied(n) {
  return n === 1 ? 'the one connected edge has applied it' : `all ${n} connected edges have applied it`;
}
