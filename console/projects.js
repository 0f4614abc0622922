// The landing page: the projects needing attention (GET /attention), then every project the
// token may see, with its counts and last job.
import { api, isMissingRoute } from './api.js';
import { badge, errorBox, h, shortId, unavailable, when } from './dom.js';

const REASONS = {
  open_reviews: 'open reviews', failed_jobs: 'failed jobs (7 days)', over_threshold: 'over its threshold', disabled: 'consolidation paused',
};

async function attention() {
  const section = h('section', { id: 'attention', 'aria-labelledby': 'attention-heading' }, h('h2', { id: 'attention-heading' }, 'Needs attention'));
  let answer;
  try {
    answer = await api('GET', '/attention');
  } catch (error) {
    section.append(isMissingRoute(error) ? unavailable('the projects needing attention (GET /attention)', error) : errorBox(error));
    return section;
  }
  if (!answer.projects.length) {
    section.append(h('p', { class: 'muted', id: 'all-well' }, 'Nothing needs attention: no open review, no failed job in 7 days, every project under its threshold and enabled.'));
    return section;
  }
  section.append(h('ul', { class: 'plain attention' }, answer.projects.map((p) => h('li', { class: 'card', 'data-project': p.project_id },
    h('div', {}, h('a', { href: `#/projects/${p.project_id}` }, h('b', {}, p.name)), ' ',
      p.reasons.map((reason) => [h('span', { class: `flag reason-${reason}` }, REASONS[reason] ?? reason), ' ']),
      p.last_job_status ? [' last job ', badge(p.last_job_status)] : ''),
    h('div', { class: 'muted' }, `${p.active} active (threshold ${p.threshold}) · ${p.open_reviews} open review(s) · `,
      `${p.failed_jobs_7d} failed job(s) in 7 days · ${p.enabled ? 'enabled' : 'paused'}`)))));
  return section;
}

export async function render(page) {
  page.append(h('h1', {}, 'Projects'));
  const [answer, needs] = await Promise.all([api('GET', '/projects?limit=100'), attention()]);
  page.append(needs, h('h2', {}, 'All projects'));
  if (answer.projects.length === 0) {
    page.append(h('p', {}, 'No projects yet. `consolidator demo` makes one with a few hundred memories.'));
    return;
  }
  const rows = answer.projects.map((project) => h('tr', {},
    h('td', {}, h('a', { href: `#/projects/${project.id}` }, project.name), ' ', h('span', { class: 'muted mono' }, shortId(project.id))),
    h('td', { class: 'num' }, project.active_memories),
    h('td', { class: 'num' }, project.duplicate_memories),
    h('td', { class: 'num' }, project.archived_memories),
    h('td', {}, project.consolidation_enabled === false ? h('span', { class: 'flag' }, 'paused') : 'enabled'),
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
      h('th', { scope: 'col' }, 'Consolidation'),
      h('th', { scope: 'col' }, 'Last job'))),
    h('tbody', {}, rows)));
}
