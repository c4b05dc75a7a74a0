// A complaint's full story on one page: the complaint, its case now, every event in order,
// every hand-off, the compensation, the points and the survey.
import { api } from './api.js';
import { actionBar } from './actions.js';
import { clockRows } from './board.js';
import {
  emptyState, fill, fmtDuration, fmtMoney, fmtTime, h, label, severityPill, shortId, tierBadge, typeFamily, unavailable,
} from './dom.js';

function searchForm(current) {
  const input = h('input', { type: 'search', name: 'complaint', placeholder: 'Complaint id (paste from the stream or board)',
    value: current || '', maxlength: 100, required: true, class: 'grow' });
  const form = h('form', { class: 'story-search' }, input, h('button', { type: 'submit', class: 'primary', text: 'Open story' }));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (input.value.trim()) location.hash = `#/story/${encodeURIComponent(input.value.trim())}`;
  });
  return form;
}

function fact(name, value) {
  return h('div', { class: 'kv' }, h('dt', { text: name }), h('dd', {}, value ?? '—'));
}

function summaryCard(story, reload) {
  const complaint = story.complaint || {};
  const received = story.timeline.find((e) => e.type.startsWith('complaint.received'));
  const data = received ? received.data : {};
  const cls = data.classification || {};
  const c = story.case || {};
  const text = complaint.text || data.text;
  return h('section', { class: 'card story-summary', id: 'story-summary' },
    h('div', { class: 'story-title' }, h('h2', { class: 'mono', text: story.complaint_id }),
      severityPill(c.severity), tierBadge(c.customer_tier),
      c.state ? h('span', { class: `state-badge state-${c.state}`, text: label(c.state) }) : null),
    text ? h('blockquote', { class: 'complaint-text', text }) : null,
    h('dl', { class: 'facts-grid' },
      fact('Customer', h('span', { class: 'mono', text: story.customer_id || '—' })),
      fact('Channel', label(complaint.channel || data.channel)),
      fact('Category', label(complaint.category || cls.category || c.category)),
      fact('Received', fmtTime(complaint.received_at || data.received_at, true)),
      fact('Case', h('span', { class: 'mono', text: story.case_id || '—' })),
      fact('Queue', label(c.queue)),
      fact('Owner', c.owner || c.assignee || '—'),
      fact('Urgency cues', (cls.urgency_cues || []).map(label).join(', ') || 'none')),
    story.clocks.length ? h('div', { class: 'story-clocks' }, h('h4', { text: 'SLA clocks' }),
      h('div', { class: 'clocks', id: 'story-clocks' }, clockRows(story.clocks))) : null,
    story.case_id && story.sources.routing && story.sources.routing.ok ? actionBar(story, reload) : null);
}

function timeline(story) {
  if (!story.timeline.length) return emptyState('No events', 'The broker holds no events for this complaint.');
  const byId = Object.fromEntries(story.timeline.map((e) => [e.id, e]));
  return h('ol', { class: 'timeline', id: 'story-timeline' }, story.timeline.map((e) => {
    const family = e.kind === 'event' ? typeFamily(e.type) : 'dlq';
    const cause = e.causationid && byId[e.causationid];
    return h('li', { class: `tl-item fam-${family}`, dataset: { type: e.type } },
      h('span', { class: 'tl-dot' }),
      h('div', { class: 'tl-head' }, h('time', { text: fmtTime(e.time, true) }),
        h('span', { class: `type-badge fam-${family}`, text: e.kind === 'event' ? e.type : `dead letter · ${e.type}` }),
        h('span', { class: 'muted', text: (e.source || '').replace('/redress/', '') }),
        cause ? h('span', { class: 'muted small', text: `after ${cause.type}` }) : null),
      e.error ? h('p', { class: 'error-text', text: e.error }) : h('div', { class: 'facts' }, (e.facts || []).map(([k, v]) =>
        h('span', { class: 'fact' }, h('span', { class: 'fact-k', text: k }), h('span', { class: 'fact-v', text: v })))));
  }));
}

function table(headers, rows, id) {
  if (!rows.length) return h('p', { class: 'muted', text: 'None.' });
  return h('table', { class: 'data-table', id }, h('thead', {}, h('tr', {}, headers.map((t) => h('th', { text: t })))),
    h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((c) => h('td', {}, c ?? '—'))))));
}

function remedyText(remedy) {
  if (!remedy) return '—';
  if (remedy.points) return `${remedy.points} points`;
  if (remedy.percent) return `${remedy.percent}% ${label(remedy.kind)}`;
  if (remedy.amount_minor) return `${fmtMoney(remedy.amount_minor, remedy.currency)} ${label(remedy.kind)}`;
  return label(remedy.kind);
}

function section(title, content, id) {
  return h('section', { class: 'card story-section', id }, h('h3', { text: title }), content);
}

function sourcesNote(story) {
  const items = Object.entries(story.sources).map(([name, s]) => h('li', { class: s.ok ? 'up' : 'down' },
    h('span', { class: 'dot' }), `${name}: ${s.ok ? 'answered' : s.reason}`));
  const scan = story.scan;
  items.push(h('li', { class: scan.complete ? 'up' : 'down' }, h('span', { class: 'dot' }),
    `broker: ${scan.matched} events in ${scan.scanned} messages read${scan.note ? ` (${scan.note})` : ''}`));
  return h('ul', { class: 'sources' }, items);
}

