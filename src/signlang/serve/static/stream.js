// signlang streaming decoder for the browser: landmark frames (75 x 3, NaN = not detected) with times
// in seconds in, one event per performed sign out. It mirrors signlang.inference.streaming's
// StreamingRecognizer as /ws/live runs it (its docstring is the specification; the numbers it uses
// come from the server's GET /web/config, never from literals here):
//  * every frame is written onto a time grid (sample_fps; linear between frames closer than
//    max_frame_gap_s, float32 like numpy), a ring of one window;
//  * "segmenter" mode (a model with a segmenter, the default): each grid sample's per-frame features
//    (signlang.features.frames, frame_features/v1) go once through the causal segmenter graph; the
//    segment decoder (signlang.models.segment_decoding) closes segments, each classified by the
//    one graph (model.onnx) and gated (few_frames, no_hands, idle, low_confidence);
//  * "gate" mode (no segmenter): windows every hop, the no-sign gate (real frames, hands, motion,
//    no-sign class, threshold), smoothing over active windows, runs of >= min_windows -> one event;
//  * the decision policy (min_confidence, the open-set rule) marks low_confidence / unknown.
// The graphs are reached through two small adapters (ortModel, ortSegmenter) over an
// onnxruntime-web namespace passed in, so this module runs in a page and in node alike.
// Usage: const rec = new StreamRecognizer(cfg, await ortModel(ort, bytes, cfg), await ortSegmenter(ort, bytes, cfg));
//        const events = await rec.push(points, t); ... await rec.finish(); rec.latest (the last window/segment).

export const FRAME_FEATURES = "frame_features/v1";

export class FrameError extends Error {}

const f32 = Math.fround;

// --- the decision policy (signlang.inference.policy, signlang.models.openset) ---------------------
const PROBA_FLOOR = 1e-6;
const SCORES = {
  max_prob: (p) => Math.max(...p),
  margin: (p) => { const s = [...p].sort((a, b) => b - a); return s[0] - (s.length > 1 ? s[1] : 0); },
  entropy: (p) => p.reduce((acc, v) => acc + v * Math.log(Math.max(v, PROBA_FLOOR)), 0),
  energy: (p, params, defaults) => {
    const t = params.T ?? defaults.energy_T;
    const z = p.map((v) => Math.log(Math.max(v, PROBA_FLOOR)) / t), m = Math.max(...z);
    return t * (m + Math.log(z.reduce((acc, v) => acc + Math.exp(v - m), 0)));
  },
  unknown_class: (p, params) => 1 - p[params.index],
};

export class Policy {
  constructor(cfg) {
    this.classes = cfg.classes;
    this.minConfidence = cfg.policy.min_confidence;
    this.noSignIndex = cfg.policy.no_sign === null ? null : this.classes.indexOf(cfg.policy.no_sign);
    this.openSet = cfg.policy.open_set;
    if (this.openSet && !(this.openSet.method in SCORES)) {
      throw new Error(`the open-set rule '${this.openSet.method}' is not implemented in the page (known: ${Object.keys(SCORES).join(", ")})`);
    }
    this.defaults = cfg.policy.score_defaults || {};
  }
  lowConfidence(p) { return Math.max(...p) < this.minConfidence; }
  unknown(p) { return this.openSet ? SCORES[this.openSet.method](p, this.openSet.params || {}, this.defaults) < this.openSet.threshold : false; }
  isNoSign(i) { return this.noSignIndex !== null && i === this.noSignIndex; }
}

function topIndices(p, k) { // argsort(-p, stable)[:k]
  return [...p.keys()].sort((a, b) => p[b] - p[a] || a - b).slice(0, k);
}

