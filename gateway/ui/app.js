/*
 * app.js - the Switchyard web console: one page, plain JavaScript, no build.
 *
 * Routes live in the URL fragment (#/jobs?status=dead&error=timeout), so a
 * filtered view is a link that can be shared. The API key is kept in
 * sessionStorage (this tab only) and sent as a Bearer token. Every text
 * from the API goes into the page through textContent or attributes set by
 * the DOM (el() below), never as HTML, and the gateway's
 * Content-Security-Policy allows no inline script: a job error holding
 * <script> shows as those characters. Views refresh themselves by polling.
 */
'use strict';

const KEY_STORAGE = 'yard.apiKey';
const POLL_MS = 3000;
const THROUGHPUT_WINDOW_MIN = 5;
const FINAL = ['succeeded', 'dead', 'cancelled'];
const STATUSES = ['queued', 'scheduled', 'running', 'succeeded', 'failed', 'dead', 'cancelled'];

const state = { who: null, timer: null, view: null, dlqSelected: new Set() };

/* ---- DOM helpers: text only, never HTML ---------------------------------- */

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (name === 'dataset') Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function show(...nodes) {
  const main = document.getElementById('main');
  main.replaceChildren(...nodes);
}

function problem(text) {
  document.getElementById('problem').textContent = text || '';
}

function statusBadge(status) {
  return el('span', { class: 'status status-' + status, dataset: { status } }, status);
}

function fmtTime(t) {
  if (!t) return '';
  const d = new Date(t);
  return isNaN(d) ? String(t) : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function fmtJSON(v) {
  return v === null || v === undefined ? '(none)' : JSON.stringify(v, null, 2);
}

function can(scope) {
  const s = (state.who && state.who.scopes) || [];
  return s.includes('admin') || s.includes(scope);
}

/* ---- API ------------------------------------------------------------------ */

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || ('HTTP ' + status));
    this.status = status;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: 'Bearer ' + (sessionStorage.getItem(KEY_STORAGE) || '') };
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  let json = null;
  try { json = await res.json(); } catch (e) { json = null; }
  if (res.status === 401) {
    sessionStorage.removeItem(KEY_STORAGE);
    state.who = null;
    location.hash = '#/signin';
    throw new ApiError(401, json);
  }
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

/* A GET of a route another part of Switchyard may not serve yet: null on 404. */
async function optionalGet(path) {
  try {
    return await api('GET', path);
  } catch (e) {
    if (e.status === 404 || e.status === 405) return null;
    throw e;
  }
}

function notAvailable(what) {
  return el('p', { class: 'notice', id: 'not-available' },
    what + ' are not available on this gateway (the route answered 404).');
}

/* ---- routing ---------------------------------------------------------------- */

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/queues';
  const [path, query] = raw.split('?');
  return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query || '') };
}

const routes = {
  signin: viewSignIn,
  queues: viewQueues,
  jobs: viewJobs,
  job: viewJob,
  dlq: viewDlq,
  workflows: viewWorkflows,
  workflow: viewWorkflow,
  schedules: viewSchedules,
};

async function route() {
  clearInterval(state.timer);
  state.timer = null;
  problem('');
  const { parts, params } = parseHash();
  const page = parts[0] in routes ? parts[0] : 'queues';
  const signedIn = !!sessionStorage.getItem(KEY_STORAGE);
  document.getElementById('nav').hidden = !signedIn;
  document.getElementById('signout').hidden = !signedIn;
  if (!signedIn && page !== 'signin') {
    location.hash = '#/signin';
    return;
  }
  if (signedIn && !state.who) {
    try {
      state.who = await api('GET', '/v1/whoami');
    } catch (e) {
      if (e.status !== 401) problem('Cannot reach the gateway: ' + e.message);
      return;
    }
  }
  document.getElementById('who').textContent = state.who
    ? (state.who.name || 'anonymous') + ' (' + state.who.scopes.join(', ') + ')' : '';
  const section = { job: 'jobs', workflow: 'workflows' }[page] || page;
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('current', a.dataset.page === section);
  const view = { refresh: null };
  state.view = view;
  try {
    await routes[page](view, parts.slice(1), params);
  } catch (e) {
    if (e.status !== 401) problem(e.message);
  }
  if (view.refresh && state.view === view) {
    state.timer = setInterval(async () => {
      if (document.hidden || state.view !== view) return;
      try {
        await view.refresh();
        problem('');
        document.getElementById('updated').textContent = 'Updated ' + new Date().toLocaleTimeString();
      } catch (e) {
        if (e.status !== 401) problem('Refresh failed: ' + e.message);
      }
    }, POLL_MS);
  }
}

