// The workers (GET /workers): heartbeats and running jobs, the command stream's depth, and the
// dead letters with their reasons (GET /dead-letters).
import { api, isMissingRoute } from './api.js';
import { age, errorBox, h, percent, shortId, unavailable, when } from './dom.js';

export async function render(page) {
  page.append(h('h1', {}, 'Workers'));
  let answer;
  try {
    answer = await api('GET', '/workers');
  } catch (error) {
    page.append(isMissingRoute(error) ? unavailable('the workers and the command stream (GET /workers)', error) : errorBox(error));
    return;
  }
  const c = answer.commands ?? {};
  page.append(
    h('div', { class: 'stats card', id: 'commands' },
      [['Commands pending', c.pending], ['Delivered, not acknowledged', c.ack_pending], ['Redelivered', c.redelivered],
        ['Dead letters', answer.dead_letters]].map(([label, value]) => h('div', {}, h('span', { class: 'muted' }, label), h('b', {}, value ?? '—')))),
    answer.workers.length === 0 ? h('p', { class: 'muted', id: 'no-workers' }, 'No worker has sent a heartbeat.') : h('table', { id: 'workers' },
      h('thead', {}, h('tr', {}, ['Worker', 'Started', 'Last heartbeat', 'Running jobs'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, answer.workers.map((w) => h('tr', { 'data-worker': w.worker_id },
        h('td', { class: 'mono' }, w.worker_id), h('td', {}, when(w.started_at)),
        h('td', {}, age(w.last_heartbeat), h('span', { class: 'muted' }, ` (${when(w.last_heartbeat)})`)),
        h('td', {}, w.running_jobs.length ? h('ul', { class: 'plain' }, w.running_jobs.map((j) => h('li', {},
          h('a', { href: `#/jobs/${j.job_id}`, class: 'mono' }, shortId(j.job_id)), ' of ',
          h('a', { href: `#/projects/${j.project_id}`, class: 'mono' }, shortId(j.project_id)),
          ` · ${percent(j.progress)} · since ${when(j.started_at)}`))) : h('span', { class: 'muted' }, 'idle')))))));
  const letters = h('section', { 'aria-labelledby': 'dead-heading' }, h('h2', { id: 'dead-heading' }, 'Dead letters'));
  page.append(letters);
  try {
    const dead = await api('GET', '/dead-letters?limit=50');
    letters.append(dead.dead_letters.length === 0 ? h('p', { class: 'muted', id: 'no-dead-letters' }, 'None.') : h('table', { id: 'dead-letters' },
      h('thead', {}, h('tr', {}, ['Seq', 'At', 'Subject', 'Reason', 'Payload'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, dead.dead_letters.map((d) => h('tr', {},
        h('td', { class: 'num' }, d.seq), h('td', {}, when(d.at)), h('td', { class: 'mono' }, d.subject), h('td', {}, d.reason),
        h('td', {}, h('code', { class: 'details' }, shortPayload(d.payload))))))));
  } catch (error) {
    letters.append(isMissingRoute(error) ? unavailable('the dead letters (GET /dead-letters)', error) : errorBox(error));
  }
}

function shortPayload(payload) {
  const text = typeof payload === 'string' ? payload : JSON.stringify(payload);
  return text.length > 200 ? `${text.slice(0, 199)}…` : text;
}

