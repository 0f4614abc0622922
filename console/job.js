// One job: live progress, then its cost (phase timeline) and its result as before/after — each
// cluster's members beside the merged text — syntheses, archives, promotions and the audit rows.
import { api, followEvents, isMissingRoute } from './api.js';
import { stackedBar } from './chart.js';
import { TERMINAL, canRollBack, cancelButton, isActive, rollbackControl } from './actions.js';
import {
  badge, duration, errorBox, fill, firstLine, h, memoryLink, notify, percent, progressBar, shortId, successBox, unavailable, when,
} from './dom.js';

const CHANGES_PAGE = 100;
const MEMORIES_SHOWN = 100;

const fixed = (value, digits = 2) => (value === undefined || value === null ? '—' : Number(value).toFixed(digits));

async function memoryText(id) {
  const detail = await api('GET', `/memories/${id}`);
  return detail;
}

function memoryBlock(memory, id, mark) {
  return h('div', { class: 'member' },
    h('div', { class: 'muted' }, mark ? h('b', { class: 'source-mark' }, `[${mark}] `) : '', memoryLink(id ?? memory.id), ' ', memory.memory_type ?? ''),
    h('p', { class: 'text' }, memory.execution_summary ?? ''));
}

// The merged text unit by unit, each followed by the marks of the sources that state it (the
// one it was taken from first), when the merge recorded them.
function mergedText(text, units, sources) {
  if (!units?.length) return h('p', { class: 'text merged' }, text ?? '');
  const mark = (id) => sources.indexOf(id) + 1;
  return h('p', { class: 'text merged units' }, units.map((unit, i) => [
    i ? ' ' : '',
    h('span', { class: 'unit', title: `stated by ${unit.sources.map((id) => `[${mark(id)}]`).join(' ')}` },
      unit.text, h('sup', { class: 'source-mark' }, unit.sources.map((id) => `[${mark(id)}]`).join(''))),
  ]));
}

/** What a merge deserves a second look for (the bounds of docs/clustering.md). */
export function flagsOf(merge) {
  const flags = [];
  if (merge.length_vs_longest !== undefined && merge.length_vs_longest > LONG_MERGE) flags.push(`over ${LONG_MERGE}x its longest source`);
  if (merge.coverage !== undefined && merge.coverage < 1) flags.push('coverage below 1');
  return flags;
}
const LONG_MERGE = 1.5;

/** "Unmerge…" then "Confirm unmerge": takes the consolidated memory apart (POST /memories/{id}/unmerge). */
function unmergeControl(memoryId, out) {
  const container = h('span', { class: 'unmerge' });
  const open = h('button', {
    type: 'button', class: 'secondary', 'data-action': 'unmerge', 'aria-expanded': 'false',
    onclick: () => {
      open.setAttribute('aria-expanded', 'true');
      const confirm = h('button', {
        type: 'button', class: 'danger', 'data-action': 'confirm-unmerge',
        onclick: async () => {
          confirm.disabled = true;
          try {
            const answer = await api('POST', `/memories/${memoryId}/unmerge`, { reason: 'unmerged from the console' });
            const text = `Unmerged: ${answer.restored.length} memories active again, ${answer.retired.length} retired.`;
            fill(out, successBox(text));
            notify(text);
            fill(container);
          } catch (error) {
            fill(out, errorBox(error));
            confirm.disabled = false;
          }
        },
      }, 'Confirm unmerge');
      fill(container, h('span', { class: 'muted' }, 'Its sources become active again. '), confirm);
      confirm.focus();
    },
  }, 'Unmerge…');
  container.append(open);
  return container;
}

