// Operator actions on a case, from its story page: acknowledge, update, hand off, escalate, pause,
// resume, resolve, reopen. They go to routing's API as the signed-in operator; routing decides what
// the operator's role may do and the page shows its answer.
import { api } from './api.js';
import { fill, h, label } from './dom.js';

let policyCache = null;

async function routingPolicy() {
  if (!policyCache) policyCache = api('/api/routing/v1/policy').catch(() => ({ queues: {}, resolution_codes: [] }));
  return policyCache;
}

function field(name, control) {
  return h('label', { class: 'field' }, h('span', { text: name }), control);
}

function forms(policy, state) {
  const queues = Object.entries(policy.queues || {}).filter(([name]) => name !== state.queue);
  const text = (name, placeholder) => h('input', { name, placeholder, maxlength: 500, required: true });
  return {
    acknowledge: { title: 'Acknowledge', fields: [], body: () => undefined },
    updates: { title: 'Record update', fields: [field('note to the customer', text('note', 'what the customer was told'))],
      body: (f) => ({ note: f.note.value }) },
    handoff: { title: 'Hand off', fields: [
      field('to queue', h('select', { name: 'to_queue', required: true }, queues.map(([name, q]) => h('option', { value: name, text: q.label || label(name) })))),
      field('reason', text('reason', 'why another queue')),
    ], body: (f) => ({ to_queue: f.to_queue.value, reason: f.reason.value }) },
    escalate: { title: 'Escalate', fields: [field('reason', text('reason', 'why it needs a higher level'))],
      body: (f) => ({ reason: f.reason.value }) },
    pause: { title: 'Pause clocks', fields: [field('waiting on', h('select', { name: 'waiting_on' },
      h('option', { value: 'customer', text: 'the customer' }), h('option', { value: 'third_party', text: 'a third party' })))],
    body: (f) => ({ waiting_on: f.waiting_on.value }) },
    resume: { title: 'Resume clocks', fields: [], body: () => undefined },
    resolve: { title: 'Resolve', fields: [
      field('resolution', h('select', { name: 'resolution_code', required: true },
        (policy.resolution_codes || []).map((c) => h('option', { value: c, text: label(c) })))),
      h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'first_handling', checked: state.handoffs === 0 }),
        'resolved at first handling'),
    ], body: (f) => ({ resolution_code: f.resolution_code.value, first_handling: f.first_handling.checked }) },
    reopen: { title: 'Reopen', fields: [field('reason', text('reason', 'why it is not resolved'))],
      body: (f) => ({ reason: f.reason.value }) },
  };
}

function available(state) {
  if (state.state === 'resolved') return ['reopen'];
  const list = ['acknowledge', 'updates', 'handoff', 'escalate'];
  list.push(state.state === 'waiting' ? 'resume' : 'pause');
  list.push('resolve');
  return list;
}

// The action bar of a case; onDone() reloads the story after a successful action.
export function actionBar(story, onDone) {
  const state = { state: story.case.state, queue: story.case.queue, handoffs: story.handoffs.length };
  const panel = h('div', { class: 'action-panel', hidden: true });
  const message = h('p', { class: 'action-message', role: 'status', hidden: true });
  const bar = h('div', { class: 'action-bar', id: 'case-actions' },
    h('span', { class: 'action-label', text: 'Act on this case' }),
    available(state).map((name) => h('button', { type: 'button', class: 'ghost small-button', dataset: { action: name },
      text: { acknowledge: 'Acknowledge', updates: 'Record update', handoff: 'Hand off', escalate: 'Escalate',
        pause: 'Pause', resume: 'Resume', resolve: 'Resolve', reopen: 'Reopen' }[name],
      onclick: () => open(name) })));

  async function open(name) {
    const spec = forms(await routingPolicy(), state)[name];
    const form = h('form', { class: 'action-form', dataset: { action: name } }, spec.fields,
      h('div', { class: 'filter-actions' }, h('button', { type: 'submit', class: 'primary', text: spec.title }),
        h('button', { type: 'button', class: 'ghost', text: 'Cancel', onclick: () => { panel.hidden = true; } })));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      submit(name, spec.body(form.elements), form.querySelector('button[type=submit]'));
    });
    fill(panel, form);
    panel.hidden = false;
    message.hidden = true;
  }

  async function submit(name, body, button) {
    button.disabled = true;
    try {
      await api(`/api/routing/v1/cases/${encodeURIComponent(story.case_id)}/${name}`, {
        method: 'POST', body: body ?? {}, headers: { 'Idempotency-Key': crypto.randomUUID() },
      });
      panel.hidden = true;
      message.className = 'action-message ok';
      message.textContent = 'Done. Refreshing the story…';
      message.hidden = false;
      setTimeout(onDone, 800);
    } catch (err) {
      message.className = 'action-message bad';
      message.textContent = err.message;
      message.hidden = false;
    } finally {
      button.disabled = false;
    }
  }

  return h('div', { class: 'case-actions' }, bar, panel, message);
}
