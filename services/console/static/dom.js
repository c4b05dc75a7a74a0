// Small DOM and formatting helpers shared by every view. No framework: elements are built with h().

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// Replace an element's children (arrays are flattened, empty values skipped).
export function fill(el, ...children) {
  return append(clear(el), children);
}

const SVG_NS = 'http://www.w3.org/2000/svg';

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    if (key === 'text') el.textContent = value;
    else if (key === 'class') el.setAttribute('class', value);
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) if (child) el.append(child);
  return el;
}

export function shortId(id) {
  if (!id) return '—';
  return id.length > 13 ? `${id.slice(0, 8)}…` : id;
}

export function fmtTime(iso, withDate = false) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
  if (!withDate) return time;
  return `${d.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${time}`;
}

export function fmtDuration(seconds, { signed = false } = {}) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return '—';
  const sign = seconds < 0 ? '−' : (signed ? '' : '');
  let s = Math.abs(seconds);
  if (s < 1) return `${sign}${s.toFixed(2)}s`;
  if (s < 60) return `${sign}${s < 10 ? s.toFixed(1) : Math.round(s)}s`;
  const days = Math.floor(s / 86400); s -= days * 86400;
  const hours = Math.floor(s / 3600); s -= hours * 3600;
  const minutes = Math.floor(s / 60); const secs = Math.floor(s - minutes * 60);
  if (days) return `${sign}${days}d ${hours}h`;
  if (hours) return minutes ? `${sign}${hours}h ${String(minutes).padStart(2, '0')}m` : `${sign}${hours}h`;
  return secs ? `${sign}${minutes}m ${String(secs).padStart(2, '0')}s` : `${sign}${minutes}m`;
}

export function fmtRate(rate, digits = 1) {
  if (rate === null || rate === undefined) return '—';
  return `${(rate * 100).toFixed(digits)}%`;
}

export function fmtNumber(value, digits = 1) {
  if (value === null || value === undefined) return '—';
  return Number(value).toFixed(digits);
}

export function fmtMoney(minor, currency = 'CNY') {
  if (minor === null || minor === undefined) return '—';
  try {
    return new Intl.NumberFormat('en', { style: 'currency', currency: currency || 'CNY' }).format(minor / 100);
  } catch {
    return `${(minor / 100).toFixed(2)} ${currency || ''}`;
  }
}

export function label(text) {
  return String(text || '').replaceAll('_', ' ');
}

export function severityPill(severity) {
  if (!severity) return null;
  return h('span', { class: `pill sev-${String(severity).toLowerCase()}`, text: severity });
}

export function tierBadge(tier) {
  if (!tier) return null;
  const names = { high_value: 'High value', mid_value: 'Mid value', potential: 'Potential' };
  return h('span', { class: `tier tier-${tier}`, text: names[tier] || label(tier) });
}

export function typeFamily(type) {
  const head = String(type || '').split('.')[0];
  return ['complaint', 'case', 'compensation', 'incident', 'loyalty', 'survey', 'care', 'order'].includes(head)
    ? head : 'other';
}

export function emptyState(title, detail) {
  return h('div', { class: 'empty' }, h('strong', { text: title }), detail ? h('p', { text: detail }) : null);
}

export function unavailable(reason) {
  return h('div', { class: 'unavailable', role: 'note' }, h('strong', { text: 'Unavailable' }),
    h('p', { text: reason || 'the source did not answer' }));
}
