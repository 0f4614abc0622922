// Every admin action (GET /audit): rollbacks, unmerges, review decisions, configuration
// changes (with their before and after values), cancellations, triggers, applied plans; who and
// when, newest first, filtered by project and action.
import { api, isMissingRoute } from './api.js';
import { errorBox, fill, h, shortId, unavailable, when } from './dom.js';

const ACTIONS = ['rollback_requested', 'unmerge', 'review_approved', 'review_rejected', 'configuration_changed',
  'job_cancelled', 'job_triggered', 'plan_applied'];
const PAGE = 50;

function target(action) {
  const id = action.target_id;
  if (!id) return '';
  if (action.action.startsWith('job_') || action.action === 'rollback_requested' || action.action === 'plan_applied') {
    return h('a', { href: `#/jobs/${id}`, class: 'mono' }, shortId(id));
  }
  if (action.action === 'unmerge') return h('a', { href: `#/memories/${id}`, class: 'mono' }, shortId(id));
  if (action.action === 'configuration_changed') return h('a', { href: `#/projects/${id}`, class: 'mono' }, shortId(id));
  return h('span', { class: 'mono' }, shortId(id));
}

/** A configuration change as the fields that changed, before → after; other details as JSON. */
function details(action) {
  const d = action.details ?? {};
  if (d.before && d.after && typeof d.before === 'object') {
    const keys = [...new Set([...Object.keys(d.before), ...Object.keys(d.after)])]
      .filter((key) => JSON.stringify(d.before[key]) !== JSON.stringify(d.after[key]));
    if (keys.length) {
      return h('ul', { class: 'changes' }, keys.map((key) => h('li', {}, h('b', {}, key), ': ',
        h('del', {}, JSON.stringify(d.before[key] ?? null)), ' → ', h('ins', {}, JSON.stringify(d.after[key] ?? null)))));
    }
  }
  const text = JSON.stringify(d);
  return text === '{}' ? '' : h('code', { class: 'details' }, text.length > 240 ? `${text.slice(0, 239)}…` : text);
}

export async function render(page, { query }) {
  const params = new URLSearchParams(query ?? '');
  const project = params.get('project_id') ?? '';
  const chosen = params.get('action') ?? '';
  page.append(h('h1', {}, 'Audit: admin actions'));
  const action = h('select', { id: 'audit-action', name: 'action' }, h('option', { value: '' }, 'every action'),
    ACTIONS.map((a) => h('option', { value: a, selected: a === chosen }, a.replaceAll('_', ' '))));
  const projectInput = h('input', { id: 'audit-project', name: 'project_id', value: project, placeholder: 'any project', spellcheck: 'false', size: 38 });
  const form = h('form', { class: 'toolbar', id: 'audit-filter' },
    h('label', { for: 'audit-action' }, 'Action ', action), h('label', { for: 'audit-project' }, 'Project ', projectInput),
    h('button', { type: 'submit', class: 'secondary' }, 'Filter'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    if (action.value) next.set('action', action.value);
    if (projectInput.value.trim()) next.set('project_id', projectInput.value.trim());
    location.hash = `#/audit${next.size ? `?${next}` : ''}`;
  });
  const tbody = h('tbody', {});
  const more = h('div', {});
  const table = h('table', { id: 'audit-actions' },
    h('thead', {}, h('tr', {}, ['When', 'Who', 'Action', 'Project', 'Target', 'Details'].map((t) => h('th', { scope: 'col' }, t)))), tbody);
  page.append(form);
  const load = async (cursor) => {
    const q = new URLSearchParams({ limit: PAGE });
    if (project) q.set('project_id', project);
    if (chosen) q.set('action', chosen);
    if (cursor) q.set('cursor', cursor);
    const answer = await api('GET', `/audit?${q}`);
    for (const a of answer.actions) {
      tbody.append(h('tr', { 'data-action': a.action },
        h('td', {}, when(a.at)), h('td', {}, a.actor), h('td', {}, h('b', {}, a.action.replaceAll('_', ' '))),
        h('td', {}, a.project_id ? h('a', { href: `#/projects/${a.project_id}`, class: 'mono' }, shortId(a.project_id)) : ''),
        h('td', {}, target(a)), h('td', {}, details(a))));
    }
    fill(more, answer.next_cursor ? h('button', { type: 'button', class: 'secondary', onclick: () => load(answer.next_cursor).catch((e) => fill(more, errorBox(e))) }, 'More') : '');
    return answer.actions.length;
  };
  try {
    const count = await load(null);
    page.append(count ? table : h('p', { class: 'muted', id: 'audit-empty' }, 'No admin action recorded.'), more);
  } catch (error) {
    page.append(isMissingRoute(error) ? unavailable('the audit of admin actions (GET /audit)', error) : errorBox(error));
  }
}