/** A cluster, closed until opened; opening it reads the member texts. */
function cluster(merge, index, preview, writable) {
  const sources = (merge.sources ?? []).map((source) => (typeof source === 'string' ? source : source.id));
  const figures = [
    merge.coverage !== undefined ? `coverage ${fixed(merge.coverage)}` : null,
    merge.compression !== undefined ? `compression ${fixed(merge.compression)}` : null,
    merge.length_vs_longest !== undefined ? `length vs longest ${fixed(merge.length_vs_longest)}` : null,
  ].filter(Boolean).join(', ');
  const flags = flagsOf(merge);
  const body = h('div', { class: 'compare' });
  const out = h('div', { 'aria-live': 'polite' });
  const details = h('details', { class: 'cluster', 'data-cluster': index, 'data-flagged': flags.length ? 'yes' : 'no' },
    h('summary', {}, h('b', {}, `Cluster ${index + 1}`), `: ${sources.length} memories → 1`, figures ? h('span', { class: 'muted' }, ` (${figures})`) : '',
      flags.map((flag) => [' ', h('span', { class: 'flag' }, flag)]),
      h('div', { class: 'preview muted' }, preview ? firstLine(preview, 160) : '')),
    body, out);
  let loaded = false;
  details.addEventListener('toggle', async () => {
    if (!details.open || loaded) return;
    loaded = true;
    fill(body, h('p', { class: 'muted' }, 'Loading the texts…'));
    try {
      const members = await Promise.all(sources.map((id) => memoryText(id)));
      const merged = merge.memory?.execution_summary !== undefined
        ? merge.memory
        : await memoryText(merge.memory_id);
      const units = merge.units ?? merged.provenance?.merged_units;
      const canUnmerge = writable && merge.memory_id && !merged.is_archived && !merged.is_duplicate;
      fill(body,
        h('section', { 'aria-label': 'Before' }, h('h3', {}, `Before: ${members.length} memories`), members.map((m, i) => memoryBlock(m, sources[i], i + 1))),
        h('section', { 'aria-label': 'After' }, h('h3', {}, 'After: the merged memory'),
          merge.memory_id ? h('div', { class: 'muted' }, memoryLink(merge.memory_id), merged.is_archived ? ` (retired: ${merged.archive_reason ?? 'archived'})` : '')
            : h('div', { class: 'muted' }, 'not written (dry run)'),
          mergedText(merged.execution_summary, units, sources),
          figures ? h('p', { class: 'muted' }, `Kept: ${figures}`) : '',
          canUnmerge ? unmergeControl(merge.memory_id, out) : ''));
    } catch (error) {
      fill(body, errorBox(error));
      loaded = false;
    }
  });
  return details;
}

const ORDERS = {
  planned: ['as planned', () => 0],
  length: ['longest against its sources first', (a, b) => (b.merge.length_vs_longest ?? 0) - (a.merge.length_vs_longest ?? 0)],
  coverage: ['lowest coverage first', (a, b) => (a.merge.coverage ?? 1) - (b.merge.coverage ?? 1)],
  size: ['most members first', (a, b) => (b.merge.sources?.length ?? 0) - (a.merge.sources?.length ?? 0)],
};

/** The clusters with a sort order and a "flagged only" filter; each row previews its merged text. */
async function clusterList(merges, writable) {
  const previews = await Promise.all(merges.map((merge) => (merge.memory?.execution_summary !== undefined
    ? merge.memory.execution_summary
    : limited(() => memoryText(merge.memory_id).then((m) => m.execution_summary)).catch(() => ''))));
  const rows = merges.map((merge, index) => ({ merge, index, element: cluster(merge, index, previews[index], writable) }));
  const list = h('div', { id: 'clusters' });
  const order = h('select', { id: 'cluster-order', name: 'order' },
    Object.entries(ORDERS).map(([value, [label]]) => h('option', { value }, label)));
  const flaggedOnly = h('input', { type: 'checkbox', id: 'flagged-only', name: 'flagged' });
  const flagged = rows.filter((row) => flagsOf(row.merge).length).length;
  const draw = () => {
    const compare = ORDERS[order.value]?.[1] ?? ORDERS.planned[1];
    const shown = rows.filter((row) => !flaggedOnly.checked || flagsOf(row.merge).length)
      .sort((a, b) => compare(a, b) || a.index - b.index);
    fill(list, shown.map((row) => row.element));
  };
  order.addEventListener('change', draw);
  flaggedOnly.addEventListener('change', draw);
  draw();
  return h('div', {},
    h('div', { class: 'toolbar' },
      h('label', { for: 'cluster-order' }, 'Sort: ', order),
      h('label', { class: 'check', for: 'flagged-only' }, flaggedOnly, ` Flagged only (${flagged})`),
      h('span', { class: 'muted' }, `Flagged: longer than ${LONG_MERGE}x the longest source, or coverage below 1.`)),
    list);
}