// --- per-frame features (signlang.features.frames.StreamFeaturizer), float32 as numpy ---------------
export class FrameFeaturizer {
  constructor(layout) {
    this.L = layout;
    this.dim = 2 * (1 + 2 + 2 * (layout.hand_points - 1)) + 2 * layout.frame_pose_points.length + 2 * (2 + layout.frame_pose_points.length);
    this.reset();
  }
  reset() { this.prev = new Float32Array(this.L.tracked_dim).fill(NaN); }
  // frames: array of Float32Array(225) -> Float32Array(n * dim)
  features(frames) {
    const L = this.L, out = new Float32Array(frames.length * this.dim);
    frames.forEach((fr, r) => {
      const x = (i) => fr[3 * i], y = (i) => fr[3 * i + 1];
      const ls = L.left_shoulder, rs = L.right_shoulder;
      const cx = f32(f32(x(ls) + x(rs)) / 2), cy = f32(f32(y(ls) + y(rs)) / 2);
      const dx = f32(x(ls) - x(rs)), dy = f32(y(ls) - y(rs));
      let w = f32(Math.sqrt(f32(f32(dx * dx) + f32(dy * dy))));
      if (!(Number.isFinite(w) && w > 1e-3)) w = NaN;
      const bx = (i) => f32(f32(x(i) - cx) / w), by = (i) => f32(f32(y(i) - cy) / w);
      const row = [], tracked = [];
      for (const [a] of L.hands) {
        const wx = bx(a), wy = by(a);
        row.push(Number.isFinite(wx) && Number.isFinite(wy) ? 1 : 0, wx, wy);
        for (let j = 1; j < L.hand_points; j++) row.push(f32(bx(a + j) - wx), f32(by(a + j) - wy));
        tracked.push(wx, wy);
      }
      for (const i of L.frame_pose_points) { row.push(bx(i), by(i)); tracked.push(bx(i), by(i)); }
      tracked.forEach((v, j) => row.push(f32(v - this.prev[j])));
      this.prev = Float32Array.from(tracked);
      const o = r * this.dim;
      row.forEach((v, j) => { out[o + j] = Number.isFinite(v) ? v : 0; });
    });
    return out;
  }
}

// --- the segment decoder (signlang.models.segment_decoding.SegmentDecoder) ------------------------
export class SegmentDecoder {
  constructor({ begin = 0.3, min_frames = 6, max_frames = 150 }, tags) {
    Object.assign(this, { begin, minFrames: min_frames, maxFrames: max_frames, tags });
    this.reset();
  }
  reset() { this.t = 0; this.start = null; this.prevB = 0; }
  push(probs, n) { // probs: Float32Array(n * 3) (O, B, I at tags.O / tags.B / tags.I)
    const out = [], { O, B, I } = this.tags;
    for (let r = 0; r < n; r++) {
      const p = probs.subarray(3 * r, 3 * r + 3), t = this.t++;
      const rise = p[B] >= this.begin && this.begin > this.prevB;
      this.prevB = p[B];
      if (this.start !== null && (p[O] > 0.5 || (rise && t - this.start >= this.minFrames) || t - this.start >= this.maxFrames)) out.push(...this.close(t));
      if (this.start === null && (rise || p[B] + p[I] > 0.5) && p[O] <= 0.5) this.start = t;
    }
    return out;
  }
  finish() { return this.close(this.t); }
  close(end) {
    const start = this.start;
    this.start = null;
    return start !== null && end - start >= this.minFrames ? [[start, end]] : [];
  }
}

// --- the segmenter's tagger (signlang.inference.segments._TaggerBase) and spotter -----------------
class Tagger {
  constructor(segmenter) { this.seg = segmenter; this.lookahead = segmenter.lookahead; this.reset(); }
  reset() { this.state = this.seg.zeroState(); this.skip = this.lookahead; this.last = null; }
  async step(features, n, dim) {
    if (!n) return [new Float32Array(0), 0];
    const [probs, state] = await this.seg.run(features, n, dim, this.state);
    this.state = state;
    this.last = features.slice((n - 1) * dim, n * dim);
    const drop = Math.min(this.skip, n);
    this.skip -= drop;
    return [probs.slice(3 * drop), n - drop];
  }
  async flush(dim) {
    if (this.last === null || !this.lookahead) return [new Float32Array(0), 0];
    const rep = new Float32Array(this.lookahead * dim);
    for (let i = 0; i < this.lookahead; i++) rep.set(this.last, i * dim);
    return this.step(rep, this.lookahead, dim);
  }
}

