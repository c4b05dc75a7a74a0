// Queue board: open cases by queue (rows) and severity tier (columns), each with its three SLA clocks
// counting down live. Breach risk comes from routing; the page only counts down between refreshes.
import { api } from './api.js';
import { fill, fmtDuration, h, label, severityPill, tierBadge, unavailable } from './dom.js';

const TIERS = ['P1', 'P2', 'P3', 'P4'];
const CLOCKS = [['first_response', 'First response'], ['next_update', 'Next update'], ['resolution', 'Resolution']];
const REFRESH_MS = 15000;

function clockState(clock, now) {
  if (!clock) return { cls: 'none', text: '—', progress: 0 };
  if (clock.status === 'met') return { cls: 'met', text: 'met', progress: 1 };
  if (clock.status === 'stopped') return { cls: 'none', text: 'stopped', progress: 0 };
  if (clock.status === 'paused') return { cls: 'paused', text: `paused · ${fmtDuration(clock.remaining_seconds)}`, progress: 0 };
  const due = clock.due_at ? Date.parse(clock.due_at) : null;
  const remaining = due === null ? clock.remaining_seconds : (due - now) / 1000;
  const target = clock.target_seconds || 1;
  const progress = Math.min(1, Math.max(0, 1 - remaining / target));
  const warn = clock.warn_at ? now >= Date.parse(clock.warn_at) : progress >= 0.75;
  if (clock.status === 'breached' || remaining < 0) {
    return { cls: 'breached', text: `${fmtDuration(-remaining)} over`, progress: 1 };
  }
  return { cls: warn ? 'warn' : 'ok', text: `${fmtDuration(remaining)} left`, progress };
}

function clockRow(name, title, clock) {
  const bar = h('span', { class: 'clock-fill' });
  const text = h('span', { class: 'clock-left' });
  const row = h('div', { class: 'clock', dataset: { clock: name } },
    h('span', { class: 'clock-name', text: title }), h('span', { class: 'clock-track' }, bar), text);
  row.update = (now) => {
    const s = clockState(clock, now);
    row.className = `clock clock-${s.cls}`;
    bar.style.width = `${Math.round(s.progress * 100)}%`;
    text.textContent = s.text;
  };
  return row;
}

// The three clocks of a case, each on its own row; call update(now) on each row to count down.
export function clockRows(list) {
  const clocks = Object.fromEntries((list || []).map((c) => [c.name, c]));
  return CLOCKS.map(([name, title]) => clockRow(name, title, clocks[name]));
}

function caseCard(item) {
  const rows = clockRows(item.clocks);
  const card = h('a', {
    class: `case-card risk-${item.risk}`, href: `#/story/${encodeURIComponent(item.complaint_id)}`,
    dataset: { case: item.case_id, complaint: item.complaint_id, risk: item.risk, tier: item.customer_tier },
    title: `Open the story of complaint ${item.complaint_id}`,
  },
  h('div', { class: 'case-head' }, severityPill(item.severity), tierBadge(item.customer_tier),
    item.risk !== 'on_track' ? h('span', { class: `risk-flag risk-${item.risk}`, text: item.risk === 'breached' ? 'Breached' : 'At risk' }) : null,
    h('span', { class: 'spacer' }), h('span', { class: 'case-state', text: item.waiting_on ? `waiting on ${label(item.waiting_on)}` : label(item.state) })),
  h('div', { class: 'case-title', text: item.subject || item.excerpt || label(item.category) }),
  h('div', { class: 'case-meta' }, h('span', { class: 'mono', text: item.customer_id }),
    h('span', { text: item.assignee || item.owner || 'unassigned' }),
    item.level && item.level !== 'agent' ? h('span', { class: 'level', text: `${item.level} level` }) : null),
  h('div', { class: 'clocks' }, rows));
  card.clockRows = rows;
  return card;
}

function queueRow(queue, cases) {
  const byTier = Object.fromEntries(TIERS.map((t) => [t, []]));
  for (const item of cases) (byTier[item.severity] || (byTier[item.severity] = [])).push(item);
  const head = h('div', { class: 'queue-head' },
    h('div', { class: 'queue-name', text: queue.label || label(queue.name) }),
    h('div', { class: 'queue-stats' },
      h('span', { class: 'stat', text: `${queue.open} open` }),
      queue.at_risk ? h('span', { class: 'stat warn', text: `${queue.at_risk} at risk` }) : null,
      queue.breached ? h('span', { class: 'stat bad', text: `${queue.breached} breached` }) : null,
      queue.calendar ? h('span', { class: 'stat muted', text: `hours: ${queue.calendar}` }) : null));
  if (!cases.length) {
    return h('section', { class: 'queue-row is-empty', dataset: { queue: queue.name } }, head,
      h('div', { class: 'queue-empty', text: 'No open cases match.' }));
  }
  const cells = TIERS.map((tier) => h('div', { class: `tier-cell${byTier[tier].length ? '' : ' is-empty'}`, dataset: { tier } },
    byTier[tier].map(caseCard)));
  return h('section', { class: 'queue-row', dataset: { queue: queue.name } }, head, h('div', { class: 'tier-cells' }, cells));
}

