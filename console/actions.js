// The buttons that change a job: cancel (pending or running) and roll back (completed, not a
// dry run). Each shows the API's answer, its error words included, in `out`.
import { api } from './api.js';
import { errorBox, fill, h, memoryLink, notify, successBox } from './dom.js';

const ROLLBACK_POLL_MS = 500;
const ROLLBACK_POLLS = 60;

export function cancelButton(job, onDone, out) {
  return h('button', {
    type: 'button', class: 'danger', 'data-action': 'cancel', 'aria-label': `Cancel job ${job.job_id}`,
    onclick: async (event) => {
      event.target.disabled = true;
      try {
        await api('POST', `/consolidation/jobs/${job.job_id}/cancel`);
        fill(out, successBox('Cancel requested: the job stops at its next phase boundary.'));
        notify('Cancel requested');
        onDone();
      } catch (error) {
        fill(out, errorBox(error));
        event.target.disabled = false;
      }
    },
  }, 'Cancel');
}

async function settle(rollback) {
  let current = rollback;
  for (let i = 0; i < ROLLBACK_POLLS && (current.status === 'pending' || current.status === 'running'); i += 1) {
    await new Promise((resolve) => setTimeout(resolve, ROLLBACK_POLL_MS));
    current = await api('GET', `/consolidation/rollback/${rollback.rollback_id}`);
  }
  return current;
}

/** "Roll back…" opens a reason field and a confirm button; nothing happens on the first click. */
export function rollbackControl(job, onDone, out) {
  const container = h('span', { class: 'rollback' });
  const open = h('button', {
    type: 'button', class: 'secondary', 'data-action': 'rollback', 'aria-expanded': 'false',
    onclick: () => {
      open.setAttribute('aria-expanded', 'true');
      const reason = h('input', { type: 'text', name: 'reason', maxlength: 256, 'aria-label': 'Reason for the rollback',
        placeholder: 'reason (optional)' });
      const confirm = h('button', {
        type: 'button', class: 'danger', 'data-action': 'confirm-rollback',
        onclick: async () => {
          confirm.disabled = true;
          try {
            const body = { consolidation_id: job.job_id };
            if (reason.value.trim()) body.reason = reason.value.trim();
            const result = await settle(await api('POST', '/consolidation/rollback', body));
            const text = result.status === 'completed'
              ? `Rolled back: ${result.memories_restored} memories restored, ${result.memories_deleted} deleted.`
              : `Rollback ${result.status}${result.error ? `: ${result.error}` : ''}`;
            fill(out, result.status === 'completed' ? successBox(text) : errorBox({ message: text }));
            if (result.conflicts?.length) {
              out.append(h('p', {}, 'Changed since the job (the conflicts): ',
                result.conflicts.map((id, i) => [i ? ', ' : '', memoryLink(id)])));
            }
            if (result.warnings?.length) out.append(h('ul', {}, result.warnings.map((w) => h('li', {}, w))));
            notify(text);
            onDone();
          } catch (error) {
            fill(out, errorBox(error));
            confirm.disabled = false;
          }
        },
      }, 'Confirm roll back');
      fill(container, reason, ' ', confirm);
      reason.focus();
    },
  }, 'Roll back…');
  container.append(open);
  return container;
}

export const isActive = (job) => job.status === 'pending' || job.status === 'running';
export const canRollBack = (job) => job.status === 'completed' && !job.dry_run;
export const TERMINAL = new Set(['completed', 'failed', 'cancelled', 'rolled_back']);