// At most a few memory reads at once, so a large job's page does not flood the gateway.
const LIMIT = 6;
let running = 0;
const waiting = [];
async function limited(task) {
  if (running >= LIMIT) await new Promise((resolve) => waiting.push(resolve));
  running += 1;
  try { return await task(); } finally { running -= 1; waiting.shift()?.(); }
}

const SECTIONS = { fix: 'Fixes', gotcha: 'Gotchas', decision: 'Decisions', practice: 'Practices', fact: 'Facts' };

// A synthesis: its text (read from the memory when the result does not carry it), then its
// facts by kind, each with links to the members that state it.
async function synthesis(item) {
  let memory = item.memory;
  if (memory?.execution_summary === undefined && item.memory_id) {
    memory = await memoryText(item.memory_id).catch((error) => ({ error }));
  }
  const facts = item.facts ?? [];
  const lists = Object.entries(SECTIONS).filter(([kind]) => facts.some((f) => f.kind === kind))
    .map(([kind, title]) => h('div', {}, h('h3', {}, title), h('ul', {}, facts.filter((f) => f.kind === kind)
      .map((f) => h('li', { class: 'fact' }, f.text, ' ', h('span', { class: 'muted' }, f.members.map((m, i) => [i ? ', ' : '', memoryLink(m)])))))));
  const members = memory?.synthesized_from ?? memory?.provenance?.synthesized_from ?? [];
  return h('div', { class: 'card synthesis' },
    h('div', {}, h('b', {}, `Topic of ${members.length || '?'} memories`), ` · confidence ${fixed(item.confidence)}`,
      item.needs_review ? h('b', {}, ' · needs review') : '', item.memory_id ? [' · ', memoryLink(item.memory_id)] : ''),
    memory?.error ? errorBox(memory.error) : h('p', { class: 'text synthesis-text' }, memory?.execution_summary ?? ''),
    members.length ? h('p', { class: 'muted' }, 'From ', members.map((id, i) => [i ? ', ' : '', memoryLink(id)])) : '',
    lists.length ? h('details', {}, h('summary', {}, `Its ${facts.length} facts by kind`), lists) : '');
}

async function memoryList(ids) {
  const shown = ids.slice(0, MEMORIES_SHOWN);
  const memories = await Promise.all(shown.map((id) => memoryText(id).catch(() => ({ id, execution_summary: '' }))));
  return h('ul', { class: 'plain' }, memories.map((m, i) => h('li', {}, memoryLink(shown[i]), ' ', firstLine(m.execution_summary))),
    ids.length > shown.length ? h('li', { class: 'muted' }, `and ${ids.length - shown.length} more`) : '');
}

