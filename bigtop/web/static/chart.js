// Line charts on a canvas: a time axis (the last minutes), a value axis from
// zero, one line per series. Colors and grid follow the theme's variables.

const PALETTE = ["--c1", "--c2", "--c3", "--c4", "--c5", "--c6", "--c7", "--c8"];

export function seriesColor(index) {
  return `var(${PALETTE[index % PALETTE.length]})`;
}

function cssVar(element, name) {
  return getComputedStyle(element).getPropertyValue(name).trim() || "#888";
}

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (value <= step * power) return step * power;
  }
  return 10 * power;
}

export class LineChart {
  // format(value) labels the value axis; windowSeconds is the time shown.
  constructor(container, { format = String, windowSeconds = 600, min = 0 } = {}) {
    this.container = container;
    this.canvas = document.createElement("canvas");
    container.append(this.canvas);
    this.format = format;
    this.windowSeconds = windowSeconds;
    this.floor = min;
    this.series = [];
    this.observer = new ResizeObserver(() => this.draw());
    this.observer.observe(container);
    this.media = window.matchMedia("(prefers-color-scheme: dark)");
    this.onScheme = () => this.draw();
    this.media.addEventListener("change", this.onScheme);
  }

  // series: [{name, colorIndex, points: [[t, v], ...]}]
  set(series) {
    this.series = series;
    this.draw();
  }

  destroy() {
    this.observer.disconnect();
    this.media.removeEventListener("change", this.onScheme);
  }

  draw() {
    const { canvas, container } = this;
    const width = container.clientWidth;
    const height = container.clientHeight;
    if (!width || !height) return;
    const ratio = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const muted = cssVar(container, "--muted");
    const grid = cssVar(container, "--grid");
    const font = `11px ${cssVar(container, "--sans")}`;

    const now = Date.now() / 1000;
    // The window grows with the history, from a minute up to windowSeconds.
    let oldest = now;
    for (const s of this.series) {
      if (s.points.length && s.points[0][0] < oldest) oldest = s.points[0][0];
    }
    const span = Math.min(this.windowSeconds, Math.max(60, Math.ceil((now - oldest) / 60) * 60));
    this.shownSeconds = span;
    const start = now - span;
    let top = this.floor;
    for (const s of this.series) {
      for (const [t, v] of s.points) {
        if (t >= start && v > top) top = v;
      }
    }
    top = niceMax(top * 1.1);

    ctx.font = font;
    const labels = [0, top / 2, top].map((v) => this.format(v));
    const left = Math.max(...labels.map((l) => ctx.measureText(l).width)) + 10;
    const right = 8;
    const topPad = 8;
    const bottom = 20;
    const plotW = width - left - right;
    const plotH = height - topPad - bottom;
    const x = (t) => left + ((t - start) / span) * plotW;
    const y = (v) => topPad + plotH - (v / top) * plotH;

    ctx.strokeStyle = grid;
    ctx.lineWidth = 1;
    ctx.fillStyle = muted;
    ctx.textBaseline = "middle";
    ctx.textAlign = "right";
    [0, top / 2, top].forEach((v, i) => {
      const yy = Math.round(y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(left, yy);
      ctx.lineTo(width - right, yy);
      ctx.stroke();
      ctx.fillText(labels[i], left - 6, yy);
    });
    ctx.textAlign = "center";
    ctx.textBaseline = "alphabetic";
    const step = [15, 30, 60, 120, 300].find((seconds) => span / seconds <= 6) || 600;
    for (let ago = 0; ago <= span; ago += step) {
      const xx = x(now - ago);
      let label = "now";
      if (ago) label = ago % 60 ? `-${ago}s` : `-${ago / 60}m`;
      ctx.fillText(label, Math.min(Math.max(xx, left + 12), width - right - 12), height - 5);
    }

    ctx.save();
    ctx.beginPath();
    ctx.rect(left, topPad - 1, plotW, plotH + 2);
    ctx.clip();
    this.series.forEach((s, index) => {
      const color = cssVar(container, PALETTE[(s.colorIndex ?? index) % PALETTE.length]);
      ctx.strokeStyle = color;
      ctx.lineWidth = 1.6;
      ctx.lineJoin = "round";
      ctx.beginPath();
      let drawing = false;
      let previous = null;
      for (const [t, v] of s.points) {
        if (t < start - 10 || v === null || v === undefined) {
          drawing = false;
          continue;
        }
        // A gap of more than 15 s (the node was unreachable) breaks the line.
        if (drawing && previous !== null && t - previous > 15) drawing = false;
        if (drawing) ctx.lineTo(x(t), y(v));
        else ctx.moveTo(x(t), y(v));
        drawing = true;
        previous = t;
      }
      ctx.stroke();
    });
    ctx.restore();
  }
}

// A tiny chart without axes, for a table row.
export function sparkline(canvas, values, colorVar = "--c1") {
  const width = canvas.clientWidth || 110;
  const height = canvas.clientHeight || 28;
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const shown = values.filter((v) => v !== null && v !== undefined);
  if (shown.length < 2) return;
  const top = Math.max(1, ...shown);
  const color = cssVar(canvas, colorVar);
  ctx.strokeStyle = color;
  ctx.lineWidth = 1.4;
  ctx.beginPath();
  shown.forEach((v, i) => {
    const xx = (i / (shown.length - 1)) * (width - 2) + 1;
    const yy = height - 2 - (v / top) * (height - 4);
    if (i === 0) ctx.moveTo(xx, yy);
    else ctx.lineTo(xx, yy);
  });
  ctx.stroke();
  ctx.lineTo(width - 1, height);
  ctx.lineTo(1, height);
  ctx.closePath();
  ctx.globalAlpha = 0.12;
  ctx.fillStyle = color;
  ctx.fill();
  ctx.globalAlpha = 1;
}