class SegmentSpotter {
  constructor(segmenter, cfg) {
    this.tagger = new Tagger(segmenter);
    this.decoder = new SegmentDecoder(segmenter.decode, cfg.segmenter.tags);
    this.features = new FrameFeaturizer(cfg.layout);
    this.capacity = this.decoder.maxFrames + this.tagger.lookahead + 16;
    this.size = 3 * cfg.layout.n_points;
    this.ring = new Float32Array(this.capacity * this.size).fill(NaN);
    this.real = new Int32Array(this.capacity);
    this.fresh = [];
    this.reset(0);
  }
  reset(k) { this.tagger.reset(); this.decoder.reset(); this.features.reset(); this.fresh = []; this.base = k; this.nextK = k; }
  get waiting() { return this.fresh.length; }
  add(k, sample) {
    if (k !== this.nextK) throw new Error(`grid sample ${k} does not follow ${this.nextK - 1}`);
    this.ring.set(sample, (k % this.capacity) * this.size);
    this.real[k % this.capacity] = 0;
    this.fresh.push(Float32Array.from(sample));
    this.nextK = k + 1;
  }
  markReal(k) { if (this.nextK - this.capacity <= k && k < this.nextK) this.real[k % this.capacity] += 1; }
  held(a, b) { const ks = []; for (let k = Math.max(a, this.nextK - this.capacity); k < Math.min(b, this.nextK); k++) ks.push(k); return ks; }
  realFrames(a, b) { return this.held(a, b).reduce((s, k) => s + this.real[k % this.capacity], 0); }
  frames(a, b) { return this.held(a, b).map((k) => this.ring.slice((k % this.capacity) * this.size, (k % this.capacity + 1) * this.size)); }
  shift(segs) { return segs.map(([a, b]) => [this.base + a, this.base + b]); }
  async run() {
    if (!this.fresh.length) return [];
    const x = this.features.features(this.fresh);
    const n = this.fresh.length;
    this.fresh = [];
    const [probs, m] = await this.tagger.step(x, n, this.features.dim);
    return this.shift(this.decoder.push(probs, m));
  }
  async finish() {
    const out = await this.run();
    const [probs, m] = await this.tagger.flush(this.features.dim);
    return [...out, ...this.shift(this.decoder.push(probs, m)), ...this.shift(this.decoder.finish())];
  }
}

// --- window statistics (signlang.inference.streaming.window_hands / window_motion) ---------------
export function windowHands(samples, layout) { // samples: array of Float32Array(225)
  if (!samples.length) return NaN;
  let n = 0;
  for (const s of samples) if (layout.hands.some(([a, b]) => { for (let i = a; i < b; i++) if (!Number.isNaN(s[3 * i])) return true; return false; })) n++;
  return n / samples.length;
}

export function windowMotion(samples, layout) {
  const spreads = [];
  for (const i of layout.motion_points) {
    let v = 0;
    for (const c of [0, 1]) {
      const vals = samples.map((s) => s[3 * i + c]).filter((x) => !Number.isNaN(x));
      if (!vals.length) { v = NaN; break; }
      const m = vals.reduce((a, x) => a + x, 0) / vals.length;
      v += vals.reduce((a, x) => a + (x - m) ** 2, 0) / vals.length;
    }
    if (!Number.isNaN(v)) spreads.push(Math.sqrt(v));
  }
  const widths = samples.map((s) => Math.hypot(s[3 * layout.left_shoulder] - s[3 * layout.right_shoulder],
    s[3 * layout.left_shoulder + 1] - s[3 * layout.right_shoulder + 1])).filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (!spreads.length || !widths.length) return 0;
  const h = widths.length >> 1, shoulder = widths.length % 2 ? widths[h] : (widths[h - 1] + widths[h]) / 2;
  const motion = spreads.reduce((a, x) => a + x, 0) / spreads.length / shoulder;
  return Number.isFinite(motion) ? motion : 0;
}

