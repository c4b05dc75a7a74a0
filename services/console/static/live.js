// Live event stream over Server-Sent Events, with the CLI's filters. The browser's EventSource
// reconnects by itself and sends the last event id, so the console replays what was missed.
import { checkSession } from './api.js';
import { clear, fmtTime, h, label, severityPill, shortId, typeFamily } from './dom.js';

const MAX_ROWS = 500;
const FIELDS = ['type', 'customer', 'complaint', 'severity', 'queue'];
const KNOWN_TYPES = ['complaint', 'case', 'case.routed', 'case.acknowledged', 'case.sla_warning', 'case.sla_breached',
  'case.escalated', 'case.handed_off', 'case.paused', 'case.resumed', 'case.resolved', 'case.reopened',
  'compensation', 'compensation.offered', 'compensation.pending_approval', 'compensation.issued', 'incident',
  'loyalty', 'loyalty.points_changed', 'loyalty.tier_changed', 'survey', 'survey.answered', 'care', 'order',
  'dead-letter'];

function filtersFromHash(params) {
  const query = new URLSearchParams(params[0] || '');
  return Object.fromEntries(FIELDS.map((f) => [f, query.get(f) || '']));
}

function filterBar(filters, onApply) {
  const inputs = {};
  const field = (name, placeholder, extra = {}) => {
    inputs[name] = h('input', { name, placeholder, value: filters[name], maxlength: 100, ...extra });
    return h('label', { class: 'field' }, h('span', { text: label(name) }), inputs[name]);
  };
  inputs.severity = h('select', { name: 'severity' },
    ['', 'P1', 'P2', 'P3', 'P4'].map((s) => h('option', { value: s, text: s || 'any', selected: s === filters.severity })));
  const types = h('datalist', { id: 'known-types' }, KNOWN_TYPES.map((t) => h('option', { value: t })));
  const form = h('form', { class: 'filters', id: 'live-filters' },
    field('type', 'e.g. case, compensation.issued', { list: 'known-types' }), types,
    field('customer', 'customer id'), field('complaint', 'complaint id'),
    h('label', { class: 'field field-narrow' }, h('span', { text: 'severity' }), inputs.severity),
    field('queue', 'e.g. billing'),
    h('div', { class: 'filter-actions' },
      h('button', { type: 'submit', class: 'primary', text: 'Apply' }),
      h('button', { type: 'button', class: 'ghost', text: 'Clear', onclick: () => onApply({}) })));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    onApply(Object.fromEntries(FIELDS.map((f) => [f, inputs[f].value.trim()])));
  });
  return form;
}

function factChips(facts) {
  return h('div', { class: 'facts' }, (facts || []).map(([k, v]) =>
    h('span', { class: 'fact' }, h('span', { class: 'fact-k', text: k }), h('span', { class: 'fact-v', text: v }))));
}

function eventRow(event) {
  const dead = event.kind !== 'event';
  const family = dead ? 'dlq' : typeFamily(event.type);
  const complaint = event.correlationid;
  const details = h('pre', { class: 'event-json', hidden: true, text: JSON.stringify(event.data, null, 2) });
  const row = h('li', {
    class: `event fam-${family}${dead ? ' event-dead' : ''}`,
    dataset: { type: event.type, complaint: complaint || '', customer: event.customer || '', seq: event.seq },
  },
  h('time', { class: 'event-time', datetime: event.time || '', text: fmtTime(event.time) }),
  h('span', { class: `type-badge fam-${family}`, text: dead ? `dead letter · ${event.type}` : event.type }),
  h('span', { class: 'event-sev' }, severityPill(event.severity)),
  h('span', { class: 'event-ids' },
    h('span', { class: 'mono', title: event.customer || '', text: event.customer || '—' }),
    complaint ? h('a', { class: 'mono complaint-link', href: `#/story/${encodeURIComponent(complaint)}`,
      title: complaint, text: shortId(complaint) }) : null),
  h('div', { class: 'event-body' }, dead ? h('span', { class: 'error-text', text: event.error || 'malformed' })
    : factChips(event.facts), event.queue ? h('span', { class: 'queue-tag', text: label(event.queue) }) : null),
  details);
  row.addEventListener('click', (e) => {
    if (e.target.closest('a')) return;
    details.hidden = !details.hidden;
  });
  return row;
}

