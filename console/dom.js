// Small DOM helpers: elements are built with text nodes only (no innerHTML), so memory texts
// and API messages can never inject markup.

/** h('a', {href: '#/'}, 'text', child, ...): an element with attributes and children. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, '');
    else element.setAttribute(name, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export const shortId = (id) => (id ? String(id).slice(0, 8) : '');

export function when(value) {
  if (!value) return '';
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

export const percent = (value) => `${Math.round((Number(value) || 0) * 100)}%`;

export function badge(status) {
  return h('span', { class: `badge ${status}` }, String(status).replace('_', ' '));
}

/** A labelled progress bar; update() moves it. */
export function progressBar(value, label) {
  const bar = h('progress', { max: 1, value: value ?? 0, 'aria-label': label });
  const text = h('span', { class: 'progress-text' }, percent(value));
  const phase = h('span', { class: 'muted phase' });
  const element = h('div', { class: 'progress' }, bar, text, phase);
  return {
    element,
    update(progress, phaseName) {
      if (progress !== undefined && progress !== null) {
        bar.value = progress;
        text.textContent = percent(progress);
      }
      if (phaseName) phase.textContent = phaseName;
    },
  };
}

/** The API's words for an error, in an alert box. */
export function errorBox(error) {
  const code = error?.code ? `${error.code}: ` : '';
  return h('div', { class: 'error', role: 'alert' }, `${code}${error?.message ?? error}`);
}

export function successBox(text) {
  return h('div', { class: 'success', role: 'status' }, text);
}

export function memoryLink(id, text) {
  return h('a', { href: `#/memories/${id}`, class: text ? '' : 'mono' }, text ?? shortId(id));
}

export function firstLine(text, max = 140) {
  const line = String(text ?? '').split('\n').find((l) => l.trim()) ?? '';
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** Replaces the children of `target` with `children`. */
export function fill(target, ...children) {
  target.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

/** Shows a short message in the page's live region, for screen readers and sighted users. */
export function notify(text) {
  const notice = document.getElementById('notice');
  if (notice) notice.textContent = text;
}

/** A feature this gateway does not serve (its route answered "no route"): said plainly. */
export function unavailable(what, error) {
  return h('div', { class: 'unavailable', role: 'note', 'data-unavailable': what },
    h('b', {}, 'Not available on this gateway: '), what, h('span', { class: 'muted' }, ` (${error?.message ?? 'no route'})`));
}

/** How long ago, in words: "3 days ago". */
export function age(value) {
  const then = new Date(value).getTime();
  if (!value || Number.isNaN(then)) return '';
  const seconds = Math.max(0, (Date.now() - then) / 1000);
  const [size, unit] = [[86400 * 365, 'year'], [86400 * 30, 'month'], [86400, 'day'], [3600, 'hour'], [60, 'minute'], [1, 'second']]
    .find(([s]) => seconds >= s) ?? [1, 'second'];
  const n = Math.floor(seconds / size);
  return `${n} ${unit}${n === 1 ? '' : 's'} ago`;
}

/** A duration in milliseconds, in the unit that reads best. */
export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(Number(ms))) return '—';
  const value = Number(ms);
  if (value < 1000) return `${Math.round(value)} ms`;
  if (value < 120000) return `${(value / 1000).toFixed(1)} s`;
  return `${(value / 60000).toFixed(1)} min`;
}
