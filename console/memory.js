// One memory: its fields, where it came from and went (provenance), and every audit row.
import { api } from './api.js';
import { errorBox, h, memoryLink, shortId, when } from './dom.js';

const links = (ids) => (ids?.length ? ids.map((id, i) => [i ? ', ' : '', memoryLink(id)]) : h('span', { class: 'muted' }, 'none'));

export async function render(page, { id }) {
  const detail = await api('GET', `/memories/${id}`);
  const m = detail;
  const p = detail.provenance;
  const state = m.is_archived ? `archived (${m.archive_reason ?? ''})` : m.is_duplicate ? 'duplicate' : 'active';
  page.append(
    h('h1', {}, `Memory ${shortId(id)}`),
    h('p', {}, h('a', { href: `#/projects/${m.project_id}` }, 'project'), ` · ${m.memory_type} · ${state} · version ${m.version}`),
    h('section', { class: 'card', 'aria-label': 'Text' }, h('p', { class: 'text', id: 'memory-text' }, m.execution_summary),
      ['goal', 'result', 'feedback'].filter((k) => m[k]).map((k) => h('p', {}, h('b', {}, `${k}: `), m[k]))),
    h('h2', {}, 'Provenance'),
    h('dl', { class: 'fields card', id: 'provenance' },
      h('dt', {}, 'Consolidated from'), h('dd', {}, links(p.sources)),
      h('dt', {}, 'Synthesized from'), h('dd', {}, links(p.synthesized_from)),
      h('dt', {}, 'Consolidated into'), h('dd', {}, p.consolidated_into ? memoryLink(p.consolidated_into) : h('span', { class: 'muted' }, 'none')),
      h('dt', {}, 'Syntheses'), h('dd', {}, links(p.syntheses)),
      h('dt', {}, 'Superseded by'), h('dd', {}, p.superseded_by ? memoryLink(p.superseded_by) : h('span', { class: 'muted' }, 'none')),
      h('dt', {}, 'Tags'), h('dd', {}, (m.tags ?? []).join(', ') || '—'),
      h('dt', {}, 'Files'), h('dd', {}, (m.files ?? []).join(', ') || '—'),
      h('dt', {}, 'Reused'), h('dd', {}, `${m.reused_count} times${m.last_reused_at ? `, last ${when(m.last_reused_at)}` : ''}`),
      h('dt', {}, 'Learned'), h('dd', {}, when(m.learned_at))));
  const history = h('section', { 'aria-labelledby': 'history-heading' }, h('h2', { id: 'history-heading' }, 'History'));
  page.append(history);
  try {
    const answer = await api('GET', `/memories/${id}/changes?limit=200`);
    history.append(answer.changes.length === 0 ? h('p', { class: 'muted' }, 'No change recorded.') : h('table', { id: 'history' },
      h('thead', {}, h('tr', {}, ['When', 'Operation', 'Job', 'Reason', 'By'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, answer.changes.map((c) => h('tr', {},
        h('td', {}, when(c.changed_at)), h('td', {}, c.operation),
        h('td', {}, c.job_id ? h('a', { href: `#/jobs/${c.job_id}`, class: 'mono' }, shortId(c.job_id)) : 'manual'),
        h('td', {}, c.reason ?? ''), h('td', { class: 'muted' }, c.changed_by))))));
  } catch (error) {
    history.append(errorBox(error));
  }
}
