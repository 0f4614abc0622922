// The API client: every call carries the token from sessionStorage as a bearer header (never in
// a URL), and an error answer is thrown with the API's own code and message.

const PREFIX = '/api/v1';
const KEY = 'consolidator.token';

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value.trim()),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function headers(extra) {
  return { Authorization: `Bearer ${token.get() ?? ''}`, ...extra };
}

async function failure(response) {
  const text = await response.text();
  let body = null;
  try { body = JSON.parse(text); } catch { /* not JSON: shown as text */ }
  const message = body?.message ?? (text || response.statusText);
  return new ApiError(response.status, body?.error ?? `http_${response.status}`, message);
}

/** Calls the API; returns the JSON answer (null for an empty one). */
export async function api(method, path, body) {
  const init = { method, headers: headers(body === undefined ? {} : { 'Content-Type': 'application/json' }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  let response;
  try {
    response = await fetch(PREFIX + path, init);
  } catch (error) {
    throw new ApiError(0, 'network', `The gateway did not answer: ${error.message}`);
  }
  if (!response.ok) throw await failure(response);
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

/**
 * Follows a job's Server-Sent Events with fetch (an EventSource cannot send the bearer header),
 * calling onEvent(kind, data) for each, until the stream ends or `signal` aborts it.
 */
export async function followEvents(jobId, onEvent, signal) {
  const response = await fetch(`${PREFIX}/consolidation/status/${jobId}/events`, {
    headers: headers({ Accept: 'text/event-stream' }),
    signal,
  });
  if (response.status === 204) return;
  if (!response.ok) throw await failure(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let kind = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) kind = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
      }
      if (data.length === 0) continue;
      let parsed;
      try { parsed = JSON.parse(data.join('\n')); } catch { continue; }
      // Counted on the page, so a test can tell live events from a reload.
      const root = document.documentElement;
      root.dataset.sseEvents = String(Number(root.dataset.sseEvents ?? 0) + 1);
      onEvent(kind, parsed);
    }
  }
}

/** True when the gateway has no such route (an older gateway): the page says so instead. */
export const isMissingRoute = (error) =>
  (error?.status === 404 && String(error.message).startsWith('no route')) || error?.status === 405;
