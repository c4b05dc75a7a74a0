// KPI view: every figure over the chosen window, with its target, trend and source.
import { api } from './api.js';
import { barChart, bullet, trendBars } from './charts.js';
import { fill, fmtDuration, fmtMoney, fmtNumber, fmtRate, fmtTime, h, label, unavailable } from './dom.js';

const WINDOWS = [['1h', 'Last hour'], ['24h', '24 hours'], ['7d', '7 days'], ['30d', '30 days']];
const REFRESH_MS = 30000;

function formatter(figure) {
  if (figure.kind === 'duration') return (v) => fmtDuration(v);
  if (figure.kind === 'rate') return (v) => fmtRate(v);
  if (figure.key === 'csat_percent') return (v) => (v === null || v === undefined ? '—' : `${fmtNumber(v)}%`);
  if (figure.key === 'nps') return (v) => (v === null || v === undefined ? '—' : `${v > 0 ? '+' : ''}${fmtNumber(v)}`);
  return (v) => fmtNumber(v, 2);
}

function targetText(figure, format) {
  if (figure.target === null || figure.target === undefined) {
    return figure.better === 'lower' ? 'lower is better' : 'higher is better';
  }
  return `target ${figure.better === 'lower' ? '≤' : '≥'} ${format(figure.target)}`;
}

function countText(figure) {
  if (figure.kind === 'rate') return `${figure.numerator ?? 0} of ${figure.denominator ?? 0}`;
  if (figure.kind === 'duration') return `${figure.count ?? 0} measured${figure.max ? ` · max ${fmtDuration(figure.max)}` : ''}`;
  return `${figure.count ?? 0} answers`;
}

function tile(figure) {
  const attrs = { class: 'kpi-tile card', dataset: { kpi: figure.key, available: String(figure.available) } };
  if (!figure.available) {
    return h('article', attrs, h('header', { class: 'kpi-label', text: figure.label }), unavailable(figure.reason));
  }
  const format = formatter(figure);
  const status = figure.meets_target === null || figure.meets_target === undefined ? 'neutral'
    : figure.meets_target ? 'good' : 'bad';
  attrs.dataset.value = figure.value ?? '';
  attrs.dataset.target = figure.target ?? '';
  const max = figure.key === 'csat_percent' ? 100 : figure.kind === 'rate' ? 1 : figure.key === 'satisfaction' ? 5 : null;
  return h('article', attrs,
    h('header', { class: 'kpi-label' }, figure.label, h('span', { class: `kpi-status ${status}`, text:
      status === 'good' ? 'on target' : status === 'bad' ? 'off target' : '' })),
    h('div', { class: `kpi-value ${status}`, text: format(figure.value) }),
    h('div', { class: 'kpi-sub' }, h('span', { text: targetText(figure, format) }), h('span', { class: 'muted', text: countText(figure) })),
    figure.target !== null && figure.target !== undefined && figure.key !== 'nps'
      ? bullet(figure.value, figure.target, { better: figure.better, max }) : null,
    h('div', { class: 'trend-wrap' }, trendBars(figure.trend || [], { target: figure.target ?? null, format }),
      h('div', { class: 'trend-axis' }, h('span', { text: 'start of window' }), h('span', { text: 'now' }))),
    h('footer', { class: 'kpi-source', text: `source: ${figure.source.service} ${figure.source.path}` }));
}

function chartCard(chart) {
  const card = h('article', { class: 'chart-card card', dataset: { chart: chart.key, available: String(chart.available) } },
    h('header', { class: 'chart-title', text: chart.label }));
  if (!chart.available) {
    card.append(unavailable(chart.reason));
    return card;
  }
  let format = (v) => fmtRate(v);
  let max = 1;
  if (chart.unit === 'pct') { format = (v) => `${fmtNumber(v)}%`; max = 100; }
  if (chart.month) card.querySelector('.chart-title').append(h('span', { class: 'muted', text: ` · ${chart.month}` }));
  if (chart.kind === 'money') { format = (v) => fmtMoney(v, chart.bars[0]?.currency || 'CNY'); max = null; }
  const bars = chart.bars.map((b) => ({ ...b, label: label(b.label) }));
  if (!bars.some((b) => b.value !== null && b.value !== undefined)) {
    card.append(h('div', { class: 'empty', dataset: { empty: 'true' } }, h('strong', { text: 'No data in this window' }),
      h('p', { text: bars.length ? bars.map((b) => `${b.label}: ${b.detail || 'none'}`).join(' · ') : '' })));
  } else {
    card.append(barChart(bars, { format, max, className: chart.key }));
  }
  if (chart.overall !== undefined && chart.overall !== null) {
    card.append(h('p', { class: 'chart-note', text: `All tiers: ${format(chart.overall)}` }));
  }
  card.append(h('footer', { class: 'kpi-source', text: `source: ${chart.source.service} ${chart.source.path}` }));
  return card;
}

export function mountKpis(container, params) {
  let windowKey = WINDOWS.some(([k]) => k === params[0]) ? params[0] : '24h';
  const body = h('div', { class: 'kpi-body', id: 'kpi-body' }, h('div', { class: 'loading', text: 'Loading figures…' }));
  const asOf = h('span', { class: 'muted', id: 'kpi-asof' });
  const switcher = h('div', { class: 'segmented', role: 'tablist' }, WINDOWS.map(([key, text]) => h('button', {
    type: 'button', class: key === windowKey ? 'active' : '', dataset: { window: key }, text,
    onclick: () => { location.hash = `#/kpis/${key}`; },
  })));
  container.append(h('div', { class: 'toolbar kpi-toolbar' }, switcher, asOf, h('span', { class: 'spacer' }),
    h('button', { class: 'ghost', type: 'button', text: 'Refresh', onclick: () => load() })), body);

  let controller = null;
  async function load() {
    if (controller) controller.abort();
    controller = new AbortController();
    try {
      const data = await api(`/v1/kpis?window=${windowKey}`, { signal: controller.signal });
      body.dataset.since = data.since;
      body.dataset.until = data.until;
      asOf.textContent = `${fmtTime(data.since, true)} → ${fmtTime(data.until, true)}${data.cases !== null ? ` · ${data.cases} cases routed` : ''}`;
      const figure = (key) => data.figures.find((f) => f.key === key);
      const chart = (key) => data.charts.find((c) => c.key === key);
      const group = (title, items, cls = '') => h('section', { class: `kpi-group ${cls}` }, h('h2', { class: 'group-title', text: title }),
        h('div', { class: 'kpi-grid' }, items.filter(Boolean)));
      fill(body,
        group('Speed', ['intake_to_routed', 'first_response', 'handoff'].map((k) => figure(k) && tile(figure(k)))),
        group('Resolution and SLA', [...['resolution_rate', 'first_handling_rate'].map((k) => figure(k) && tile(figure(k))),
          chart('sla_compliance_by_tier') && chartCard(chart('sla_compliance_by_tier'))], 'with-chart'),
        group('Customer satisfaction', ['csat_percent', 'nps', 'ces_average', 'satisfaction'].map((k) => figure(k) && tile(figure(k)))),
        group('By customer tier', ['csat_by_customer_tier', 'compensation_by_tier'].map((k) => chart(k) && chartCard(chart(k))), 'charts'),
        group('Budgets', [chart('budget_by_department') && chartCard(chart('budget_by_department'))], 'charts'));
    } catch (err) {
      if (err.name === 'AbortError') return;
      fill(body, unavailable(err.message));
    }
  }
  load();
  const timer = setInterval(load, REFRESH_MS);
  return () => { clearInterval(timer); if (controller) controller.abort(); };
}
