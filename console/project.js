// One project: its counts, pause and resume, its health over time, the trigger form, its jobs
// with live progress (filtered by status, searched), the review queue.
import { api, followEvents } from './api.js';
import { TERMINAL, canRollBack, cancelButton, isActive, rollbackControl } from './actions.js';
import { badge, errorBox, fill, firstLine, h, notify, progressBar, shortId, successBox, unavailable, when } from './dom.js';
import { health } from './health.js';
import { reviewQueue } from './reviews.js';

const JOBS_SHOWN = 25;

/**
 * The trigger options as the API describes them (`ConsolidationOptions` in /openapi.json): one
 * field table in the service feeds the API's checks and this form, so the two cannot drift.
 */
let optionFields = null;
export async function loadOptionFields() {
  if (optionFields) return optionFields;
  const response = await fetch('/openapi.json');
  if (!response.ok) throw new Error(`the API's description did not load (HTTP ${response.status})`);
  const spec = await response.json();
  const properties = spec.components?.schemas?.ConsolidationOptions?.properties ?? {};
  optionFields = Object.entries(properties)
    .filter(([name]) => name !== 'dry_run')
    .map(([name, schema]) => ({ name, label: labelOf(name), ...given(schema) }));
  return optionFields;
}

/** An option's schema without the `null` that says "not given": its one type and its values. */
function given(schema) {
  const type = Array.isArray(schema.type) ? schema.type.find((kind) => kind !== 'null') : schema.type;
  const values = schema.enum?.filter((value) => value !== null);
  return { ...schema, type, ...(values ? { enum: values } : {}) };
}