/* ---- sign in ---------------------------------------------------------------- */

function viewSignIn() {
  const input = el('input', { type: 'password', id: 'api-key', name: 'api-key', autocomplete: 'off', placeholder: 'yk_…', required: true });
  const msg = el('p', { id: 'signin-error', role: 'alert' });
  const form = el('form', {
    class: 'signin', id: 'signin-form',
    onsubmit: async (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(KEY_STORAGE, input.value.trim());
      state.who = null;
      try {
        state.who = await api('GET', '/v1/whoami');
        location.hash = '#/queues';
      } catch (e) {
        sessionStorage.removeItem(KEY_STORAGE);
        msg.textContent = e.status === 401 ? 'That API key is not valid.' : 'Cannot sign in: ' + e.message;
        if (location.hash !== '#/signin') location.hash = '#/signin';
      }
    },
  },
  el('h2', {}, 'Sign in'),
  el('label', { for: 'api-key' }, 'API key'), input,
  el('button', { type: 'submit', class: 'primary', id: 'signin-button' }, 'Sign in'),
  msg,
  el('p', {}, 'The key stays in this browser tab only (sessionStorage) and is sent to this gateway as a Bearer token.'));
  show(form);
  input.focus();
}

function signOut() {
  sessionStorage.removeItem(KEY_STORAGE);
  state.who = null;
  location.hash = '#/signin';
}

/* ---- queues ------------------------------------------------------------------ */

/* Throughput is counted from the newest jobs of each queue: at most
 * THROUGHPUT_SAMPLE of them (each comes whole, payload and all), re-read
 * every THROUGHPUT_EVERY polls; past the sample it shows "≥". */
const THROUGHPUT_SAMPLE = 100;
const THROUGHPUT_EVERY = 5;

async function viewQueues(view) {
  const body = el('tbody', { id: 'queues-body' });
  show(el('h2', {}, 'Queues'),
    el('table', { id: 'queues' },
      el('thead', {}, el('tr', {}, el('th', {}, 'Queue'), el('th', { class: 'num' }, 'Pending'),
        el('th', { class: 'num' }, 'In flight'), el('th', { class: 'num' }, 'Dead'),
        el('th', { class: 'num' }, 'Finished / min (last ' + THROUGHPUT_WINDOW_MIN + ' min)'))),
      body),
    el('p', {}, 'Pending, in flight and dead come from JetStream. Throughput is counted in the browser from the ' +
      THROUGHPUT_SAMPLE + ' newest jobs of each queue that finished in the window.'));
  let polls = 0;
  const rates = new Map();
  const throughput = async (name) => {
    const since = new Date(Date.now() - THROUGHPUT_WINDOW_MIN * 60000);
    const page = await api('GET', '/v1/jobs?limit=' + THROUGHPUT_SAMPLE + '&queue=' + encodeURIComponent(name) + '&since=' + encodeURIComponent(since.toISOString()));
    const done = page.jobs.filter((j) => j.finished_at && new Date(j.finished_at) >= since).length;
    const rate = (done / THROUGHPUT_WINDOW_MIN).toFixed(1);
    return page.next_cursor ? '≥ ' + rate : rate;
  };
  view.refresh = async () => {
    const doc = await api('GET', '/v1/queues');
    if (polls++ % THROUGHPUT_EVERY === 0) {
      const found = await Promise.all(doc.queues.map((q) => throughput(q.name)));
      doc.queues.forEach((q, i) => rates.set(q.name, found[i]));
    }
    body.replaceChildren(...doc.queues.map((q) => el('tr', { dataset: { queue: q.name } },
      el('td', {}, el('a', { href: '#/jobs?queue=' + encodeURIComponent(q.name) }, q.name)),
      el('td', { class: 'num' }, q.pending), el('td', { class: 'num' }, q.in_flight),
      el('td', { class: 'num' }, q.dead), el('td', { class: 'num' }, rates.get(q.name) || ''))));
  };
  await view.refresh();
}

/* ---- jobs -------------------------------------------------------------------- */

const JOB_FILTERS = ['status', 'queue', 'type', 'since', 'until', 'error'];

