// The console's only door to the server: same-origin fetches with the session cookie and,
// on every write, the CSRF token read from /console/api/session.
let session = null;

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export async function loadSession() {
  const response = await fetch('/console/api/session', { credentials: 'same-origin' });
  if (!response.ok) return null;
  session = await response.json();
  return session;
}

export function currentSession() { return session; }

async function call(url, { method = 'GET', json, body, contentType, headers = {} } = {}) {
  const init = { method, credentials: 'same-origin', headers: { ...headers } };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers['Content-Type'] = 'application/json';
  } else if (body !== undefined) {
    init.body = body;
    if (contentType) init.headers['Content-Type'] = contentType;
  }
  if (method !== 'GET' && session) init.headers['X-CSRF-Token'] = session.csrf;
  const response = await fetch(url, init);
  if (response.status === 304) return { notModified: true, etag: response.headers.get('ETag') };
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** A query-API route of one collection: v1('default', '/search') -> /console/api/v1/collections/default/search */
export function v1(cid, path, options) {
  return call(`/console/api/v1/collections/${encodeURIComponent(cid)}${path}`, options);
}

/** A deployment-wide query-API route (the collections list). */
export function v1root(path, options) { return call(`/console/api/v1${path}`, options); }

/** A console-only route of one collection (status, failures, photos, shares). */
export function consoleApi(cid, path, options) {
  return call(`/console/api/collections/${encodeURIComponent(cid)}${path}`, options);
}

export function photoUrl(cid, imageId) {
  return `/console/api/collections/${encodeURIComponent(cid)}/images/${encodeURIComponent(imageId)}/photo`;
}

/** Status with If-None-Match: {notModified: true} when nothing changed since `etag`. */
export async function status(cid, etag) {
  const headers = etag ? { 'If-None-Match': etag } : {};
  const response = await fetch(`/console/api/collections/${encodeURIComponent(cid)}/status`,
    { credentials: 'same-origin', headers });
  if (response.status === 304) return { notModified: true };
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
  return { data: await response.json(), etag: response.headers.get('ETag') };
}

export async function logout() {
  await call('/console/logout', { method: 'POST' });
}