function auditTable(jobId) {
  const section = h('section', { 'aria-labelledby': 'audit-heading' }, h('h2', { id: 'audit-heading' }, 'Audit rows'));
  const tbody = h('tbody', {});
  const more = h('div', {});
  async function page(cursor) {
    try {
      const answer = await api('GET', `/consolidation/jobs/${jobId}/changes?limit=${CHANGES_PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      for (const change of answer.changes) {
        tbody.append(h('tr', {},
          h('td', {}, change.operation), h('td', {}, memoryLink(change.memory_id)),
          h('td', {}, change.reason ?? ''), h('td', { class: 'num' }, fixed(change.confidence)),
          h('td', {}, when(change.changed_at)), h('td', { class: 'muted' }, change.changed_by)));
      }
      fill(more, answer.next_cursor
        ? h('button', { type: 'button', class: 'secondary', onclick: () => page(answer.next_cursor) }, 'More audit rows')
        : '');
    } catch (error) {
      fill(more, errorBox(error));
    }
  }
  section.append(h('table', { id: 'audit' },
    h('thead', {}, h('tr', {}, ['Operation', 'Memory', 'Reason', 'Confidence', 'When', 'By'].map((t) => h('th', { scope: 'col' }, t)))),
    tbody), more);
  return { section, load: () => page(null) };
}

const mib = (bytes) => `${(bytes / 1048576).toFixed(1)} MiB`;
const PHASES = [['Loading', 'loading_ms'], ['Planning', 'planning_ms'], ['Applying', 'applying_ms']];

// The phases as one bar drawn to scale (inline SVG), then the figures of the cost report.
function costReport(cost) {
  const described = PHASES.map(([name, key]) => `${name} ${cost[key]} ms`).join(', ');
  const chart = stackedBar({ label: `Phases of ${cost.total_ms} ms: ${described}`, unit: ' ms',
    parts: PHASES.map(([name, key]) => ({ name, value: cost[key] })) });
  const figures = [
    ['Total', `${cost.total_ms} ms`], ['Memories / s', cost.memories_per_second],
    ['Vectors held', `${cost.vectors_mib} MiB`], ['Peak RSS (worker)', cost.peak_rss_mib === undefined ? '—' : `${cost.peak_rss_mib} MiB`],
    ['Read', mib(cost.bytes_read)], ['Written', mib(cost.bytes_written)],
    ['Model calls', cost.model.calls], ['Model tokens', cost.model.tokens],
    ...(cost.model.fallbacks ? [['Model fallbacks', cost.model.fallbacks]] : []),
    ...(cost.model.budget_spent ? [['Model budget', 'spent']] : [])];
  return h('section', { id: 'cost', 'aria-labelledby': 'cost-heading' },
    h('h2', { id: 'cost-heading' }, 'Cost'),
    h('div', { class: 'card' }, chart,
      h('div', { class: 'stats' }, figures.map(([label, value]) => h('div', {}, h('span', { class: 'muted' }, label), h('b', {}, value))))));
}

async function changesOf(jobId, operation) {
  const answer = await api('GET', `/consolidation/jobs/${jobId}/changes?operation=${operation}&limit=1000`);
  return answer.changes;
}

async function result(job, target) {
  const data = job.result ?? {};
  const dry = Boolean(data.dry_run);
  const plan = dry ? data.plan ?? {} : data;
  const merges = plan.merges ?? [];
  const syntheses = plan.syntheses ?? [];
  const archives = dry ? (plan.archives ?? []).map((a) => a.memory_id) : (await changesOf(job.job_id, 'archive')).map((c) => c.memory_id);
  const promotions = dry
    ? (plan.promotions ?? []).map((p) => ({ category: p.category, content: p.content, memory_id: p.memory_id }))
    : (await changesOf(job.job_id, 'promote')).map((c) => ({ ...(c.new_state ?? {}), memory_id: c.memory_id }))
      .filter((p) => !p.followed);
  const audit = auditTable(job.job_id);
  fill(target,
    h('h2', { id: 'clusters-heading' }, `Before / after: ${merges.length} clusters${dry ? ' (planned, nothing written)' : ''}`),
    merges.length ? await clusterList(merges, !dry && job.status === 'completed') : h('p', { class: 'muted' }, 'No cluster merged.'),
    h('h2', {}, `Syntheses: ${syntheses.length}`),
    syntheses.length ? await Promise.all(syntheses.map(synthesis)) : h('p', { class: 'muted' }, 'None.'),
    h('h2', {}, `Archived: ${archives.length}`),
    archives.length ? await memoryList(archives) : h('p', { class: 'muted' }, 'None.'),
    h('h2', {}, `Promoted to the playbook: ${promotions.length}`),
    promotions.length
      ? h('ul', { class: 'plain' }, promotions.map((p) => h('li', {}, h('b', {}, `[${p.category ?? ''}] `), firstLine(p.content, 200), ' ', p.memory_id ? memoryLink(p.memory_id) : '')))
      : h('p', { class: 'muted' }, 'None.'),
    dry ? h('p', { class: 'muted' }, 'A dry run writes no audit rows.') : audit.section);
  if (!dry) await audit.load();
}

/** "Apply this plan" on a completed dry run: a new job that applies exactly its plan. */
function applyPlanButton(job, out) {
  return h('button', {
    type: 'button', 'data-action': 'apply-plan',
    onclick: async (event) => {
      event.target.disabled = true;
      try {
        const answer = await api('POST', `/consolidation/jobs/${job.job_id}/apply`);
        fill(out, successBox(`Job ${shortId(answer.job_id)} ${answer.status}: it applies this plan, leaving out what changed since. `),
          h('a', { href: `#/jobs/${answer.job_id}`, id: 'applied-job' }, 'Open the job'));
        notify(`Plan applied by job ${shortId(answer.job_id)}`);
      } catch (error) {
        fill(out, isMissingRoute(error) ? unavailable('applying a reviewed plan (POST /consolidation/jobs/{id}/apply)', error) : errorBox(error));
        event.target.disabled = false;
      }
    },
  }, 'Apply this plan');
}

