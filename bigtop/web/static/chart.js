// Line charts on a canvas: a time axis (the range shown, up to now), a value
// axis from zero, one line per series. A null value is no data: the line
// breaks there (bigtop-web puts a null row where a gap is), and nothing is
// drawn where there is no point. Colors and grid follow the theme's variables.

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

// The time axis's labels: "now", then every step back ("-30s", "-10m", "-4h").
const TICKS = [15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 14400, 21600, 43200];
// The spans a young history is shown over (up to the range's).
const SPANS = [60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

function agoLabel(seconds) {
  if (seconds < 60) return `-${Math.round(seconds)}s`;
  if (seconds < 3600) return `-${+(seconds / 60).toFixed(1)}m`;
  return `-${+(seconds / 3600).toFixed(1)}h`;
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

  // series: [{name, colorIndex, points: [[t, v], ...]}] (v null: no data)
  set(series, windowSeconds = this.windowSeconds) {
    this.series = series;
    this.windowSeconds = windowSeconds;
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
    // The range, or less while the history is younger than it (bigtop-web
    // keeps it since it started): from its oldest point, in nice steps.
    let oldest = null;
    for (const s of this.series) {
      for (const [t, v] of s.points) {
        if (v !== null && v !== undefined && t >= now - this.windowSeconds) {
          if (oldest === null || t < oldest) oldest = t;
          break;
        }
      }
    }
    const age = oldest === null ? 0 : now - oldest;
    const nice = SPANS.find((seconds) => seconds >= age) || this.windowSeconds;
    const span = Math.min(this.windowSeconds, Math.max(Math.min(60, this.windowSeconds), nice));
    this.shownSeconds = span;
    this.oldest = oldest;
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
    const step = TICKS.find((seconds) => span / seconds <= 6) || span / 6;
    for (let ago = 0; ago <= span + 1e-6; ago += step) {
      const xx = x(now - ago);
      const label = ago ? agoLabel(ago) : "now";
      ctx.fillText(label, Math.min(Math.max(xx, left + 12), width - right - 12), height - 5);
    }

    ctx.save();
    ctx.beginPath();
    ctx.rect(left, topPad - 1, plotW, plotH + 2);
    ctx.clip();
    // What was drawn, for tests and the curious: points, line breaks (gaps),
    // the lowest value and the oldest point's time.
    const drawn = { points: 0, gaps: 0, min: null, first: null };
    this.series.forEach((s, index) => {
      const color = cssVar(container, PALETTE[(s.colorIndex ?? index) % PALETTE.length]);
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      ctx.lineWidth = 1.6;
      ctx.lineJoin = "round";
      ctx.beginPath();
      let drawing = false;
      let broken = false; // a null came after something was drawn
      let run = 0; // points in the line being drawn
      let last = null;
      const dot = () => { // a lone point between two gaps: a dot, not nothing
        if (run === 1 && last) ctx.fillRect(last[0] - 1, last[1] - 1, 2.5, 2.5);
      };
      for (const [t, v] of s.points) {
        if (t < start) continue;
        if (v === null || v === undefined) {
          if (drawing) broken = true;
          dot();
          drawing = false;
          run = 0;
          continue;
        }
        if (!drawing && broken) drawn.gaps += 1;
        drawn.points += 1;
        if (drawn.min === null || v < drawn.min) drawn.min = v;
        if (drawn.first === null || t < drawn.first) drawn.first = t;
        if (drawing) ctx.lineTo(x(t), y(v));
        else ctx.moveTo(x(t), y(v));
        drawing = true;
        run += 1;
        last = [x(t), y(v)];
      }
      dot();
      ctx.stroke();
    });
    ctx.restore();
    this.drawn = drawn;
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
