// Calls to the console's API. The session lives in an HttpOnly cookie; writes carry the console header.

export class ApiError extends Error {
  constructor(status, problem) {
    const detail = (problem && (problem.detail || problem.title)) || `HTTP ${status}`;
    super(detail);
    this.status = status;
    this.problem = problem;
  }
}

let unauthorizedHandler = null;

export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

export async function api(path, { method = 'GET', body, signal, headers: extra = {} } = {}) {
  const headers = { Accept: 'application/json', ...extra };
  const options = { method, headers, credentials: 'same-origin', signal };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    options.body = JSON.stringify(body);
  }
  if (method !== 'GET') headers['X-Redress-Console'] = '1';
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, { title: 'Network error', detail: 'the console cannot be reached; check your connection' });
  }
  if (response.status === 204) return null;
  const type = response.headers.get('content-type') || '';
  const data = type.includes('json') ? await response.json() : await response.text();
  if (!response.ok) {
    if (response.status === 401 && unauthorizedHandler && !path.endsWith('/v1/session')) unauthorizedHandler();
    throw new ApiError(response.status, typeof data === 'object' ? data : { detail: data });
  }
  return data;
}

// Whether the session still holds; when it does not, the page goes back to sign-in.
export async function checkSession() {
  try {
    await api('/v1/session');
    return true;
  } catch (err) {
    if (err.status === 401 && unauthorizedHandler) unauthorizedHandler();
    return false;
  }
}