/** The plan a job applied (`applied_plan`): how much, and the changes it left out and why. */
function appliedPlan(plan) {
  const leftOut = plan.left_out ?? [];
  return h('section', { id: 'applied-plan', class: 'card', 'aria-labelledby': 'applied-plan-heading' },
    h('h2', { id: 'applied-plan-heading' }, 'Applied plan'),
    h('p', {}, 'The plan of dry run ', h('a', { href: `#/jobs/${plan.dry_run_id}`, class: 'mono' }, shortId(plan.dry_run_id)),
      `: ${plan.applied} change(s) applied, ${leftOut.length} left out.`),
    leftOut.length ? h('ul', { class: 'plain' }, leftOut.map((item) => h('li', {}, h('b', {}, item.kind), ' ',
      (item.memory_ids ?? []).map((m, i) => [i ? ', ' : '', memoryLink(m)]), h('span', { class: 'muted' }, ` — ${item.reason}`)))) : '');
}

/** The job's timeline: phases with durations, attempts and worker, events as they came. */
async function timeline(job, section) {
  const heading = h('h2', { id: 'timeline-heading' }, 'Timeline');
  let data;
  try {
    data = await api('GET', `/consolidation/jobs/${job.job_id}/timeline`);
  } catch (error) {
    if (!isMissingRoute(error)) { fill(section, heading, errorBox(error)); return; }
    // An older gateway: the phases the result recorded, the attempts, and a plain note.
    const timings = job.result?.timings_ms ?? job.result?.plan?.timings_ms;
    fill(section, heading,
      h('p', {}, `Attempts: ${job.attempts} · created ${when(job.created_at)} · started ${when(job.started_at) || '—'} · finished ${when(job.completed_at) || '—'}`),
      timings ? phaseChart(Object.entries(timings).filter(([name]) => name !== 'total').map(([name, ms]) => ({ name, ms }))) : '',
      unavailable('the job\'s events and worker (GET /consolidation/jobs/{id}/timeline)', error));
    return;
  }
  const events = data.events ?? [];
  const took = data.started_at && data.finished_at ? duration(new Date(data.finished_at) - new Date(data.started_at)) : '—';
  fill(section, heading,
    h('div', { class: 'stats card' },
      [['Attempts', data.attempts], ['Worker', data.worker_id ?? '—'], ['Started', when(data.started_at) || '—'],
        ['Finished', when(data.finished_at) || '—'], ['Took', took]]
        .map(([label, value]) => h('div', {}, h('span', { class: 'muted' }, label), h('b', { class: label === 'Worker' ? 'mono' : '' }, value)))),
    (data.phases ?? []).length ? phaseChart(data.phases) : h('p', { class: 'muted' }, 'No phase timings yet (they come with the job\'s end).'),
    (data.steps ?? []).some((step) => step.ms > 0) ? [h('h3', {}, 'Planning, step by step'), phaseChart(data.steps, 'job-steps')] : '',
    h('h3', {}, `Events: ${events.length}`),
    events.length ? h('table', { id: 'job-events' },
      h('thead', {}, h('tr', {}, ['#', 'At', 'Event', 'Phase', 'Progress', 'Error'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, events.map((e) => h('tr', {}, h('td', { class: 'num muted' }, e.sequence ?? ''), h('td', {}, when(e.at)), h('td', {}, e.kind),
        h('td', {}, e.phase ?? ''),
        h('td', { class: 'num' }, e.progress === null || e.progress === undefined ? '' : percent(e.progress)),
        h('td', { class: 'job-error' }, e.error ?? '')))))
      : h('p', { class: 'muted' }, 'No event kept (the event stream keeps them for a while only).'));
}

function phaseChart(phases, id = 'job-phases') {
  const total = phases.reduce((sum, p) => sum + (p.ms || 0), 0);
  return h('div', { class: 'card', id }, stackedBar({
    label: `Phases of ${duration(total)}: ${phases.map((p) => `${p.name} ${duration(p.ms)}`).join(', ')}`,
    unit: ' ms', parts: phases.map((p) => ({ name: p.name, value: p.ms })),
  }));
}

export async function render(page, { id, signal }) {
  const job = await api('GET', `/consolidation/status/${id}`);
  const out = h('div', { id: 'job-actions-result', 'aria-live': 'polite' });
  const rerender = () => {
    if (signal.aborted) return;
    page.replaceChildren();
    render(page, { id, signal }).catch((error) => page.append(errorBox(error)));
  };
  const bar = progressBar(job.progress, `Progress of job ${shortId(id)}`);
  bar.update(job.progress, job.phase);
  const actions = h('div', { class: 'actions' });
  if (isActive(job)) actions.append(cancelButton(job, rerender, out));
  if (canRollBack(job)) actions.append(rollbackControl(job, rerender, out));
  if (job.status === 'completed' && job.dry_run) actions.append(applyPlanButton(job, out));
  const c = job.counters;
  const timelineSection = h('section', { id: 'timeline', 'aria-labelledby': 'timeline-heading' });
  page.append(
    h('h1', {}, `Job ${shortId(id)}`),
    h('p', {}, badge(job.status), job.dry_run ? ' dry run · ' : ' ', `${job.trigger_type} by ${job.triggered_by} · `,
      h('a', { href: `#/projects/${job.project_id}` }, 'project'), ` · created ${when(job.created_at)}`),
    h('div', { class: 'card', id: 'job-progress' }, bar.element),
    h('div', { class: 'stats card' },
      [['Merged', c.memories_merged], ['Archived', c.memories_archived], ['Promoted', c.memories_promoted], ['Syntheses', c.summaries_created],
      ['Active before', job.memories_before ?? '—'], ['Active after', job.memories_after ?? '—']].map(([label, value]) =>
      h('div', {}, h('span', { class: 'muted' }, label), h('b', {}, value)))),
    job.error ? errorBox({ code: 'job', message: job.error }) : '',
    actions, out,
    job.result?.applied_plan ? appliedPlan(job.result.applied_plan) : '',
    timelineSection,
    job.result?.cost ? costReport(job.result.cost) : '');
  const timelineLoaded = timeline(job, timelineSection);
  const resultSection = h('section', { id: 'result' });
  page.append(resultSection);
  if (isActive(job)) {
    fill(resultSection, h('p', { class: 'muted' }, 'The result appears when the job ends.'));
    followEvents(id, (kind, event) => {
      bar.update(event.progress, event.phase ? `${kind}: ${event.phase}` : kind);
      if (TERMINAL.has(kind)) notify(`Job ${shortId(id)} ${kind}`);
    }, signal).catch((error) => { if (!signal.aborted) out.append(errorBox(error)); }).finally(rerender);
    await timelineLoaded;
    return;
  }
  if (job.status === 'completed' || job.status === 'rolled_back') await result(job, resultSection);
  await timelineLoaded;
}
