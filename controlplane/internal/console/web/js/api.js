// The admin API, as berryctl uses it, over the Connect protocol's JSON form:
// POST /berry.v1.AdminService/<Method> with the bearer token of this session. The
// token lives in sessionStorage only (gone with the tab) and is sent in a header,
// never as a cookie, so another site cannot make the browser send it.

const tokenKey = 'berry.console.token';
const service = '/berry.v1.AdminService/';

// noToken stands, as the session's token, for a control plane that has no tokens
// at all (it then serves loopback clients only): no Authorization header is sent.
export const noToken = '(none)';

export function token() {
  return sessionStorage.getItem(tokenKey) || '';
}

export function setToken(t) {
  sessionStorage.setItem(tokenKey, t);
}

export function clearToken() {
  sessionStorage.removeItem(tokenKey);
}

// APIError is a refused call: code is the Connect code ("unauthenticated",
// "permission_denied", "invalid_argument", "failed_precondition", ...).
export class APIError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

// Connect's codes for HTTP statuses, for answers that carry no Connect error body
// (a proxy's, for instance).
const httpCodes = {400: 'invalid_argument', 401: 'unauthenticated', 403: 'permission_denied', 404: 'unimplemented', 408: 'deadline_exceeded', 409: 'aborted', 412: 'failed_precondition', 429: 'unavailable', 502: 'unavailable', 503: 'unavailable', 504: 'unavailable'};

// call invokes one unary method with a request in protojson form.
export async function call(method, req = {}, signal) {
  let resp;
  try {
    resp = await fetch(service + method, {
      method: 'POST',
      headers: token() && token() !== noToken ? {'Content-Type': 'application/json', 'Authorization': 'Bearer ' + token()} : {'Content-Type': 'application/json'},
      body: JSON.stringify(req),
      credentials: 'omit',
      cache: 'no-store',
      signal,
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new APIError('unavailable', `the control plane did not answer (${e.message})`, 0);
  }
  const text = await resp.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : {};
  } catch {
    body = null;
  }
  if (!resp.ok) {
    const code = (body && body.code) || httpCodes[resp.status] || 'unknown';
    const err = new APIError(code, (body && body.message) || text.trim() || resp.statusText, resp.status);
    if (code === 'unauthenticated') {
      window.dispatchEvent(new CustomEvent('berry:unauthenticated', {detail: err}));
    }
    throw err;
  }
  if (body === null) throw new APIError('internal', `${method}: the answer is not JSON`, resp.status);
  return body;
}

// describe turns an error into the sentence the pages show.
export function describe(err) {
  if (err instanceof APIError) {
    switch (err.code) {
      case 'permission_denied':
        return `Not allowed with this token: ${err.message}`;
      case 'unimplemented':
        return `This control plane does not serve that call: ${err.message}`;
      default:
        return err.message;
    }
  }
  return String(err && err.message || err);
}