async function viewJobs(view, rest, params) {
  const inputs = {};
  const field = (name, input) => {
    inputs[name] = input;
    input.value = params.get(name) || '';
    return el('label', {}, name, input);
  };
  const form = el('form', {
    class: 'filters', id: 'job-filters',
    onsubmit: (ev) => {
      ev.preventDefault();
      const q = new URLSearchParams();
      for (const name of JOB_FILTERS) if (inputs[name].value.trim()) q.set(name, inputs[name].value.trim());
      location.hash = '#/jobs' + (q.toString() ? '?' + q : '');
    },
  },
  field('status', el('select', { name: 'status', id: 'filter-status' }, el('option', { value: '' }, 'any'), STATUSES.map((s) => el('option', { value: s }, s)))),
  field('queue', el('input', { name: 'queue', id: 'filter-queue', size: 10 })),
  field('type', el('input', { name: 'type', id: 'filter-type', size: 12 })),
  field('since', el('input', { name: 'since', id: 'filter-since', size: 22, placeholder: '2026-01-02T03:04:05Z' })),
  field('until', el('input', { name: 'until', id: 'filter-until', size: 22, placeholder: '2026-01-02T03:04:05Z' })),
  field('error', el('input', { name: 'error', id: 'filter-error', size: 24, placeholder: 'text in the last error' })),
  el('button', { type: 'submit', class: 'primary', id: 'filter-apply' }, 'Filter'));
  const body = el('tbody', { id: 'jobs-body' });
  const more = el('p', { id: 'jobs-more' });
  show(el('h2', {}, 'Jobs'), form,
    el('table', { id: 'jobs' }, el('thead', {}, el('tr', {}, ['Job', 'Type', 'Queue', 'Status', 'Attempts', 'Last error', 'Created'].map((h) => el('th', {}, h)))), body),
    more);
  const q = new URLSearchParams();
  for (const name of [...JOB_FILTERS, 'cursor']) if (params.get(name)) q.set(name, params.get(name));
  view.refresh = async () => {
    const doc = await api('GET', '/v1/jobs?' + q);
    body.replaceChildren(...doc.jobs.map((j) => el('tr', { dataset: { job: j.id } },
      el('td', {}, el('a', { href: '#/job/' + j.id, class: 'job-link' }, j.id)),
      el('td', {}, j.type), el('td', {}, j.queue), el('td', {}, statusBadge(j.status)),
      el('td', { class: 'num' }, j.attempts), el('td', { class: 'error' }, j.last_error || ''),
      el('td', {}, fmtTime(j.created_at)))));
    if (!doc.jobs.length) body.append(el('tr', {}, el('td', { colspan: 7 }, 'No job matches.')));
    const next = new URLSearchParams(q);
    if (doc.next_cursor) next.set('cursor', doc.next_cursor);
    more.replaceChildren(
      q.get('cursor') ? el('a', { href: '#/jobs?' + (() => { const f = new URLSearchParams(q); f.delete('cursor'); return f; })() }, '« Newest') : '',
      ' ',
      doc.next_cursor ? el('a', { href: '#/jobs?' + next, id: 'jobs-next' }, 'Older »') : '');
  };
  await view.refresh();
}

async function findDeadLetter(jobId) {
  let cursor = '';
  for (let i = 0; i < 20; i++) {
    const doc = await optionalGet('/v1/dlq?limit=500' + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''));
    if (!doc) return null;
    const hit = doc.dead_letters.find((d) => d.job_id === jobId);
    if (hit) return hit;
    if (!doc.next_cursor) return null;
    cursor = doc.next_cursor;
  }
  return null;
}

