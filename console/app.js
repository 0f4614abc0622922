// The console's entry: the token, the hash router, and one page module per view.
import { token } from './api.js';
import { errorBox, fill, h, notify } from './dom.js';
import * as projects from './projects.js';
import * as project from './project.js';
import * as job from './job.js';
import * as memory from './memory.js';
import * as playbook from './playbook.js';
import * as audit from './audit.js';
import * as workers from './workers.js';

const UUID = '([0-9a-fA-F-]{36})';
const ROUTES = [
  [new RegExp('^#?/?$'), projects.render],
  [new RegExp(`^#/projects/${UUID}$`), project.render],
  [new RegExp(`^#/projects/${UUID}/playbook$`), playbook.render],
  [new RegExp(`^#/jobs/${UUID}$`), job.render],
  [new RegExp(`^#/memories/${UUID}$`), memory.render],
  [new RegExp('^#/audit(?:\\?(.*))?$'), (page, context) => audit.render(page, { ...context, query: context.id })],
  [new RegExp('^#/workers$'), workers.render],
];

let current = null;

function session() {
  const box = document.getElementById('session');
  if (!token.get()) {
    fill(box);
    return;
  }
  fill(
    box,
    h('span', { class: 'muted' }, 'Token set for this tab'),
    h('button', { type: 'button', class: 'secondary', id: 'forget-token', onclick: () => { token.clear(); route(); } },
      'Forget token'),
  );
}

function tokenForm(main) {
  const input = h('textarea', { id: 'token', name: 'token', required: true, autocomplete: 'off', spellcheck: 'false',
    'aria-describedby': 'token-help' });
  const form = h('form', { class: 'token-form card', id: 'token-form' },
    h('h1', {}, 'Sign in'),
    h('label', { for: 'token' }, 'Admin token (JWT)'),
    input,
    h('p', { id: 'token-help', class: 'muted' },
      'Paste the token that `consolidator all` printed, or the output of `consolidator token`. ',
      'It is kept in this tab only (sessionStorage) and sent as a bearer header, never in a URL.'),
    h('div', {}, h('button', { type: 'submit' }, 'Use token')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!input.value.trim()) return;
    token.set(input.value);
    route();
  });
  fill(main, form);
  input.focus();
}

async function route() {
  current?.abort();
  current = new AbortController();
  notify('');
  const main = document.getElementById('main');
  session();
  if (!token.get()) {
    tokenForm(main);
    return;
  }
  const hash = location.hash || '#/';
  const match = ROUTES.map(([pattern, render]) => [hash.match(pattern), render]).find(([m]) => m);
  fill(main, h('p', { class: 'muted' }, 'Loading…'));
  if (!match) {
    fill(main, h('h1', {}, 'Not found'), h('p', {}, 'No page at ', h('code', {}, hash), '. ', h('a', { href: '#/' }, 'Projects')));
    return;
  }
  const [m, render] = match;
  const page = h('div', {});
  try {
    await render(page, { id: m[1], signal: current.signal });
    fill(main, page);
  } catch (error) {
    fill(main, page, errorBox(error));
  }
  main.querySelector('h1')?.setAttribute('tabindex', '-1');
  main.querySelector('h1')?.focus({ preventScroll: true });
}

window.addEventListener('hashchange', route);
route();
