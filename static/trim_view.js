// The Dataset tab's waveform (studio/ui/trim_view.py): drag on it to choose the kept region, drag an
// edge to move it, play just that region. Runs as a gr.HTML's js_on_load: `element` is the
// component, `props.value` the clip as JSON {duration, peaks, start, end, src} (or ""), `watch` reruns
// a function when Python sends a new clip. The trim fields stay the truth: a drag writes them, and
// typing in them moves the region. Nothing here reaches the server except through those fields.
const FIELDS = {start: '#ds-trim-start input', end: '#ds-trim-end input'};
const EDGE_PX = 8;  // a press this close to an edge moves that edge
const MIN_DRAG_PX = 3;  // less than this is a click, not a drag
const KEPT = '#4b7bec', CUT = '#b3b8c3', BAND = 'rgba(75, 123, 236, 0.12)', HANDLE = '#1e3a8a', HEAD = '#e8590c';

let clip = null;  // the selected clip, or null
let region = [0, 0];  // the kept region, seconds
let drag = null;  // {edge: 'start'|'end', anchor: seconds|null, x0: px, moved: bool}
let stopAt = null;  // while playing: where to stop

const q = (sel) => element.querySelector(sel);
const audio = () => q('audio.tv-audio');
const fmt = (s) => s.toFixed(2);

function load() {
  try { clip = props.value ? JSON.parse(props.value) : null; } catch (e) { clip = null; }
  const a = audio();
  a.pause();
  stopAt = null;
  if (clip) {
    region = [clip.start, clip.end];
    if (a.dataset.src !== clip.src) { a.dataset.src = clip.src; a.src = clip.src; }
  } else {
    a.removeAttribute('src');
    a.dataset.src = '';
  }
  q('.tv-play').disabled = !clip;
  draw();
}

function geometry() {
  const c = q('canvas.tv-canvas');
  const w = c.clientWidth, h = c.clientHeight, dpr = window.devicePixelRatio || 1;
  if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
    c.width = Math.round(w * dpr);
    c.height = Math.round(h * dpr);
  }
  const ctx = c.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return {c, ctx, w, h};
}

function draw() {
  const {ctx, w, h} = geometry();
  ctx.clearRect(0, 0, w, h);
  const info = q('.tv-info');
  if (!clip || !w) {
    info.textContent = 'Select a clip in the table, then drag on its waveform to choose what to keep.';
    return;
  }
  const axis = 16, mid = (h - axis) / 2, x = (t) => (t / clip.duration) * w;
  const [a, b] = region;
  ctx.fillStyle = BAND;
  ctx.fillRect(x(a), 0, x(b) - x(a), h - axis);
  const n = clip.peaks.length, bar = w / Math.max(n, 1);
  clip.peaks.forEach((p, i) => {
    const t = ((i + 0.5) / n) * clip.duration, half = Math.max(0.5, p * (mid - 2));
    ctx.fillStyle = t >= a && t <= b ? KEPT : CUT;
    ctx.fillRect(i * bar, mid - half, Math.max(1, bar - 0.5), 2 * half);
  });
  ctx.fillStyle = HANDLE;
  for (const t of [a, b]) ctx.fillRect(Math.min(w - 3, Math.max(0, x(t) - 1.5)), 0, 3, h - axis);
  const el = audio();
  if (stopAt !== null && !el.paused) {
    ctx.fillStyle = HEAD;
    ctx.fillRect(x(el.currentTime) - 1, 0, 2, h - axis);
  }
  // a time axis with a tick every 1, 2, 5, 10... seconds (about one per 80 px)
  const steps = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300];
  const step = steps.find((s) => (s / clip.duration) * w >= 80) || 600;
  ctx.fillStyle = getComputedStyle(q('.tv-info')).color;  // the theme's text colour, light or dark
  ctx.font = '11px sans-serif';
  ctx.textBaseline = 'bottom';
  for (let t = 0; t <= clip.duration + 1e-9; t += step) {
    ctx.fillRect(x(t), h - axis, 1, 4);
    const label = `${+t.toFixed(1)} s`;
    ctx.fillText(label, Math.min(x(t) + 2, w - ctx.measureText(label).width - 1), h);
  }
  info.textContent = `keep ${fmt(a)}–${fmt(b)} s (${fmt(b - a)} s of ${fmt(clip.duration)} s)`;
}