export function mountLive(container, params) {
  const filters = filtersFromHash(params);
  const status = h('span', { class: 'conn conn-connecting', id: 'live-status', text: 'Connecting…' });
  const counter = h('span', { class: 'muted', id: 'live-count', text: '0 events' });
  const notice = h('div', { class: 'notice', hidden: true });
  const list = h('ol', { class: 'events', id: 'live-events' });
  const empty = h('div', { class: 'empty', id: 'live-empty' }, h('strong', { text: 'Waiting for events' }),
    h('p', { text: 'Events appear here the moment a service publishes them.' }));
  let paused = false;
  let held = [];
  let shown = 0;
  const pauseButton = h('button', { class: 'ghost', type: 'button', text: 'Pause' });
  pauseButton.addEventListener('click', () => {
    paused = !paused;
    pauseButton.textContent = paused ? `Resume (${held.length})` : 'Pause';
    if (!paused) { held.forEach(addEvent); held = []; }
  });

  const apply = (next) => {
    const query = new URLSearchParams(Object.entries(next).filter(([, v]) => v));
    location.hash = `#/live/${query.toString()}`;
  };

  container.append(
    h('div', { class: 'toolbar' }, filterBar(filters, apply)),
    h('div', { class: 'stream-head' }, status, counter, h('span', { class: 'spacer' }), pauseButton,
      h('button', { class: 'ghost', type: 'button', text: 'Clear list', onclick: () => { clear(list); shown = 0; counter.textContent = '0 events'; } })),
    notice, h('div', { class: 'card stream-card' }, empty, list));

  function addEvent(event) {
    if (paused) {
      held.push(event);
      if (held.length > MAX_ROWS) held.shift();
      pauseButton.textContent = `Resume (${held.length})`;
      return;
    }
    empty.hidden = true;
    list.prepend(eventRow(event));
    while (list.childElementCount > MAX_ROWS) list.lastElementChild.remove();
    shown += 1;
    counter.textContent = `${shown} event${shown === 1 ? '' : 's'}`;
  }

  function setStatus(kind, text) {
    status.className = `conn conn-${kind}`;
    status.textContent = text;
  }

  function showNotice(text) {
    notice.hidden = false;
    notice.textContent = text;
  }

  const query = new URLSearchParams(Object.entries(filters).filter(([, v]) => v));
  query.set('backlog', '50');
  let source = null;
  let retryTimer = null;
  const onStatus = (e) => {
    const s = JSON.parse(e.data);
    setStatus(s.status === 'live' ? 'live' : 'connecting', s.status === 'live' ? 'Live' : `Broker: ${s.status}`);
  };

  function connect() {
    source = new EventSource(`/v1/stream?${query}`);
    source.addEventListener('hello', onStatus);
    source.addEventListener('status', onStatus);
    source.addEventListener('gap', (e) => {
      const gap = JSON.parse(e.data);
      showNotice(`${gap.missed} event(s) could not be shown${gap.reason ? ` (${gap.reason})` : ''}.`);
    });
    source.addEventListener('expired', () => { source.close(); checkSession(); });
    source.addEventListener('closing', () => setStatus('connecting', 'Reconnecting…'));
    source.onmessage = (e) => addEvent(JSON.parse(e.data));
    source.onerror = () => {
      if (source.readyState !== EventSource.CLOSED) {
        setStatus('connecting', 'Reconnecting…');
        return;
      }
      // The server refused the stream (signed out, or too many viewers): check the session, then retry.
      setStatus('down', 'Disconnected · retrying');
      checkSession().then((ok) => { if (ok) retryTimer = setTimeout(connect, 5000); });
    };
  }

  connect();
  return () => {
    clearTimeout(retryTimer);
    if (source) source.close();
  };
}
