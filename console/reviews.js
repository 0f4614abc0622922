// A project's review queue, each review judged where it is settled: both memories' texts side by
// side with the differing values marked, their ages, reuse counts and provenance; approve or
// reject one, or every open review matching a filter after a preview of how many it settles.
import { api, isMissingRoute } from './api.js';
import { age, errorBox, fill, h, memoryLink, notify, shortId, successBox, unavailable, when } from './dom.js';

const SHOWN = 50;

/** The memory a review names, as item 3 of issue 25 serves it, or read from GET /memories/{id}. */
async function side(embedded, id) {
  if (embedded !== undefined) return embedded;
  try {
    const m = await api('GET', `/memories/${id}`);
    return {
      id: m.id, text: m.execution_summary, created_at: m.created_at, reuse_count: m.reused_count,
      status: m.is_archived ? `archived (${m.archive_reason ?? ''})` : m.is_duplicate ? 'duplicate' : 'active',
      provenance: { task_id: m.task_id, memory_type: m.memory_type, tags: m.tags, files: m.files, sources: m.provenance?.sources },
    };
  } catch (error) {
    if (error.status === 404) return null;
    throw error;
  }
}

const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The text with each of `values` marked where it stands as a whole word or number. */
export function marked(text, values) {
  const wanted = (values ?? []).map(String).filter((v) => v.trim());
  if (!wanted.length) return [text];
  const pattern = new RegExp(`(?<![\\w.])(${wanted.sort((a, b) => b.length - a.length).map(escape).join('|')})(?![\\w])`, 'gi');
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    parts.push(text.slice(last, match.index), h('mark', { class: 'value' }, match[0]));
    last = match.index + match[0].length;
  }
  parts.push(text.slice(last));
  return parts;
}

function provenanceLine(provenance) {
  if (!provenance || typeof provenance !== 'object') return '';
  const parts = Object.entries(provenance)
    .filter(([, value]) => value !== null && value !== undefined && !(Array.isArray(value) && value.length === 0))
    .map(([key, value]) => `${key.replaceAll('_', ' ')}: ${Array.isArray(value) ? value.map((v) => (String(v).length === 36 ? shortId(v) : v)).join(', ') : value}`);
  return parts.length ? h('div', { class: 'muted provenance' }, parts.join(' · ')) : '';
}

function memoryCard(title, memory, id, values) {
  if (!memory) {
    return h('section', { 'aria-label': title }, h('h3', {}, title), h('p', { class: 'muted' }, 'This memory is gone (', shortId(id), ').'));
  }
  return h('section', { 'aria-label': title },
    h('h3', {}, title, ' ', memoryLink(memory.id ?? id)),
    h('p', { class: 'text' }, marked(memory.text ?? '', values)),
    h('div', { class: 'muted' }, `created ${age(memory.created_at)} (${when(memory.created_at)}) · reused ${memory.reuse_count ?? 0} times · ${memory.status ?? ''}`),
    provenanceLine(memory.provenance));
}

function filterQuery(filter) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(filter)) if (value !== undefined && value !== '') query.set(key, value);
  return query;
}

function readFilter(form) {
  const filter = {};
  const kind = form.elements.kind.value;
  if (kind) filter.kind = kind;
  for (const key of ['min_similarity', 'max_similarity']) {
    const raw = form.elements[key].value.trim();
    if (raw !== '') filter[key] = Number(raw);
  }
  const job = form.elements.job_id.value.trim();
  if (job) filter.job_id = job;
  return filter;
}

/** The open reviews of a project, in `section`; `filter` narrows them (kind, similarity, job). */
export async function reviewQueue(project, section, filter = {}) {
  const heading = h('h2', { id: 'reviews-heading' }, 'Open reviews');
  const out = h('div', { id: 'reviews-result', 'aria-live': 'polite' });
  const query = filterQuery({ status: 'open', limit: SHOWN, ...filter });
  let page;
  let filtered = Object.keys(filter).length > 0;
  try {
    page = await api('GET', `/projects/${project.id}/reviews?${query}`);
  } catch (error) {
    if (!filtered || error.status !== 400) { fill(section, heading, errorBox(error)); return; }
    // A gateway without the list's filters: the whole queue, and the filter still settles.
    page = await api('GET', `/projects/${project.id}/reviews?status=open&limit=${SHOWN}`);
    out.append(unavailable('filtering the list (kind, similarity, job)', error));
    filtered = false;
  }
  const reload = (next = filter) => reviewQueue(project, section, next);
  const decide = (review, verdict) => h('button', {
    type: 'button', class: verdict === 'approve' ? '' : 'secondary', 'data-action': verdict,
    onclick: async (event) => {
      event.target.disabled = true;
      try {
        await api('POST', `/reviews/${review.review_id}/${verdict}`);
        notify(`Review ${verdict === 'approve' ? 'approved' : 'rejected'}`);
        await reload();
      } catch (error) {
        fill(out, errorBox(error));
        event.target.disabled = false;
      }
    },
  }, verdict === 'approve' ? 'Approve' : 'Reject');
  const reviews = page.reviews ?? [];
  const items = await Promise.all(reviews.map(async (review) => {
    const [older, newer] = await Promise.all([side(review.older, review.older_memory_id), side(review.newer, review.newer_memory_id)]);
    const difference = review.difference ?? {};
    return h('li', { class: 'review card', 'data-review': review.review_id },
      h('div', {}, h('b', {}, review.kind.replaceAll('_', ' ')), ` · similarity ${Number(review.similarity).toFixed(3)} · `,
        `${difference.kind ?? 'value'}: `, h('mark', { class: 'value' }, JSON.stringify(difference.left ?? '')), ' → ',
        h('mark', { class: 'value' }, JSON.stringify(difference.right ?? '')),
        review.job_id ? [' · job ', h('a', { href: `#/jobs/${review.job_id}`, class: 'mono' }, shortId(review.job_id))] : '',
        ` · opened ${age(review.created_at)}`),
      h('div', { class: 'compare' },
        memoryCard('Older', older, review.older_memory_id, difference.left),
        memoryCard('Newer', newer, review.newer_memory_id, difference.right)),
      h('div', { class: 'actions' },
        h('span', { class: 'muted' }, review.suggestion === 'supersede' ? 'Approve: the newer supersedes the older (archived). ' : `${review.suggestion}: `),
        decide(review, 'approve'), ' ', decide(review, 'reject')));
  }));
  fill(section, heading, settleForm(project, filter, filtered, reload, out), out,
    items.length ? h('ul', { class: 'plain', id: 'reviews' }, items) : h('p', { class: 'muted' }, 'Nothing to review.'),
    page.next_cursor ? h('p', { class: 'muted' }, `The first ${SHOWN} are shown; settle by filter to reach the rest.`) : '');
}