// --- the recognizer (signlang.inference.streaming.StreamingRecognizer) ---------------------------
function event(sign, prob, topK, start, end, now, windows, low, unknown) {
  return { sign, prob, top_k: topK, start_s: start, end_s: end, emitted_at_s: now, windows, low_confidence: low, unknown };
}

export class StreamRecognizer {
  // cfg: GET /web/config; model: {proba(clips) -> Promise<Float64Array[]>}; segmenter: ortSegmenter(...) or null
  constructor(cfg, model, segmenter = null) {
    this.cfg = cfg;
    this.c = cfg.stream;
    this.classes = cfg.classes;
    this.layout = cfg.layout;
    this.size = 3 * cfg.layout.n_points;
    this.model = model;
    this.policy = new Policy(cfg);
    if (segmenter && cfg.segmenter && cfg.segmenter.features !== FRAME_FEATURES) {
      throw new Error(`the segmenter reads '${cfg.segmenter.features}'; this page computes ${FRAME_FEATURES}`);
    }
    this.spotter = segmenter && this.c.use_segmenter ? new SegmentSpotter(segmenter, cfg) : null;
    this.mode = this.spotter ? "segmenter" : "gate";
    this.n = this.c.window_samples;
    this.ring = new Float32Array(this.n * this.size);
    this.chain = Promise.resolve();
    this.stats = { frames: 0, refused: 0, windows: 0, events: 0 };
    this.reset();
  }

  reset() {
    this.ring.fill(NaN);
    this.pending = []; this.times = [];
    this.t0 = null; this.lastT = null; this.lastFrame = null; this.nextK = 0;
    this.run = null; this.pauseEvents = []; this.recent = []; this.latest = null;
    if (this.spotter) this.spotter.reset(0);
  }

  // one frame: points (75 [x, y, z] or null) or a Float32Array(225); t in seconds, increasing. Calls are serialised.
  push(frame, t) { return this.serial(() => this.pushNow(frame, t)); }
  finish() { return this.serial(() => this.finishNow()); }
  serial(fn) { const p = this.chain.then(fn); this.chain = p.catch(() => {}); return p; }

  checked(frame, t) {
    let lm;
    try {
      lm = asFrame(frame, this.layout.n_points);
      if (typeof t !== "number" || !Number.isFinite(t)) throw new FrameError(`timestamp must be a finite number, got ${t}`);
      if (this.lastT !== null && t <= this.lastT) throw new FrameError(`timestamp ${t.toFixed(6)} s does not follow the previous frame's ${this.lastT.toFixed(6)} s`);
    } catch (e) { this.stats.refused++; throw e; }
    this.stats.frames++;
    return lm;
  }

  async pushNow(frame, t) {
    const lm = this.checked(frame, t);
    await this.fillGrid(lm, t);
    return this.runPending();
  }

  async finishNow() {
    if (this.spotter) return this.spotterEvents(await this.spotter.finish());
    const events = await this.runPending();
    if (this.run) { const ev = this.closeRun(this.lastT ?? 0); if (ev) { events.push(ev); this.stats.events++; } }
    return events;
  }

