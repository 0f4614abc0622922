// A project's playbook: the active entries with their supporting memories.
import { api } from './api.js';
import { h, memoryLink, when } from './dom.js';

export async function render(page, { id }) {
  const [project, answer] = await Promise.all([api('GET', `/projects/${id}`), api('GET', `/projects/${id}/playbook?limit=200`)]);
  page.append(h('h1', {}, `Playbook of ${project.name}`), h('p', {}, h('a', { href: `#/projects/${id}` }, 'Back to the project')));
  if (answer.entries.length === 0) {
    page.append(h('p', { class: 'muted' }, 'No entry yet: a job promotes consolidated memories and syntheses of high confidence.'));
    return;
  }
  page.append(h('ul', { class: 'plain', id: 'playbook' }, answer.entries.map((entry) => h('li', { class: 'card' },
    h('div', {}, h('b', {}, `[${entry.category}]`), ` priority ${entry.priority} · ${when(entry.created_at)}`,
      entry.source_memory_id ? [' · from ', memoryLink(entry.source_memory_id)] : ''),
    h('p', { class: 'text' }, entry.content),
    entry.supporting_memories?.length
      ? h('details', {}, h('summary', {}, `${entry.supporting_memories.length} supporting memories`),
        h('ul', {}, entry.supporting_memories.map((m) => h('li', {}, memoryLink(m.id), ` ${m.memory_type}: `, m.execution_summary))))
      : ''))));
}