/** The filter, "Show" (the list), "Preview" (how many a settlement would settle) and the settle buttons. */
function settleForm(project, filter, filtered, reload, out) {
  const form = h('form', { class: 'options filters', id: 'review-filter', novalidate: true, 'aria-label': 'Filter the open reviews' },
    h('label', { for: 'review-kind' }, 'Kind',
      h('select', { id: 'review-kind', name: 'kind' }, h('option', { value: '' }, 'any'),
        h('option', { value: 'possible_update', selected: filter.kind === 'possible_update' }, 'possible update'))),
    h('label', { for: 'review-min' }, 'Similarity from',
      h('input', { id: 'review-min', name: 'min_similarity', type: 'number', min: 0, max: 1, step: 0.001, value: filter.min_similarity ?? '' })),
    h('label', { for: 'review-max' }, 'to',
      h('input', { id: 'review-max', name: 'max_similarity', type: 'number', min: 0, max: 1, step: 0.001, value: filter.max_similarity ?? '' })),
    h('label', { for: 'review-job' }, 'Job id',
      h('input', { id: 'review-job', name: 'job_id', type: 'text', value: filter.job_id ?? '', placeholder: 'any job', spellcheck: 'false' })));
  const settleOut = h('div', { id: 'settle-result', 'aria-live': 'polite' });
  const show = h('button', { type: 'submit', class: 'secondary', id: 'review-show' }, 'Show');
  form.addEventListener('submit', (event) => { event.preventDefault(); reload(readFilter(form)); });
  const preview = h('button', {
    type: 'button', id: 'settle-preview',
    onclick: async () => {
      const chosen = readFilter(form);
      try {
        const [approve, reject] = ['approve', 'reject'].map((decision) => settleButton(project, decision, chosen, reload, settleOut));
        const answer = await api('POST', `/projects/${project.id}/reviews/settle`, { decision: 'approve', ...chosen, preview: true });
        fill(settleOut, h('p', { id: 'settle-matching' }, h('b', {}, `${answer.matching} open review(s)`), ' match this filter. '),
          answer.matching ? [approve(answer.matching), ' ', reject(answer.matching)] : '');
      } catch (error) {
        fill(settleOut, isMissingRoute(error) ? unavailable('settling every review matching a filter (POST /projects/{id}/reviews/settle)', error) : errorBox(error));
      }
    },
  }, 'Preview settling all matching…');
  return h('div', { class: 'card' }, form, h('div', { class: 'actions' }, show, ' ', preview,
    filtered ? h('span', { class: 'muted' }, ' Filtered.') : ''), settleOut);
}

function settleButton(project, decision, filter, reload, out) {
  return (count) => h('button', {
    type: 'button', class: decision === 'approve' ? '' : 'danger', 'data-action': `settle-${decision}`,
    onclick: async (event) => {
      event.target.disabled = true;
      try {
        // The gateway settles at most 500 a call: go on while a call settles some and more remain.
        const answer = { settled: 0, skipped: [], remaining: 0 };
        for (;;) {
          const part = await api('POST', `/projects/${project.id}/reviews/settle`, { decision, ...filter });
          answer.settled += part.settled;
          answer.skipped = part.skipped ?? [];
          answer.remaining = part.remaining ?? 0;
          if (!answer.remaining || !part.settled) break;
        }
        const skipped = answer.skipped;
        const text = `${answer.settled} review(s) ${decision === 'approve' ? 'approved' : 'rejected'}${skipped.length ? `, ${skipped.length} skipped` : ''}${answer.remaining ? `, ${answer.remaining} still open` : ''}.`;
        notify(text);
        await reload(filter);
        const result = document.getElementById('reviews-result');
        if (result) {
          fill(result, successBox(text), skipped.length
            ? h('ul', {}, skipped.map((s) => h('li', {}, h('span', { class: 'mono' }, shortId(s.review_id)), `: ${s.reason}`))) : '');
        }
      } catch (error) {
        fill(out, errorBox(error));
        event.target.disabled = false;
      }
    },
  }, `${decision === 'approve' ? 'Approve' : 'Reject'} all ${count}`);
}