function labelOf(name) {
  const words = name.replaceAll('_', ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

const isNumber = (field) => field.type === 'number' || field.type === 'integer';

/** The options the form holds, or the list of what is wrong with them. */
export function readOptions(form, fields) {
  const options = {};
  const problems = [];
  for (const field of fields) {
    const input = form.elements[field.name];
    if (!input) continue;
    if (field.type === 'boolean') {
      options[field.name] = input.checked;
    } else if (field.enum) {
      options[field.name] = input.value;
    } else if (isNumber(field)) {
      input.removeAttribute('aria-invalid');
      const raw = input.value.trim();
      if (raw === '') continue;
      const value = Number(raw);
      const whole = field.type === 'integer';
      const { minimum: min, maximum: max } = field;
      if (!Number.isFinite(value) || value < min || value > max || (whole && !Number.isInteger(value))) {
        problems.push([input, `${field.label} (${field.name}) must be ${whole ? 'a whole number' : 'a number'} from ${min} to ${max}`]);
        input.setAttribute('aria-invalid', 'true');
        continue;
      }
      options[field.name] = value;
    }
  }
  options.dry_run = form.elements.dry_run.checked;
  return { options, problems };
}

function optionInput(field, effective) {
  const id = `opt-${field.name}`;
  const current = effective[field.name] ?? field.default;
  if (field.type === 'boolean') {
    return h('label', { class: 'check', for: id, title: field.description ?? '' },
      h('input', { id, name: field.name, type: 'checkbox', checked: Boolean(current) }), field.label);
  }
  if (field.enum) {
    return h('label', { for: id, title: field.description ?? '' }, field.label,
      h('select', { id, name: field.name }, field.enum.map((value) => h('option', { value, selected: current === value }, value))));
  }
  const step = field.type === 'integer' ? 1 : 0.01;
  return h('label', { for: id, title: field.description ?? '' }, `${field.label} (${field.minimum}–${field.maximum})`,
    h('input', { id, name: field.name, type: 'number', min: field.minimum, max: field.maximum, step, inputmode: 'decimal',
      placeholder: current ?? '' }));
}

function triggerForm(project, effective, fields, onTriggered) {
  const out = h('div', { id: 'trigger-result', 'aria-live': 'polite' });
  const order = (field) => (field.type === 'boolean' ? 0 : field.enum ? 1 : 2);
  const inputs = [...fields].sort((a, b) => order(a) - order(b)).map((field) => optionInput(field, effective));
  const dryRun = h('label', { class: 'check', for: 'opt-dry_run' },
    h('input', { id: 'opt-dry_run', name: 'dry_run', type: 'checkbox', checked: true }), h('b', {}, 'Dry run'), ' (plan only, change nothing)');
  const form = h('form', { class: 'options', id: 'trigger-form', novalidate: true, 'aria-labelledby': 'trigger-heading' },
    dryRun, inputs,
    h('div', { class: 'actions' }, h('button', { type: 'submit', id: 'trigger' }, 'Trigger job')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const { options, problems } = readOptions(form, fields);
    if (problems.length) {
      fill(out, h('div', { class: 'error', role: 'alert' }, h('ul', {}, problems.map(([, text]) => h('li', {}, text)))));
      problems[0][0].focus();
      return;
    }
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      const answer = await api('POST', '/consolidation/trigger', { project_id: project.id, options });
      fill(out, successBox(`Job ${shortId(answer.job_id)} ${answer.status}${options.dry_run ? ' (dry run)' : ''}. `),
        h('a', { href: `#/jobs/${answer.job_id}` }, 'Open its result'));
      notify(`Job ${shortId(answer.job_id)} triggered`);
      onTriggered();
    } catch (error) {
      fill(out, errorBox(error));
    } finally {
      button.disabled = false;
    }
  });
  return h('section', { 'aria-labelledby': 'trigger-heading', class: 'card' },
    h('h2', { id: 'trigger-heading' }, 'Trigger a job'),
    h('p', { class: 'muted' }, 'Empty fields use the project\'s defaults (shown greyed). The API checks every option again.'),
    form, out);
}

const JOB_STATES = ['failed', 'running', 'pending', 'completed', 'rolled_back', 'cancelled'];

function jobsTable(project, signal) {
  const section = h('section', { 'aria-labelledby': 'jobs-heading' });
  const out = h('div', { 'aria-live': 'polite' });
  const bars = new Map();
  const following = new Set();
  const status = h('select', { id: 'jobs-status', name: 'status' }, h('option', { value: '' }, 'all'),
    JOB_STATES.map((state) => h('option', { value: state }, state.replace('_', ' '))));
  const search = h('input', { id: 'jobs-search', name: 'q', type: 'search', placeholder: 'job id prefix or error text', spellcheck: 'false' });
  const filters = h('form', { class: 'toolbar', id: 'jobs-filter', 'aria-label': 'Filter the jobs' },
    h('label', { for: 'jobs-status' }, 'Status ', status),
    h('label', { for: 'jobs-search' }, 'Search ', search),
    h('button', { type: 'submit', class: 'secondary' }, 'Filter'));
  const note = h('div', {});
  filters.addEventListener('submit', (event) => { event.preventDefault(); refresh(); });
  status.addEventListener('change', () => refresh());

  function follow(jobId) {
    following.add(jobId);
    followEvents(jobId, (kind, event) => {
      bars.get(jobId)?.update(event.progress, event.phase ? `${kind}: ${event.phase}` : kind);
      if (TERMINAL.has(kind)) notify(`Job ${shortId(jobId)} ${kind}`);
    }, signal)
      .catch((error) => { if (!signal.aborted) out.append(errorBox(error)); })
      .finally(() => { following.delete(jobId); if (!signal.aborted) refresh(); });
  }

  async function load() {
    const query = new URLSearchParams({ limit: JOBS_SHOWN });
    if (status.value) query.set('status', status.value);
    const q = search.value.trim();
    if (q) query.set('q', q);
    try {
      fill(note);
      return await api('GET', `/consolidation/history/${project.id}?${query}`);
    } catch (error) {
      if (!q || error.status !== 400) throw error;
      // A gateway whose history takes no search: the jobs without it, and a plain note.
      query.delete('q');
      fill(note, unavailable('searching jobs (q on GET /consolidation/history/{id})', error));
      return api('GET', `/consolidation/history/${project.id}?${query}`);
    }
  }

  // Each refresh draws only if no later one started (a filter changed meanwhile).
  let generation = 0;
  async function refresh() {
    const mine = ++generation;
    let history;
    try {
      history = await load();
    } catch (error) {
      if (mine === generation) fill(out, errorBox(error));
      return;
    }
    if (mine !== generation) return;
    const rows = history.jobs.map((job) => {
      const bar = progressBar(job.progress, `Progress of job ${shortId(job.job_id)}`);
      bar.update(job.progress, job.phase);
      bars.set(job.job_id, bar);
      const actions = h('td', {});
      if (isActive(job)) actions.append(cancelButton(job, refresh, out));
      if (canRollBack(job)) actions.append(rollbackControl(job, refresh, out));
      const c = job.counters;
      return h('tr', { 'data-job': job.job_id, 'data-status': job.status },
        h('td', {}, h('a', { href: `#/jobs/${job.job_id}`, class: 'mono' }, shortId(job.job_id))),
        h('td', {}, badge(job.status), job.dry_run ? h('span', { class: 'muted' }, ' dry run') : '',
          job.error ? h('div', { class: 'job-error' }, firstLine(job.error, 120)) : ''),
        h('td', {}, job.trigger_type),
        h('td', {}, when(job.created_at)),
        h('td', {}, bar.element),
        h('td', { class: 'num' }, `${c.memories_merged} / ${c.memories_archived} / ${c.memories_promoted} / ${c.summaries_created}`),
        h('td', { class: 'num' }, job.memories_before ?? '', job.memories_after !== null ? ` → ${job.memories_after}` : ''),
        actions);
    });
    const filtered = status.value || search.value.trim();
    fill(section,
      h('h2', { id: 'jobs-heading' }, 'Jobs'),
      filters, note,
      history.jobs.length === 0 ? h('p', { class: 'muted', id: 'no-jobs' }, filtered ? 'No job matches.' : 'No job yet.') : h('table', { id: 'jobs' },
        h('thead', {}, h('tr', {}, ['Job', 'Status', 'Trigger', 'Created', 'Progress', 'Merged / archived / promoted / syntheses', 'Active before → after', 'Actions']
          .map((title) => h('th', { scope: 'col' }, title)))),
        h('tbody', {}, rows)),
      out);
    for (const job of history.jobs) if (isActive(job) && !following.has(job.job_id)) follow(job.job_id);
  }
  return { section, refresh };
}

/** Pause or resume the project's scheduled consolidation (its `enabled` flag). */
function pauseControl(project, settings, onChange) {
  const enabled = settings.enabled ?? project.consolidation_enabled;
  const out = h('span', { id: 'pause-result', 'aria-live': 'polite' });
  const button = h('button', {
    type: 'button', class: enabled ? 'secondary' : '', id: 'pause-toggle', 'data-action': enabled ? 'pause' : 'resume',
    onclick: async () => {
      button.disabled = true;
      try {
        await api('PUT', `/consolidation/configure/${project.id}`, { enabled: !enabled });
        notify(enabled ? 'Consolidation paused' : 'Consolidation resumed');
        onChange();
      } catch (error) {
        fill(out, errorBox(error));
        button.disabled = false;
      }
    },
  }, enabled ? 'Pause consolidation' : 'Resume consolidation');
  return h('div', {}, h('span', { class: 'muted' }, 'Consolidation'),
    h('b', { id: 'consolidation-state' }, enabled ? 'enabled' : 'paused'), button, out);
}

export async function render(page, { id, signal }) {
  const [project, settings, fields] = await Promise.all([
    api('GET', `/projects/${id}`),
    api('GET', `/consolidation/configure/${id}`).catch(() => ({ effective_options: {} })),
    loadOptionFields(),
  ]);
  const jobs = jobsTable(project, signal);
  const healthSection = h('section', { id: 'health', 'aria-labelledby': 'health-heading' });
  const reviewSection = h('section', { id: 'review-queue', 'aria-labelledby': 'reviews-heading' });
  const rerender = () => {
    if (signal.aborted) return;
    page.replaceChildren();
    render(page, { id, signal }).catch((error) => page.append(errorBox(error)));
  };
  page.append(
    h('h1', {}, project.name),
    h('p', { class: 'muted mono' }, project.id),
    h('div', { class: 'stats card' },
      h('div', {}, h('span', { class: 'muted' }, 'Active memories'), h('b', { id: 'active-memories' }, project.active_memories)),
      h('div', {}, h('span', { class: 'muted' }, 'Embedding dimension'), h('b', {}, project.embedding_dim ?? '—')),
      h('div', {}, h('span', { class: 'muted' }, 'Sweep threshold'), h('b', {}, project.consolidation_threshold)),
      pauseControl(project, settings, rerender),
      h('div', {}, h('span', { class: 'muted' }, 'Playbook'), h('a', { href: `#/projects/${id}/playbook` }, 'Open the playbook')),
      h('div', {}, h('span', { class: 'muted' }, 'Audit'), h('a', { href: `#/audit?project_id=${id}` }, 'Admin actions'))),
    healthSection,
    triggerForm(project, settings.effective_options ?? {}, fields, () => jobs.refresh()),
    jobs.section,
    reviewSection);
  await Promise.all([jobs.refresh(), health(project, healthSection), reviewQueue(project, reviewSection)]);
}