function seconds(evt) {
  const r = q('canvas.tv-canvas').getBoundingClientRect();
  const t = ((evt.clientX - r.left) / r.width) * clip.duration;
  return Math.round(Math.min(clip.duration, Math.max(0, t)) * 100) / 100;  // 10 ms steps
}

function writeFields() {
  for (const [key, value] of [['start', region[0]], ['end', region[1]]]) {
    const input = document.querySelector(FIELDS[key]);
    if (!input) continue;
    input.value = fmt(value);
    input.dispatchEvent(new Event('input', {bubbles: true}));  // the Number's value follows, as if typed
  }
}

element.addEventListener('pointerdown', (evt) => {
  if (!clip || !evt.target.matches('canvas.tv-canvas')) return;
  const r = evt.target.getBoundingClientRect(), px = evt.clientX - r.left;
  const edgePx = (t) => Math.abs(px - (t / clip.duration) * r.width);
  const edge = edgePx(region[0]) <= EDGE_PX ? 'start' : edgePx(region[1]) <= EDGE_PX ? 'end' : null;
  drag = {edge, anchor: edge ? null : seconds(evt), x0: evt.clientX, moved: false};
  evt.target.setPointerCapture(evt.pointerId);
  evt.preventDefault();
});

element.addEventListener('pointermove', (evt) => {
  if (!drag) return;
  if (!drag.moved && Math.abs(evt.clientX - drag.x0) < MIN_DRAG_PX) return;
  drag.moved = true;
  const t = seconds(evt);
  if (drag.edge === 'start') region = [Math.min(t, region[1]), region[1]];
  else if (drag.edge === 'end') region = [region[0], Math.max(t, region[0])];
  else region = [Math.min(drag.anchor, t), Math.max(drag.anchor, t)];
  draw();
  writeFields();
});

const endDrag = () => { drag = null; };
element.addEventListener('pointerup', endDrag);
element.addEventListener('pointercancel', endDrag);

// The fields move the region: at once when typed in, and within a moment when Python sets them
// (a Number set from the server fires no input event).
function followFields() {
  if (!clip || drag) return;
  const a = parseFloat(document.querySelector(FIELDS.start)?.value);
  const b = parseFloat(document.querySelector(FIELDS.end)?.value);
  const next = [Number.isFinite(a) ? a : 0, Number.isFinite(b) ? b : clip.duration];
  if (next[0] !== region[0] || next[1] !== region[1]) {
    region = next;
    draw();
  }
}
document.addEventListener('input', (evt) => {
  if (evt.target.matches(FIELDS.start) || evt.target.matches(FIELDS.end)) followFields();
});
setInterval(followFields, 300);

function tick() {
  const el = audio();
  if (stopAt !== null && el.currentTime >= stopAt) el.pause();
  draw();
  if (!el.paused) requestAnimationFrame(tick);
}

element.addEventListener('click', (evt) => {
  if (!clip || !evt.target.matches('.tv-play')) return;
  const el = audio();
  if (!el.paused) { el.pause(); return; }
  const [a, b] = region;
  stopAt = b;
  el.currentTime = a;
  el.play().then(() => requestAnimationFrame(tick)).catch(() => { stopAt = null; });
});

element.addEventListener('timeupdate', () => {  // rAF sleeps in a background tab; this does not
  const el = audio();
  if (stopAt !== null && el.currentTime >= stopAt) el.pause();
}, true);
element.addEventListener('play', () => { q('.tv-play').textContent = '■ Stop'; }, true);
element.addEventListener('pause', () => {
  q('.tv-play').textContent = '▶ Play kept region';
  draw();
}, true);

new ResizeObserver(() => draw()).observe(q('canvas.tv-canvas'));
watch('value', load);
load();