  async fillGrid(lm, t) {
    const c = this.c, dt = 1 / c.sample_fps, n = this.n, S = this.size;
    if (this.t0 === null) this.t0 = t;
    const kEnd = Math.floor((t - this.t0) / dt + 1e-9);
    if (kEnd - this.nextK + 1 > n) { // a long pause: only the last window's worth matters
      this.nextK = kEnd - n + 1;
      if (this.spotter) {
        this.pauseEvents.push(...(await this.segmentEvents(await this.spotter.finish(), t)));
        this.spotter.reset(this.nextK);
      } else if (this.run) this.pending.push(null); // a pause marker: the sign in progress ends
    }
    const loMin = this.t0 + (this.nextK + 0.5 - n) * dt;
    while (this.times.length && this.times[0] < loMin) this.times.shift();
    this.times.push(t);
    for (let k = this.nextK; k <= kEnd; k++) {
      const tk = this.t0 + k * dt, dPrev = this.lastT !== null ? tk - this.lastT : Infinity, dCur = t - tk;
      let sample;
      if (this.lastFrame !== null && dPrev < dCur) sample = dPrev <= c.max_frame_gap_s ? this.lastFrame : null;
      else sample = dCur <= c.max_frame_gap_s ? lm : null;
      if (sample !== null && this.lastFrame !== null && dPrev > 0 && dPrev + dCur <= c.max_frame_gap_s) {
        const w = dPrev / (dPrev + dCur), a = f32(1 - w), b = f32(w), mix = new Float32Array(S);
        for (let i = 0; i < S; i++) { const v = f32(f32(a * this.lastFrame[i]) + f32(b * lm[i])); mix[i] = Number.isNaN(v) ? sample[i] : v; }
        sample = mix;
      }
      const slot = (k % n) * S;
      if (sample === null) this.ring.fill(NaN, slot, slot + S); else this.ring.set(sample, slot);
      if (this.spotter) this.spotter.add(k, this.ring.subarray(slot, slot + S));
      else if (k + 1 >= n && (k + 1 - n) % c.hop_samples === 0) {
        const win = [];
        for (let j = k + 1 - n; j <= k; j++) win.push(this.ring.slice((j % n) * S, (j % n + 1) * S));
        const end = this.t0 + (k + 1) * dt, lo = end - (n + 0.5) * dt, hi = end - 0.5 * dt;
        this.pending.push({ end, win, frames: this.times.filter((x) => lo <= x && x < hi).length });
      }
    }
    this.nextK = Math.max(this.nextK, kEnd + 1);
    if (this.spotter) this.spotter.markReal(kEnd);
    this.lastT = t;
    this.lastFrame = lm;
  }

  /** The events of the segmenter's closed segments, after any waiting on a pause; counted. */
  async spotterEvents(segments) {
    const events = [...this.pauseEvents, ...(await this.segmentEvents(segments, this.lastT ?? 0))];
    this.pauseEvents = [];
    this.stats.events += events.length;
    return events;
  }

  async runPending() {
    if (this.spotter) return this.spotterEvents(await this.spotter.run());
    const events = [];
    while (this.pending.length) {
      if (this.pending[0] === null) {
        this.pending.shift();
        const ev = this.closeRun(this.lastT ?? 0);
        if (ev) events.push(ev);
        continue;
      }
      let cut = this.pending.slice(0, this.c.batch_size).findIndex((p) => p === null);
      if (cut < 0) cut = Math.min(this.c.batch_size, this.pending.length);
      events.push(...(await this.classify(this.pending.splice(0, cut))));
    }
    this.stats.events += events.length;
    return events;
  }

