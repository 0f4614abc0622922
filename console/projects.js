// The projects the token may see, with their counts and last job.
import { api } from './api.js';
import { badge, h, shortId, when } from './dom.js';

export async function render(page) {
  page.append(h('h1', {}, 'Projects'));
  const answer = await api('GET', '/projects?limit=100');
  if (answer.projects.length === 0) {
    page.append(h('p', {}, 'No projects yet. `consolidator demo` makes one with a few hundred memories.'));
    return;
  }
  const rows = answer.projects.map((project) => h('tr', {},
    h('td', {}, h('a', { href: `#/projects/${project.id}` }, project.name), ' ', h('span', { class: 'muted mono' }, shortId(project.id))),
    h('td', { class: 'num' }, project.active_memories),
    h('td', { class: 'num' }, project.duplicate_memories),
    h('td', { class: 'num' }, project.archived_memories),
    h('td', {}, project.last_job
      ? [badge(project.last_job.status), ' ', h('a', { href: `#/jobs/${project.last_job.job_id}` },
          `${project.last_job.trigger_type}${project.last_job.dry_run ? ' (dry run)' : ''}`),
        ' ', h('span', { class: 'muted' }, when(project.last_job.created_at))]
      : h('span', { class: 'muted' }, 'none')),
  ));
  page.append(h('table', { id: 'projects' },
    h('caption', { class: 'muted' }, `${answer.projects.length} project(s)${answer.next_cursor ? ' (first page)' : ''}`),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Project'), h('th', { scope: 'col', class: 'num' }, 'Active'),
      h('th', { scope: 'col', class: 'num' }, 'Duplicates'), h('th', { scope: 'col', class: 'num' }, 'Archived'),
      h('th', { scope: 'col' }, 'Last job'))),
    h('tbody', {}, rows)));
}