function render(story, reload) {
  const handoffs = story.handoffs.map((x) => [`${label(x.from_queue)} → ${label(x.to_queue)}`, x.reason,
    x.requested_by || x.by || '—', x.taken_by || x.to_owner || '—',
    x.handoff_seconds === null || x.handoff_seconds === undefined ? 'waiting' : fmtDuration(x.handoff_seconds)]);
  const escalations = story.escalations.map((x) => [x.clock ? `${label(x.clock)} clock` : 'escalation',
    x.to_severity ? `${x.from_severity} → ${x.to_severity}` : x.severity, x.reason || (x.due_at ? `due ${fmtTime(x.due_at, true)}` : ''),
    x.to_level ? `${x.from_level} → ${x.to_level}` : '—']);
  const compensation = story.compensation.events.map((e) => [fmtTime(e.time, true), label(e.type.split('.')[1]),
    label(e.data.reason), e.data.remedy ? remedyText(e.data.remedy) : (e.data.options || []).map(remedyText).join(' / '),
    label(e.data.customer_tier)]);
  const decisions = story.compensation.decisions.map((d) => [label(d.reason), label(d.status),
    fmtMoney(d.value_minor, d.currency), label(d.customer_tier), d.decided_by || (d.required_role ? `needs ${d.required_role}` : '—')]);
  const ledger = story.compensation.ledger.map((r) => [fmtTime(r.issued_at, true), `${label(r.entry_kind)} · ${label(r.kind)}`,
    fmtMoney(r.value_minor ?? r.amount_minor, r.currency), r.points || '—']);
  const earlier = story.earlier_complaints.map((c) => [fmtTime(c.received_at, true),
    h('a', { href: `#/story/${encodeURIComponent(c.complaint_id)}`, class: 'mono', text: shortId(c.complaint_id) }),
    c.subject || c.excerpt || label(c.category), c.severity, label(c.state)]);
  const points = story.points.events.map((p) => [label(p.kind), `${p.points > 0 ? '+' : ''}${p.points}`, p.balance, p.reason]);
  const surveys = story.surveys.map((s) => [label(s.type.split('.')[1]), s.csat ?? '—', s.nps ?? '—', s.ces ?? '—',
    s.comment || (s.low_score ? 'low score' : ''), fmtTime(s.answered_at || s.time, true)]);
  const care = story.care.map((c) => [label(c.type), c.day ? `day ${c.day}` : (c.signals || []).join(', '), fmtTime(c.due_at || c.detected_at || c.time, true)]);
  return [
    summaryCard(story, reload),
    h('div', { class: 'story-grid' },
      section(`Timeline · ${story.timeline.length} events`, timeline(story), 'story-events'),
      h('div', { class: 'story-side' },
        section('Hand-offs', table(['Move', 'Reason', 'By', 'Taken by', 'Took'], handoffs, 'story-handoffs'), 'story-handoffs-card'),
        section('Escalations and SLA', table(['Clock', 'Severity', 'Detail', 'Level'], escalations), 'story-escalations'),
        section('Compensation', [table(['When', 'Step', 'Reason', 'Remedy', 'Tier'], compensation, 'story-compensation'),
          decisions.length ? [h('h4', { text: 'Decisions' }), table(['Reason', 'Status', 'Value', 'Tier', 'By'], decisions, 'story-decisions')] : null,
          ledger.length ? [h('h4', { text: 'Ledger' }), table(['When', 'Entry', 'Value', 'Points'], ledger, 'story-ledger')] : null],
        'story-compensation-card'),
        section('Points', table(['Kind', 'Points', 'Balance', 'Reason'], points, 'story-points'), 'story-points-card'),
        section('Survey', table(['Step', 'CSAT', 'NPS', 'CES', 'Comment', 'When'], surveys, 'story-surveys'), 'story-surveys-card'),
        care.length ? section('Care', table(['Step', 'Detail', 'When'], care)) : null,
        earlier.length ? section("Customer's earlier complaints", table(['Received', 'Complaint', 'About', 'Tier', 'State'], earlier)) : null,
        section('Sources', sourcesNote(story), 'story-sources'))),
  ];
}

export function mountStory(container, params) {
  const complaintId = params[0];
  const body = h('div', { id: 'story-body' });
  container.append(h('div', { class: 'toolbar' }, searchForm(complaintId)), body);
  if (!complaintId) {
    body.append(emptyState('Open a complaint', 'Paste a complaint id, or click one in the live stream or on the queue board.'));
    return null;
  }
  const controller = new AbortController();
  body.append(h('div', { class: 'loading', text: `Reading the story of ${shortId(complaintId)} from every topic…` }));
  let ticker = null;
  const load = () => api(`/v1/complaints/${encodeURIComponent(complaintId)}/story`, { signal: controller.signal })
    .then((story) => {
      clearInterval(ticker);
      fill(body, render(story, load));
      const rows = [...body.querySelectorAll('#story-clocks .clock')];
      const tick = () => rows.forEach((row) => row.update(Date.now()));
      tick();
      ticker = setInterval(tick, 1000);
    })
    .catch((err) => {
      if (err.name === 'AbortError') return;
      fill(body, err.status === 404 ? emptyState('No such complaint', err.message) : unavailable(err.message));
    });
  load();
  return () => { controller.abort(); clearInterval(ticker); };
}