  async classify(chunk) { // gate mode: windows {end, win, frames} in order
    const c = this.c, pol = this.policy, C = this.classes.length;
    const hands = chunk.map((w) => windowHands(w.win, this.layout)), motion = chunk.map((w) => windowMotion(w.win, this.layout));
    const enough = chunk.map((w) => w.frames >= c.min_window_frames);
    const active = chunk.map((_, i) => enough[i] && hands[i] >= c.min_hands && motion[i] >= c.min_motion);
    const asked = chunk.filter((_, i) => active[i]).map((w) => w.win);
    const got = asked.length ? await this.model.proba(asked) : [];
    let j = 0;
    const probs = chunk.map((_, i) => (active[i] ? Float64Array.from(got[j++]) : new Float64Array(C)));
    this.stats.windows += chunk.length;
    const low = probs.map((p, i) => active[i] && pol.lowConfidence(p)), unknown = probs.map((p, i) => active[i] && pol.unknown(p));
    const events = [];
    chunk.forEach((w, i) => {
      let p = probs[i], centreEnd = w.end;
      if (active[i] && c.smooth_windows > 1) {
        this.recent.push(Float64Array.from(p));
        if (this.recent.length > c.smooth_windows) this.recent.shift();
        p = new Float64Array(C);
        for (const r of this.recent) for (let q = 0; q < C; q++) p[q] += r[q];
        for (let q = 0; q < C; q++) p[q] /= this.recent.length;
        centreEnd = w.end - (c.hop_s * (this.recent.length - 1)) / 2;
      } else if (!active[i]) this.recent = [];
      const top = topIndices(p, c.top_k), best = top[0];
      const reason = !enough[i] ? "few_frames" : hands[i] < c.min_hands ? "no_hands" : motion[i] < c.min_motion ? "low_motion"
        : pol.isNoSign(best) ? "idle" : p[best] < c.threshold ? "low_confidence" : null;
      this.latest = { start_s: w.end - c.window_s, end_s: w.end, top_k: top.map((q) => ({ sign: this.classes[q], prob: p[q] })),
        sign: reason ? null : this.classes[best], rejected: reason, frames: w.frames, hands: hands[i], motion: motion[i],
        low_confidence: low[i], unknown: unknown[i] };
      const ev = this.feed(reason ? null : best, p, centreEnd, w.end);
      if (ev) events.push(ev);
    });
    return events;
  }

  async segmentEvents(segments, now) { // segmenter mode: closed segments [a, b) of the grid -> events
    if (!segments.length || !this.spotter) return [];
    const c = this.c, pol = this.policy, dt = 1 / c.sample_fps, C = this.classes.length;
    const clips = segments.map(([a, b]) => this.spotter.frames(a, b));
    const hands = clips.map((cl) => (cl.length >= 2 ? windowHands(cl, this.layout) : 0));
    const real = segments.map(([a, b]) => this.spotter.realFrames(a, b));
    const enough = segments.map(([a, b], i) => real[i] >= c.min_frames_per_s * ((b - a) * dt) - 1e-9);
    const ask = segments.map((_, i) => hands[i] >= c.min_hands && enough[i]);
    const asked = clips.filter((_, i) => ask[i]);
    const got = asked.length ? await this.model.proba(asked) : [];
    let j = 0;
    const probs = segments.map((_, i) => (ask[i] ? Float64Array.from(got[j++]) : new Float64Array(C)));
    this.stats.windows += asked.length;
    const events = [];
    segments.forEach(([a, b], i) => {
      const p = probs[i], top = topIndices(p, c.top_k), best = top[0];
      const start = (this.t0 ?? 0) + a * dt, end = (this.t0 ?? 0) + b * dt;
      const reason = !enough[i] ? "few_frames" : !ask[i] ? "no_hands" : pol.isNoSign(best) ? "idle" : p[best] < c.threshold ? "low_confidence" : null;
      const topK = top.map((q) => ({ sign: this.classes[q], prob: p[q] }));
      const low = ask[i] && pol.lowConfidence(p), unknown = ask[i] && pol.unknown(p);
      this.latest = { start_s: start, end_s: end, top_k: topK, sign: reason ? null : this.classes[best], rejected: reason,
        frames: real[i], hands: hands[i], motion: 0, low_confidence: low, unknown };
      if (reason === null) events.push(event(this.classes[best], p[best], topK, start, end, now, b - a, low, unknown));
    });
    return events;
  }

  feed(label, probs, end, now) { // one window's verdict into the run state machine
    const c = this.c, center = end - c.window_s / 2, run = this.run;
    if (run && label === run.label) {
      run.last = center; run.count++; run.gap = 0;
      for (let q = 0; q < probs.length; q++) run.sum[q] += probs[q];
      return run.last - run.first >= c.max_sign_s - 1e-9 ? this.closeRun(now) : null;
    }
    let ev = null;
    if (run) {
      run.gap++;
      if (label !== null || run.gap > c.max_gap_windows) ev = this.closeRun(now);
    }
    if (label !== null && !this.run) this.run = { label, first: center, last: center, sum: Float64Array.from(probs), count: 1, gap: 0 };
    return ev;
  }

