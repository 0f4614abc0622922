// A project's health over time (GET /projects/{id}/timeline): active, duplicate and archived
// memories across its jobs, how long the jobs took, and its failures grouped by cause.
import { api, isMissingRoute } from './api.js';
import { barChart, lineChart } from './chart.js';
import { duration, errorBox, fill, h, shortId, unavailable, when } from './dom.js';

const STATES = [['active', 'Active'], ['duplicate', 'Duplicate'], ['archived', 'Archived']];
const day = (value) => (value ? new Date(value).toLocaleDateString() : '');

export async function health(project, section) {
  const heading = h('h2', { id: 'health-heading' }, 'Health over time');
  let data;
  try {
    data = await api('GET', `/projects/${project.id}/timeline?limit=200`);
  } catch (error) {
    fill(section, heading, isMissingRoute(error) ? unavailable('the project\'s timeline (GET /projects/{id}/timeline)', error) : errorBox(error));
    return;
  }
  const points = data.points ?? [];
  // The store after each job (before it when the job changed nothing), then as it is now.
  const states = points.map((p) => p.after ?? p.before ?? null);
  const labels = [...points.map((p) => day(p.created_at)), 'now'];
  const titles = [...points.map((p) => `job ${shortId(p.job_id)}, ${p.status}${p.dry_run ? ', dry run' : ''}, ${when(p.created_at)}`), 'now'];
  const series = STATES.map(([key, name]) => ({ name, values: [...states.map((s) => (s ? s[key] : null)), data.current?.[key] ?? null] }));
  const now = data.current ?? {};
  const store = lineChart({
    label: `Memories across ${points.length} jobs; now ${now.active} active, ${now.duplicate} duplicate, ${now.archived} archived`,
    series, labels, titles,
  });
  const timed = points.filter((p) => p.duration_ms !== null && p.duration_ms !== undefined);
  const durations = barChart({
    label: `Durations of ${timed.length} jobs${timed.length ? `, longest ${duration(Math.max(...timed.map((p) => p.duration_ms)))}` : ''}`,
    bars: timed.map((p) => ({ value: p.duration_ms / 1000, kind: p.status, title: `job ${shortId(p.job_id)} (${p.status})` })),
    labels: timed.map((p) => day(p.created_at)), unit: ' s',
  });
  const failures = data.failures ?? [];
  fill(section, heading,
    h('div', { class: 'charts' },
      h('div', { class: 'card', id: 'store-chart' }, h('h3', {}, 'Memories after each job'), store),
      h('div', { class: 'card', id: 'durations-chart' }, h('h3', {}, 'Job durations (seconds; failed in red)'),
        timed.length ? durations : h('p', { class: 'muted' }, 'No job finished yet.'))),
    h('h3', {}, `Failures by cause: ${failures.reduce((sum, f) => sum + f.count, 0)}`),
    failures.length ? h('table', { id: 'failures' },
      h('thead', {}, h('tr', {}, ['Cause', 'Jobs', 'Last', 'Example'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, failures.map((f) => h('tr', {},
        h('td', {}, h('b', {}, f.cause)), h('td', { class: 'num' }, f.count),
        h('td', {}, h('a', { href: `#/jobs/${f.last_job_id}`, class: 'mono' }, shortId(f.last_job_id)), ' ', h('span', { class: 'muted' }, when(f.last_at))),
        h('td', { class: 'muted' }, f.example ?? ''))))) : h('p', { class: 'muted' }, 'No failed job.'));
}