async function viewJob(view, rest) {
  const id = rest[0] || '';
  const fields = el('dl', { class: 'fields', id: 'job-fields' });
  const payload = el('pre', { id: 'job-payload' });
  const result = el('pre', { id: 'job-result' });
  const attempts = el('tbody', { id: 'attempts-body' });
  const actions = el('div', { class: 'actions', id: 'job-actions' });
  const note = el('p', { id: 'job-note', role: 'status' });
  show(el('h2', {}, 'Job ', el('code', {}, id)), actions, note, fields,
    el('h3', {}, 'Payload'), payload, el('h3', {}, 'Result'), result,
    el('h3', {}, 'Attempts'),
    el('table', { id: 'attempts' }, el('thead', {}, el('tr', {}, ['#', 'Outcome', 'Error', 'Duration', 'Worker', 'Started', 'Finished'].map((h) => el('th', {}, h)))), attempts));
  let last = '';
  view.refresh = async () => {
    const [job, att] = await Promise.all([api('GET', '/v1/jobs/' + encodeURIComponent(id)), api('GET', '/v1/jobs/' + encodeURIComponent(id) + '/attempts')]);
    const rows = [['Status', statusBadge(job.status)], ['Type', job.type], ['Queue', job.queue], ['Priority', job.priority],
      ['Attempts', job.attempts + ' of ' + job.max_attempts], ['Last error', job.last_error || ''], ['Trace id', job.trace_id || ''],
      ['Created', fmtTime(job.created_at)], ['Started', fmtTime(job.started_at)], ['Finished', fmtTime(job.finished_at)],
      ['Workflow', job.workflow_id ? el('a', { href: '#/workflow/' + job.workflow_id }, job.workflow_id + ' / ' + job.step_id) : ''],
      ['Schedule', job.schedule_name || '']];
    fields.replaceChildren(...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', { dataset: { field: k.toLowerCase().replace(/ /g, '-') } }, v)]));
    payload.textContent = fmtJSON(job.payload);
    result.textContent = fmtJSON(job.result);
    attempts.replaceChildren(...att.attempts.map((a) => el('tr', { dataset: { attempt: a.attempt } },
      el('td', { class: 'num' }, a.attempt), el('td', {}, a.outcome), el('td', { class: 'error' }, a.error || ''),
      el('td', { class: 'num' }, a.duration_ms === null ? '' : a.duration_ms + ' ms'), el('td', {}, a.worker || ''),
      el('td', {}, fmtTime(a.started_at)), el('td', {}, fmtTime(a.finished_at)))));
    if (!att.attempts.length) attempts.append(el('tr', {}, el('td', { colspan: 7 }, 'No attempt has finished yet.')));
    const key = job.status + '/' + job.cancel_requested;
    if (key === last) return;
    last = key;
    actions.replaceChildren();
    if (can('submit') && !FINAL.includes(job.status) && !job.cancel_requested) {
      actions.append(el('button', { type: 'button', class: 'danger', id: 'cancel-job', onclick: async () => {
        try {
          const r = await api('DELETE', '/v1/jobs/' + encodeURIComponent(id));
          note.textContent = 'Cancel requested: ' + r.status + '.';
        } catch (e) { note.textContent = 'Cancel refused: ' + e.message; }
        last = '';
        await view.refresh();
      } }, 'Cancel'));
    }
    if (can('admin') && job.status === 'dead') {
      actions.append(el('button', { type: 'button', id: 'retry-job', onclick: async () => {
        const dl = await findDeadLetter(id);
        if (!dl) { note.textContent = 'No dead letter of this job was found (or the DLQ routes are not available).'; return; }
        try {
          const r = await api('POST', '/v1/dlq/replay', { seqs: [dl.seq] });
          note.textContent = 'Replayed: ' + r.replayed + '.';
        } catch (e) { note.textContent = 'Retry refused: ' + e.message; }
        last = '';
        await view.refresh();
      } }, 'Retry (replay its dead letter)'));
    }
  };
  await view.refresh();
}

/* ---- dead letters --------------------------------------------------------------- */

async function viewDlq(view, rest, params) {
  const first = await optionalGet('/v1/dlq?limit=1');
  if (!first) { show(el('h2', {}, 'Dead letters'), notAvailable('Dead letters')); return; }
  const inputs = {};
  const field = (name, input) => { inputs[name] = input; input.value = params.get(name) || ''; return el('label', {}, name, input); };
  const form = el('form', {
    class: 'filters', id: 'dlq-filters',
    onsubmit: (ev) => {
      ev.preventDefault();
      const q = new URLSearchParams();
      for (const name of ['queue', 'error', 'since']) if (inputs[name].value.trim()) q.set(name, inputs[name].value.trim());
      location.hash = '#/dlq' + (q.toString() ? '?' + q : '');
    },
  }, field('queue', el('input', { id: 'dlq-queue', size: 10 })), field('error', el('input', { id: 'dlq-error', size: 24 })),
  field('since', el('input', { id: 'dlq-since', size: 22 })), el('button', { type: 'submit', class: 'primary' }, 'Filter'));
  const body = el('tbody', { id: 'dlq-body' });
  const actions = el('div', { class: 'actions', id: 'dlq-actions' });
  const note = el('p', { id: 'dlq-note', role: 'status' });
  show(el('h2', {}, 'Dead letters'), form, actions, note,
    el('table', { id: 'dlq' }, el('thead', {}, el('tr', {}, ['', 'Seq', 'Job', 'Type', 'Queue', 'Attempts', 'Error', 'Died'].map((h) => el('th', {}, h)))), body));
  const q = new URLSearchParams();
  for (const name of ['queue', 'error', 'since']) if (params.get(name)) q.set(name, params.get(name));
  q.set('limit', '200');
  const selected = state.dlqSelected;
  const renderActions = () => {
    actions.replaceChildren();
    if (!can('admin')) return;
    actions.append(el('button', { type: 'button', class: 'primary', id: 'dlq-replay', disabled: selected.size === 0, onclick: () => {
      const n = selected.size;
      const box = el('div', { class: 'confirm', id: 'dlq-confirm' },
        el('p', {}, 'Replay ' + n + ' dead letter' + (n === 1 ? '' : 's') + '? Each goes back to its original queue once.'),
        el('button', { type: 'button', class: 'primary', id: 'dlq-confirm-yes', onclick: async () => {
          try {
            const r = await api('POST', '/v1/dlq/replay', { seqs: [...selected].map(Number) });
            note.textContent = 'Replayed ' + r.replayed + ' of ' + n + '.' + (r.missing && r.missing.length ? ' Missing: ' + r.missing.join(', ') + '.' : '');
            selected.clear();
          } catch (e) { note.textContent = 'Replay refused: ' + e.message; }
          box.remove();
          await view.refresh();
        } }, 'Replay ' + n),
        el('button', { type: 'button', id: 'dlq-confirm-no', onclick: () => box.remove() }, 'Cancel'));
      actions.after(box);
    } }, 'Replay selected (' + selected.size + ')'));
  };
  view.refresh = async () => {
    const doc = await api('GET', '/v1/dlq?' + q);
    body.replaceChildren(...doc.dead_letters.map((d) => el('tr', { dataset: { seq: d.seq, job: d.job_id } },
      el('td', {}, can('admin') ? el('input', { type: 'checkbox', class: 'dlq-select', checked: selected.has(String(d.seq)), onchange: (ev) => {
        if (ev.target.checked) selected.add(String(d.seq)); else selected.delete(String(d.seq));
        renderActions();
      } }) : ''),
      el('td', { class: 'num' }, d.seq), el('td', {}, el('a', { href: '#/job/' + d.job_id }, d.job_id)),
      el('td', {}, d.type), el('td', {}, d.queue), el('td', { class: 'num' }, d.attempts),
      el('td', { class: 'error' }, d.error || ''), el('td', {}, fmtTime(d.died_at)))));
    if (!doc.dead_letters.length) body.append(el('tr', {}, el('td', { colspan: 8 }, 'No dead letter matches.')));
    renderActions();
  };
  await view.refresh();
}

/* ---- workflows ------------------------------------------------------------------ */

async function viewWorkflows(view) {
  const first = await optionalGet('/v1/workflows?limit=50');
  if (!first) { show(el('h2', {}, 'Workflows'), notAvailable('Workflows')); return; }
  const body = el('tbody', { id: 'workflows-body' });
  show(el('h2', {}, 'Workflows'), el('table', { id: 'workflows' }, el('thead', {}, el('tr', {}, ['Workflow', 'Name', 'Status', 'Steps done', 'Created', 'Finished'].map((h) => el('th', {}, h)))), body));
  const render = (doc) => body.replaceChildren(...doc.workflows.map((w) => el('tr', { dataset: { workflow: w.id } },
    el('td', {}, el('a', { href: '#/workflow/' + w.id }, w.id)), el('td', {}, w.name), el('td', {}, statusBadge(w.status)),
    el('td', { class: 'num' }, w.steps_done + ' / ' + w.steps_total), el('td', {}, fmtTime(w.created_at)), el('td', {}, fmtTime(w.finished_at)))));
  render(first);
  view.refresh = async () => render(await api('GET', '/v1/workflows?limit=50'));
}

/* Layers steps so every step sits right of all it depends on. */
function layers(steps) {
  const byId = new Map(steps.map((s) => [s.id, s]));
  const depth = new Map();
  const visit = (s, seen) => {
    if (depth.has(s.id)) return depth.get(s.id);
    if (seen.has(s.id)) return 0;
    seen.add(s.id);
    let d = 0;
    for (const p of s.depends_on || []) if (byId.has(p)) d = Math.max(d, visit(byId.get(p), seen) + 1);
    depth.set(s.id, d);
    return d;
  };
  steps.forEach((s) => visit(s, new Set()));
  return depth;
}

function workflowGraph(steps) {
  const W = 150, H = 44, GX = 60, GY = 20;
  const depth = layers(steps);
  const rows = new Map();
  const pos = new Map();
  for (const s of steps) {
    const d = depth.get(s.id);
    const r = rows.get(d) || 0;
    rows.set(d, r + 1);
    pos.set(s.id, { x: 10 + d * (W + GX), y: 10 + r * (H + GY) });
  }
  const width = 20 + (Math.max(0, ...depth.values()) + 1) * (W + GX);
  const height = 20 + Math.max(1, ...rows.values()) * (H + GY);
  const g = svg('svg', { class: 'graph', id: 'workflow-graph', width, height, viewBox: '0 0 ' + width + ' ' + height, role: 'img' });
  for (const s of steps) for (const p of s.depends_on || []) {
    if (!pos.has(p)) continue;
    const a = pos.get(p), b = pos.get(s.id);
    g.append(svg('line', { x1: a.x + W, y1: a.y + H / 2, x2: b.x, y2: b.y + H / 2 }));
  }
  for (const s of steps) {
    const { x, y } = pos.get(s.id);
    const node = svg('g', { 'data-step': s.id, 'data-status': s.status });
    node.append(svg('rect', { x, y, width: W, height: H, rx: 6, class: s.status }),
      svg('text', { x: x + 8, y: y + 18 }, s.id.length > 20 ? s.id.slice(0, 19) + '…' : s.id),
      svg('text', { x: x + 8, y: y + 34 }, s.status + (s.attempts ? ' · ' + s.attempts + (s.attempts === 1 ? ' try' : ' tries') : '')));
    g.append(node);
  }
  return g;
}

async function viewWorkflow(view, rest) {
  const id = rest[0] || '';
  const wf = await optionalGet('/v1/workflows/' + encodeURIComponent(id));
  if (!wf) { show(el('h2', {}, 'Workflow'), notAvailable('Workflows')); return; }
  const holder = el('div', {});
  const body = el('tbody', { id: 'steps-body' });
  const head = el('p', {});
  show(el('h2', {}, 'Workflow ', el('code', {}, id)), head, holder,
    el('table', { id: 'steps' }, el('thead', {}, el('tr', {}, ['Step', 'Status', 'Depends on', 'Attempts', 'Job', 'Error'].map((h) => el('th', {}, h)))), body));
  const render = (w) => {
    head.replaceChildren(w.name || '', ' ', statusBadge(w.status), ' created ', fmtTime(w.created_at));
    holder.replaceChildren(workflowGraph(w.steps));
    body.replaceChildren(...w.steps.map((s) => el('tr', {}, el('td', {}, s.id), el('td', {}, statusBadge(s.status)),
      el('td', {}, (s.depends_on || []).join(', ')), el('td', { class: 'num' }, s.attempts || 0),
      el('td', {}, s.job_id ? el('a', { href: '#/job/' + s.job_id }, s.job_id) : ''), el('td', { class: 'error' }, s.error || ''))));
  };
  render(wf);
  view.refresh = async () => render(await api('GET', '/v1/workflows/' + encodeURIComponent(id)));
}

/* ---- schedules ------------------------------------------------------------------ */

async function viewSchedules(view) {
  const first = await optionalGet('/v1/schedules');
  if (!first) { show(el('h2', {}, 'Schedules'), notAvailable('Schedules')); return; }
  const body = el('tbody', { id: 'schedules-body' });
  show(el('h2', {}, 'Schedules'), el('table', { id: 'schedules' }, el('thead', {}, el('tr', {}, ['Name', 'Cron', 'Time zone', 'Job type', 'Paused', 'Next fire', 'Last fire', 'Last job'].map((h) => el('th', {}, h)))), body));
  const render = (doc) => body.replaceChildren(...doc.schedules.map((s) => el('tr', { dataset: { schedule: s.name } },
    el('td', {}, s.name), el('td', {}, el('code', {}, s.cron)), el('td', {}, s.timezone), el('td', {}, (s.job && s.job.type) || ''),
    el('td', {}, s.paused ? 'paused' : ''), el('td', {}, fmtTime(s.next_fire_at)), el('td', {}, fmtTime(s.last_fire_at)),
    el('td', {}, s.last_job_id ? el('a', { href: '#/job/' + s.last_job_id }, s.last_job_id) : ''))));
  render(first);
  view.refresh = async () => render(await api('GET', '/v1/schedules'));
}

/* ---- start ---------------------------------------------------------------------- */

window.addEventListener('hashchange', route);
document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('signout').addEventListener('click', signOut);
  route();
});