  closeRun(now) {
    const run = this.run, c = this.c;
    this.run = null;
    if (!run || run.count < c.min_windows) return null;
    const mean = run.sum.map((v) => v / run.count), top = topIndices(mean, c.top_k);
    const half = c.segment_pad_s === null ? c.hop_s / 2 : c.segment_pad_s;
    return event(this.classes[run.label], mean[run.label], top.map((q) => ({ sign: this.classes[q], prob: mean[q] })),
      Math.max(run.first - half, this.t0 ?? 0), run.last + half, now, run.count, this.policy.lowConfidence(mean), this.policy.unknown(mean));
  }
}

export function asFrame(frame, nPoints) { // 75 [x, y, z] | null per point, or 225 numbers -> Float32Array(225)
  const out = new Float32Array(3 * nPoints);
  if (frame instanceof Float32Array || (Array.isArray(frame) && frame.length === 3 * nPoints && !Array.isArray(frame[0]) && frame[0] !== null)) {
    if (frame.length !== 3 * nPoints) throw new FrameError(`frame: expected ${3 * nPoints} numbers, got ${frame.length}`);
    out.set(frame);
  } else if (Array.isArray(frame) && frame.length === nPoints) {
    frame.forEach((p, i) => { for (let c = 0; c < 3; c++) out[3 * i + c] = p ? p[c] : NaN; });
  } else throw new FrameError(`frame: expected ${nPoints} points or ${3 * nPoints} numbers`);
  for (const v of out) if (v === Infinity || v === -Infinity) throw new FrameError("frame: infinite value");
  return out;
}

// --- onnxruntime-web adapters ------------------------------------------------------------------
// The one graph: landmarks (N, T, 75, 3) float32 (NaN after each clip's end) + lengths (N,) int64 -> probabilities (N, C).
export async function ortModel(ort, source, cfg) {
  const session = await ort.InferenceSession.create(source, { executionProviders: ["wasm"] });
  const { inputs, output } = cfg.graph, S = 3 * cfg.layout.n_points, C = cfg.classes.length;
  return {
    session,
    classes: cfg.classes,
    async proba(clips) { // clips: arrays of Float32Array(225) -> Float32Array(C) each
      const T = Math.max(2, ...clips.map((c) => c.length)), N = clips.length;
      const data = new Float32Array(N * T * S).fill(NaN), lengths = new BigInt64Array(N);
      clips.forEach((clip, i) => { clip.forEach((s, t) => data.set(s, (i * T + t) * S)); lengths[i] = BigInt(clip.length); });
      const out = await session.run({ [inputs[0]]: new ort.Tensor("float32", data, [N, T, cfg.layout.n_points, 3]),
        [inputs[1]]: new ort.Tensor("int64", lengths, [N]) }, [output]);
      const p = out[output].data;
      return clips.map((_, i) => p.slice(i * C, (i + 1) * C));
    },
  };
}

// The segmenter: x (1, n, F) + state (layers, 1, hidden) -> probs (1, n, 3), state_out.
export async function ortSegmenter(ort, source, cfg) {
  const session = await ort.InferenceSession.create(source, { executionProviders: ["wasm"] });
  const s = cfg.segmenter, shape = [s.layers, 1, s.hidden];
  return {
    session, lookahead: s.lookahead, decode: s.decode,
    zeroState: () => new ort.Tensor("float32", new Float32Array(s.layers * s.hidden), shape),
    async run(features, n, dim, state) {
      const out = await session.run({ x: new ort.Tensor("float32", features, [1, n, dim]), state });
      return [out.probs.data, out.state_out];
    },
  };
}