export function mountBoard(container) {
  const filters = { queue: '', risk: '', tier: '', search: '' };
  const body = h('div', { id: 'board-body', class: 'board-body' }, h('div', { class: 'loading', text: 'Loading queues…' }));
  const summary = h('div', { class: 'board-summary', id: 'board-summary' });
  const queueSelect = h('select', { name: 'queue' }, h('option', { value: '', text: 'All queues' }));
  const riskSelect = h('select', { name: 'risk' }, [['', 'Any risk'], ['at_risk', 'At risk'], ['breached', 'Breached'], ['on_track', 'On track']]
    .map(([v, t]) => h('option', { value: v, text: t })));
  const tierSelect = h('select', { name: 'tier' }, [['', 'Any customer tier'], ['high_value', 'High value'], ['mid_value', 'Mid value'], ['potential', 'Potential']]
    .map(([v, t]) => h('option', { value: v, text: t })));
  const search = h('input', { type: 'search', placeholder: 'customer or complaint id', maxlength: 100 });
  for (const [el, key] of [[queueSelect, 'queue'], [riskSelect, 'risk'], [tierSelect, 'tier'], [search, 'search']]) {
    el.addEventListener('input', () => { filters[key] = el.value.trim(); draw(); });
  }
  const updated = h('span', { class: 'muted', id: 'board-updated' });
  container.append(h('div', { class: 'toolbar' }, queueSelect, riskSelect, tierSelect, search, h('span', { class: 'spacer' }), updated,
    h('button', { class: 'ghost', type: 'button', text: 'Refresh', onclick: () => load() })), summary, body);

  let board = null;
  let skew = 0;
  let cards = [];

  function visible(item) {
    if (filters.queue && item.queue !== filters.queue) return false;
    if (filters.risk && item.risk !== filters.risk) return false;
    if (filters.tier && item.customer_tier !== filters.tier) return false;
    if (filters.search && !`${item.customer_id} ${item.complaint_id} ${item.case_id}`.includes(filters.search)) return false;
    return true;
  }

  function drawSummary(items) {
    const count = (risk) => items.filter((c) => c.risk === risk).length;
    fill(summary,
      h('div', { class: 'summary-tile' }, h('span', { class: 'summary-value', text: items.length }), h('span', { text: 'open cases shown' })),
      h('div', { class: 'summary-tile warn' }, h('span', { class: 'summary-value', text: count('at_risk') }), h('span', { text: 'at risk' })),
      h('div', { class: 'summary-tile bad' }, h('span', { class: 'summary-value', text: count('breached') }), h('span', { text: 'breached' })),
      ...TIERS.map((t) => h('div', { class: 'summary-tile' }, h('span', { class: 'summary-value', text: items.filter((c) => c.severity === t).length }), severityPill(t))));
  }

  function draw() {
    if (!board) return;
    if (!board.available) {
      fill(body, unavailable(board.reason));
      return;
    }
    const items = board.cases.filter(visible);
    drawSummary(items);
    const queues = board.queues.length ? board.queues : [...new Set(board.cases.map((c) => c.queue))].map((name) => ({ name, open: 0 }));
    const shownQueues = queues.filter((q) => !filters.queue || q.name === filters.queue);
    const header = h('div', { class: 'tier-header' }, h('div', { class: 'queue-head-spacer', text: 'Queue' }),
      h('div', { class: 'tier-cells' }, TIERS.map((t) => h('div', { class: 'tier-title' }, severityPill(t)))));
    const rows = shownQueues.map((q) => queueRow(q, items.filter((c) => c.queue === q.name)));
    fill(body, header, rows, board.truncated ? h('p', { class: 'notice', text: `Showing the ${board.cases.length} cases with the nearest deadlines of ${board.total}.` }) : null);
    cards = [...body.querySelectorAll('.case-card')];
    tick();
  }

  function tick() {
    const now = Date.now() + skew;
    for (const card of cards) for (const row of card.clockRows) row.update(now);
  }

  let controller = null;
  async function load() {
    if (controller) controller.abort();
    controller = new AbortController();
    try {
      board = await api('/v1/board', { signal: controller.signal });
      skew = Date.parse(board.now) - Date.now();
      const selected = queueSelect.value;
      fill(queueSelect, h('option', { value: '', text: 'All queues' }),
        board.queues.map((q) => h('option', { value: q.name, text: q.label || label(q.name), selected: q.name === selected })));
      updated.textContent = `updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
      draw();
    } catch (err) {
      if (err.name !== 'AbortError') fill(body, unavailable(err.message));
    }
  }
  load();
  const refresh = setInterval(load, REFRESH_MS);
  const ticker = setInterval(tick, 1000);
  return () => { clearInterval(refresh); clearInterval(ticker); if (controller) controller.abort(); };
}
