// Charts drawn as plain SVG: a sparkline for trends, vertical bars for groups, a bullet for value vs target.
import { svg } from './dom.js';

// Trend over equal buckets of the window: one column per bucket, a dashed line at the target.
export function trendBars(points, { width = 240, height = 46, target = null, format = String } = {}) {
  const values = points.map((p) => p.value).filter((v) => v !== null && v !== undefined);
  const root = svg('svg', { class: 'trend', viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: 'none', role: 'img',
    'aria-label': values.length ? `trend over ${points.length} periods` : 'no data in this window' });
  const hi = Math.max(...values, target ?? 0, 0) || 1;
  const base = height - 2;
  const slot = width / Math.max(points.length, 1);
  points.forEach((p, i) => {
    const has = p.value !== null && p.value !== undefined;
    const barHeight = has ? Math.max(2, (Math.max(p.value, 0) / hi) * (height - 6)) : 2;
    const rect = svg('rect', { x: i * slot + slot * 0.15, y: base - barHeight, width: slot * 0.7, height: barHeight, rx: 1.5,
      class: has ? 'trend-bar' : 'trend-empty' });
    rect.append(svg('title', { text: `${new Date(p.since).toLocaleString()} – ${new Date(p.until).toLocaleString()}: ${has ? format(p.value) : 'no data'}` }));
    root.append(rect);
  });
  if (target !== null && target !== undefined && target > 0) {
    const y = base - (target / hi) * (height - 6);
    root.append(svg('line', { x1: 0, x2: width, y1: y, y2: y, class: 'target-line' }));
  }
  return root;
}

export function barChart(bars, { format = String, height = 210, max = null, className = '' } = {}) {
  const width = Math.max(300, bars.length * 96);
  const top = 26;
  const bottom = 42;
  const inner = height - top - bottom;
  const values = bars.map((b) => b.value ?? 0);
  const hi = max ?? Math.max(...values, 0) ?? 1;
  const root = svg('svg', { class: `bar-chart ${className}`, viewBox: `0 0 ${width} ${height}`, role: 'img',
    preserveAspectRatio: 'xMidYMid meet' });
  root.append(svg('line', { x1: 8, x2: width - 8, y1: top + inner, y2: top + inner, class: 'axis' }));
  const slot = (width - 16) / Math.max(bars.length, 1);
  bars.forEach((bar, i) => {
    const value = bar.value;
    const barHeight = value === null || value === undefined || !hi ? 0 : (value / hi) * inner;
    const cx = 8 + slot * i + slot / 2;
    const barWidth = Math.min(56, slot * 0.55);
    const group = svg('g', { class: 'bar', 'data-label': bar.label, 'data-value': value ?? '' });
    group.append(svg('rect', { x: cx - barWidth / 2, y: top + inner - barHeight, width: barWidth,
      height: Math.max(barHeight, value === null || value === undefined ? 0 : 1), rx: 3, class: `bar-rect ${bar.className || ''}` }));
    group.append(svg('text', { x: cx, y: top + inner - barHeight - 7, 'text-anchor': 'middle', class: 'bar-value',
      text: value === null || value === undefined ? '—' : format(value) }));
    group.append(svg('text', { x: cx, y: top + inner + 17, 'text-anchor': 'middle', class: 'bar-label', text: bar.label }));
    if (bar.detail) {
      group.append(svg('text', { x: cx, y: top + inner + 32, 'text-anchor': 'middle', class: 'bar-detail', text: bar.detail }));
    }
    group.append(svg('title', { text: `${bar.label}: ${value === null || value === undefined ? 'no data' : format(value)}${bar.detail ? ` (${bar.detail})` : ''}` }));
    root.append(group);
  });
  return root;
}

export function bullet(value, target, { better = 'higher', max = null, width = 220 } = {}) {
  const height = 14;
  const hi = max ?? Math.max(value ?? 0, target ?? 0) * 1.25 ?? 1;
  const scale = (v) => Math.max(0, Math.min(width, (v / (hi || 1)) * width));
  const good = value === null || target === null ? null : better === 'higher' ? value >= target : value <= target;
  const root = svg('svg', { class: 'bullet', viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: 'none', role: 'img' });
  root.append(svg('rect', { x: 0, y: 3, width, height: 8, rx: 4, class: 'bullet-track' }));
  if (value !== null && value !== undefined) {
    root.append(svg('rect', { x: 0, y: 3, width: scale(value), height: 8, rx: 4,
      class: `bullet-bar ${good === null ? '' : good ? 'good' : 'bad'}` }));
  }
  if (target !== null && target !== undefined) {
    root.append(svg('line', { x1: scale(target), x2: scale(target), y1: 0, y2: height, class: 'bullet-target' }));
  }
  return root;
}
