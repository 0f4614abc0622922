// The console's charts, drawn as inline SVG from API data (no library, nothing fetched). Each
// chart is an image with a text alternative (its aria-label) and a <title> on every mark.

const NS = 'http://www.w3.org/2000/svg';

/** svg('rect', {x: 1}, 'title text'): an SVG element; a third argument becomes its text. */
export function svg(tag, attributes = {}, text) {
  const element = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) element.setAttribute(name, String(value));
  }
  if (text !== undefined) element.textContent = text;
  return element;
}

const WIDTH = 640;
const HEIGHT = 200;
const PAD = { left: 48, right: 12, top: 10, bottom: 28 };

/** A round number at or above `value`, so the axis reads 0, half and top. */
function ceiling(value) {
  if (value <= 0) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  const step = [1, 2, 2.5, 5, 10].find((s) => s * magnitude >= value);
  return step * magnitude;
}

function frame(label, top) {
  const chart = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: 'chart', role: 'img', 'aria-label': label });
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  for (const share of [0, 0.5, 1]) {
    const y = PAD.top + plotHeight * (1 - share);
    chart.append(svg('line', { x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y, class: share ? 'grid' : 'axis' }));
    chart.append(svg('text', { x: PAD.left - 6, y: y + 4, 'text-anchor': 'end', class: 'tick' }, formatNumber(top * share)));
  }
  return chart;
}

export function formatNumber(value) {
  if (Math.abs(value) >= 10000) return `${Math.round(value / 1000)}k`;
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

function xLabels(chart, labels, x) {
  if (!labels.length) return;
  const shown = labels.length === 1 ? [0] : [0, labels.length - 1];
  for (const i of shown) {
    const anchor = i === 0 ? 'start' : 'end';
    chart.append(svg('text', { x: x(i), y: HEIGHT - 8, 'text-anchor': labels.length === 1 ? 'middle' : anchor, class: 'tick' }, labels[i]));
  }
}

function legend(names) {
  const list = document.createElement('ul');
  list.className = 'legend';
  names.forEach((name, index) => {
    const item = document.createElement('li');
    const swatch = document.createElement('span');
    swatch.className = `swatch series-${index}`;
    item.append(swatch, name);
    list.append(item);
  });
  return list;
}

/**
 * Lines over a shared x axis: `series` is [{name, values}] (a null value leaves a gap), `labels`
 * names each x position (first and last are drawn) and `titles` each position's tooltip.
 */
export function lineChart({ label, series, labels, titles = labels }) {
  const count = Math.max(0, ...series.map((s) => s.values.length));
  const top = ceiling(Math.max(0, ...series.flatMap((s) => s.values.filter((v) => v !== null && v !== undefined))));
  const chart = frame(label, top);
  const plotWidth = WIDTH - PAD.left - PAD.right;
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const x = (i) => PAD.left + (count <= 1 ? plotWidth / 2 : (plotWidth * i) / (count - 1));
  const y = (v) => PAD.top + plotHeight * (1 - v / top);
  series.forEach((s, index) => {
    let path = '';
    let pen = false;
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) { pen = false; return; }
      path += `${pen ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    });
    const group = svg('g', { class: `series series-${index}`, 'data-series': s.name });
    if (path) group.append(svg('path', { d: path }));
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      const dot = svg('circle', { cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 3 });
      dot.append(svg('title', {}, `${s.name}: ${v}${titles[i] ? ` (${titles[i]})` : ''}`));
      group.append(dot);
    });
    chart.append(group);
  });
  xLabels(chart, labels, x);
  const figure = document.createElement('figure');
  figure.className = 'chart-figure';
  figure.append(chart, legend(series.map((s) => s.name)));
  return figure;
}

/** Bars over a shared x axis: `bars` is [{value, title, kind}], `kind` a class (e.g. failed). */
export function barChart({ label, bars, labels, unit = '' }) {
  const top = ceiling(Math.max(0, ...bars.map((b) => b.value ?? 0)));
  const chart = frame(label, top);
  const plotWidth = WIDTH - PAD.left - PAD.right;
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const slot = plotWidth / Math.max(bars.length, 1);
  const width = Math.max(Math.min(slot * 0.7, 40), 1);
  bars.forEach((bar, i) => {
    const value = bar.value ?? 0;
    const height = Math.max((plotHeight * value) / top, value > 0 ? 1 : 0);
    const rect = svg('rect', {
      x: (PAD.left + slot * i + (slot - width) / 2).toFixed(1), y: (PAD.top + plotHeight - height).toFixed(1),
      width: width.toFixed(1), height: height.toFixed(1), class: `bar ${bar.kind ?? ''}`,
    });
    rect.append(svg('title', {}, `${bar.title}: ${formatNumber(value)}${unit}`));
    chart.append(rect);
  });
  xLabels(chart, labels, (i) => PAD.left + slot * i + slot / 2);
  const figure = document.createElement('figure');
  figure.className = 'chart-figure';
  figure.append(chart);
  return figure;
}

/** One bar split to scale into named parts ([{name, value}]), e.g. a job's phases. */
export function stackedBar({ label, parts, unit = '' }) {
  const total = Math.max(parts.reduce((sum, part) => sum + (part.value || 0), 0), 1);
  const width = 600;
  const chart = svg('svg', { viewBox: `0 0 ${width} 28`, preserveAspectRatio: 'none', class: 'timeline', role: 'img', 'aria-label': label });
  let x = 0;
  parts.forEach((part, index) => {
    const w = (width * (part.value || 0)) / total;
    const rect = svg('rect', { x: x.toFixed(1), y: 2, width: Math.max(w, 1).toFixed(1), height: 24, class: `phase-${index % 6}` });
    rect.append(svg('title', {}, `${part.name}: ${formatNumber(part.value || 0)}${unit}`));
    chart.append(rect);
    x += w;
  });
  const list = document.createElement('ul');
  list.className = 'legend';
  parts.forEach((part, index) => {
    const item = document.createElement('li');
    const swatch = document.createElement('span');
    swatch.className = `swatch phase-${index % 6}`;
    item.append(swatch, `${part.name} ${formatNumber(part.value || 0)}${unit}`);
    list.append(item);
  });
  const box = document.createElement('div');
  box.append(chart, list);
  return box;
}
