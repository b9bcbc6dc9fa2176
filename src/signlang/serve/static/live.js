// signlang live page: camera -> landmarks (in the page with @mediapipe/holistic, or on the server from
// downscaled JPEG frames) -> WebSocket /ws/live -> top-3 and transcript. State for tests: window.__live.
// API keys (a server started with SIGNLANG_API_KEYS / --api-keys-file): the key comes from the page's
// address, /#token=KEY (the fragment never reaches the server; ?token=KEY works too), or from the key
// field shown when the server answers 401. It is kept in this tab's sessionStorage and removed from
// the address bar, sent as "Authorization: Bearer" to /live/config and as ?token= on the socket
// (browsers cannot set headers on a WebSocket).
// Address parameters (the page's own controls set them): ?landmarks=browser|server chooses where the
// landmarks are computed (default: in the browser when the server has the web assets), ?lite=1 the
// lighter pose model in browser mode (more frames per second on a slow computer).
// The page shows the landmark frame rate and the lag (camera frame -> its result on screen); the
// server decides which windows can give a sign (too few real frames, no hands, hands still, ...)
// and says why in each "topk" message's `rejected`, shown here in words.
// Recognition (?recognize=device|server; default: on this device when the server offers it, GET /web/config):
// "on this device" runs the model's one graph (model.onnx) and its segmenter with onnxruntime-web
// (vendored, /static/ort/) and the streaming decoder static/stream.js in the page: no socket is opened,
// neither the video nor the landmarks leave the device. If the graphs cannot be loaded, the page says
// why and recognises on the server. "On the server" sends the landmarks over /ws/live.
"use strict";
const live = (window.__live = { mode: null, auth: null, hello: false, landmarksDrawn: 0, framesSent: 0, topk: 0, events: [], errors: [],
  landmarkFps: null, lagS: null, verdict: "", windows: [], paused: false, recognition: null, recognitionNote: "", framesDecoded: 0,
  fed: [], graphMs: [], dropped: 0 });
window.addEventListener("error", (e) => live.errors.push(String(e.message || e)));
window.addEventListener("unhandledrejection", (e) => live.errors.push(String(e.reason)));

const $ = (id) => document.getElementById(id);
const video = $("video"), overlay = $("overlay"), ctx = overlay.getContext("2d");
const JPEG_MAGIC = [0x4a, 0x50, 0x47, 0x30]; // "JPG0"
let bones = [], socket = null, config = null, hello = null;
const params = new URLSearchParams(location.search);
const REASONS = { // the server's gate verdicts (signlang.inference.streaming.GATE_REASONS), in words
  few_frames: (m) => `too few frames (${m.frames ?? "?"} in the last ${hello ? hello.config.window_s : "?"} s window, ${hello ? hello.min_window_frames : "more"} needed)`,
  no_hands: () => "no hands in view",
  low_motion: () => "hands still",
  idle: () => "no sign",
  low_confidence: () => "not sure (below the confidence threshold)",
  unknown: () => "unknown sign",
};
const NO_PROBS = new Set(["few_frames", "no_hands", "low_motion"]); // windows the model never saw: no probabilities to show

function status(text) { $("status").textContent = text; }

const KEY_STORE = "signlang.apiKey";

function takeKey() { // the key from the address (fragment or query), else from this tab's storage
  const fragment = new URLSearchParams(location.hash.slice(1)), query = new URLSearchParams(location.search);
  const fromAddress = fragment.get("token") || query.get("token");
  if (fromAddress) {
    sessionStorage.setItem(KEY_STORE, fromAddress);
    fragment.delete("token"); query.delete("token"); // out of the address bar, history and shared links
    const q = query.toString(), f = fragment.toString();
    history.replaceState(null, "", location.pathname + (q ? "?" + q : "") + (f ? "#" + f : ""));
  }
  return fromAddress || sessionStorage.getItem(KEY_STORE) || "";
}
let apiKey = takeKey();

function needKey(state, message) { // state: "missing" | "refused"; shows the key field; submitting starts again
  live.auth = state;
  const mode = $("mode");
  mode.dataset.mode = "auth";
  mode.textContent = state === "missing" ? "API key needed" : "API key refused";
  $("auth-message").textContent = message;
  $("auth").hidden = false;
  $("auth-key").focus();
  status(message);
}

$("auth").addEventListener("submit", (e) => {
  e.preventDefault();
  const key = $("auth-key").value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_STORE, key);
  location.reload();
});

async function fetchConfig() { // null when the server wants a key the page does not have
  const r = await fetch("/live/config", apiKey ? { headers: { Authorization: `Bearer ${apiKey}` } } : {});
  if (r.status === 401) {
    if (apiKey) needKey("refused", "The server refused this API key. Enter a valid key.");
    else needKey("missing", "This server needs an API key. Enter it below, or open the page as /#token=KEY.");
    return null;
  }
  if (!r.ok) throw new Error(`/live/config answered HTTP ${r.status}`);
  live.auth = apiKey ? "ok" : "none";
  return r.json();
}

function draw(points) { // points: 75 x [x, y, z] or null (normalised image coordinates)
  overlay.width = video.clientWidth || 640; overlay.height = video.clientHeight || 480; // the video as displayed
  overlay.style.height = `${overlay.height}px`;
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  const W = overlay.width, H = overlay.height;
  ctx.lineWidth = 2;
  for (const [a, b] of bones) {
    const p = points[a], q = points[b];
    if (!p || !q) continue;
    ctx.strokeStyle = a >= 54 ? "#ff6b6b" : a >= 33 ? "#4a9eff" : "#9be564";
    ctx.beginPath(); ctx.moveTo(p[0] * W, p[1] * H); ctx.lineTo(q[0] * W, q[1] * H); ctx.stroke();
  }
  let n = 0;
  for (const p of points) if (p) { n++; ctx.fillStyle = "#fff"; ctx.fillRect(p[0] * W - 2, p[1] * H - 2, 4, 4); }
  if (n) live.landmarksDrawn++;
}

function signName(sign, unknown) { // the vocabulary's "no sign" class in words; an unknown event as spot's subtitle cue
  if (unknown) return "[unknown sign]";
  return hello && hello.idle_classes.includes(sign) ? "(no sign)" : sign;
}

// landmark frame rate over the last RATE_SPAN_S seconds of landmark frames, and lag camera -> result
const RATE_SPAN_S = 10, landmarkTimes = [];
let startedAt = null;
function landmarkArrived() {
  const now = performance.now() / 1000;
  landmarkTimes.push(now);
  while (landmarkTimes.length && landmarkTimes[0] < now - RATE_SPAN_S) landmarkTimes.shift();
}
function showRate() {
  if (startedAt === null) return;
  const now = performance.now() / 1000;
  while (landmarkTimes.length && landmarkTimes[0] < now - RATE_SPAN_S) landmarkTimes.shift();
  const span = Math.min(RATE_SPAN_S, now - startedAt);
  if (span < 1) return;
  const fps = landmarkTimes.length / span, need = hello ? hello.min_window_frames / hello.config.window_s : null;
  live.landmarkFps = fps;
  const lag = live.lagS === null ? "\u2013" : `${live.lagS.toFixed(1)} s`;
  const slow = need !== null && fps < need;
  const el = $("rate");
  el.dataset.slow = slow ? "yes" : "";
  el.textContent = `landmarks: ${fps.toFixed(fps < 10 ? 1 : 0)} frames/s \u00b7 lag: ${lag}` + (slow
    ? ` \u2014 too slow to recognise signs (needs ${need.toFixed(0)} frames/s${live.mode === "browser" ? "; try the lighter model or landmarks on the server" : ""})`
    : "");
}
setInterval(showRate, 1000);

function showTopk(msg) {
  live.topk++;
  // the gate's reason first; a window the model saw and the open-set rule calls unknown: "unknown sign"
  const reason = msg.unknown === true && (!msg.rejected || msg.rejected === "low_confidence") ? "unknown" : msg.rejected;
  live.windows.push({ t: msg.t, frames: msg.frames, rejected: msg.rejected ?? null, sign: msg.sign ?? null });
  if (live.windows.length > 500) live.windows.shift();
  if (typeof msg.t === "number") live.lagS = Math.max(0, performance.now() / 1000 - msg.t);
  const verdict = $("verdict");
  verdict.dataset.rejected = reason || "";
  verdict.textContent = reason ? (REASONS[reason] || ((m) => m.rejected.replaceAll("_", " ")))(msg) : signName(msg.sign ?? msg.top_k[0].sign);
  live.verdict = verdict.textContent;
  const ol = $("top3");
  ol.dataset.rejected = reason || "";
  if (NO_PROBS.has(reason)) { ol.replaceChildren(); return; } // "- 0% / a 0% / b 0%" says nothing: the reason says it
  ol.replaceChildren(...msg.top_k.map(({ sign, prob }) => {
    const li = document.createElement("li");
    li.textContent = `${signName(sign)} ${(100 * prob).toFixed(0)}%`;
    const bar = document.createElement("span");
    bar.className = "bar"; bar.style.width = `${Math.round(100 * prob)}px`;
    li.appendChild(bar);
    if (reason) li.className = "rejected";
    return li;
  }));
}

function onMessage(ev) { handle(JSON.parse(ev.data)); }

function handle(msg) { // a message of /ws/live, or the same message made by the page's own decoder
  if (msg.type === "hello") { live.hello = true; hello = msg; }
  else if (msg.type === "topk") showTopk(msg);
  else if (msg.type === "event") {
    live.events.push(msg);
    $("transcript").textContent = live.events.map((e) => signName(e.sign, e.unknown === true)).join(" ");
  } else if (msg.type === "landmarks") { landmarkArrived(); draw(msg.landmarks); }
  else if (msg.type === "error") status(`server: ${msg.detail}`);
}

function openSocket() {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/live`;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(apiKey ? `${url}?token=${encodeURIComponent(apiKey)}` : url);
    ws.binaryType = "arraybuffer";
    ws.onmessage = onMessage;
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error("cannot open " + url)); // the key is never put in a message
    ws.onclose = (e) => {
      if (e.code === 1008 && /API key/.test(e.reason)) needKey(apiKey ? "refused" : "missing", `The live connection was refused: ${e.reason}. Enter a valid key.`);
      else status(`connection closed (${e.code}${e.reason ? ": " + e.reason : ""})`);
    };
  });
}

function sendLandmarks(t, points) { // binary form: float64 t + 75 x 3 float32 (NaN = not detected)
  const buf = new ArrayBuffer(8 + 75 * 3 * 4), view = new DataView(buf);
  view.setFloat64(0, t, true);
  for (let i = 0; i < 75; i++) for (let c = 0; c < 3; c++) view.setFloat32(8 + 4 * (3 * i + c), points[i] ? points[i][c] : NaN, true);
  if (socket.readyState === WebSocket.OPEN && socket.bufferedAmount < 1 << 20) { socket.send(buf); live.framesSent++; }
}

function toPoints(r) { // holistic results -> the project's 75-point layout (pose, left hand, right hand)
  const part = (lms, n) => Array.from({ length: n }, (_, i) => (lms ? [lms[i].x, lms[i].y, lms[i].z] : null));
  return [...part(r.poseLandmarks, 33), ...part(r.leftHandLandmarks, 21), ...part(r.rightHandLandmarks, 21)];
}

async function runBrowserMode() {
  await new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = config.holistic_path + "holistic.js"; s.onload = resolve; s.onerror = () => reject(new Error("holistic.js failed to load"));
    document.head.appendChild(s);
  });
  const holistic = new window.Holistic({ locateFile: (f) => config.holistic_path + f });
  holistic.setOptions({ modelComplexity: params.get("lite") === "1" ? 0 : 1, smoothLandmarks: true, refineFaceLandmarks: false, minDetectionConfidence: 0.5, minTrackingConfidence: 0.5 });
  let t = 0;
  holistic.onResults((r) => {
    const pts = toPoints(r); landmarkArrived(); draw(pts);
    if (live.recognition === "device") feedDevice(t, pts); else sendLandmarks(t, pts);
  });
  await holistic.initialize();
  const small = document.createElement("canvas"), g = small.getContext("2d"); // MediaPipe gets at most 320 px
  const loop = async () => { // one frame at a time; a slow machine simply processes fewer frames
    if (video.readyState >= 2 && !live.paused) {
      const scale = Math.min(1, 320 / video.videoWidth);
      small.width = Math.round(video.videoWidth * scale); small.height = Math.round(video.videoHeight * scale);
      g.drawImage(video, 0, 0, small.width, small.height);
      t = performance.now() / 1000;
      await holistic.send({ image: small });
    }
    setTimeout(loop, 10);
  };
  loop();
}

function runServerMode() { // downscaled JPEG frames, at most one in flight on the socket's buffer
  const c = document.createElement("canvas"), g = c.getContext("2d");
  const send = () => {
    if (video.readyState >= 2 && !live.paused && socket.readyState === WebSocket.OPEN && socket.bufferedAmount === 0) {
      const scale = Math.min(1, 320 / video.videoWidth);
      c.width = Math.round(video.videoWidth * scale); c.height = Math.round(video.videoHeight * scale);
      g.drawImage(video, 0, 0, c.width, c.height);
      const t = performance.now() / 1000;
      c.toBlob(async (blob) => {
        const jpeg = new Uint8Array(await blob.arrayBuffer()), msg = new Uint8Array(12 + jpeg.length);
        msg.set(JPEG_MAGIC, 0); new DataView(msg.buffer).setFloat64(4, t, true); msg.set(jpeg, 12);
        socket.send(msg.buffer); live.framesSent++;
      }, "image/jpeg", 0.7);
    }
    setTimeout(send, 100);
  };
  send();
}

// --- recognition on this device (onnxruntime-web + static/stream.js) -------------------------------
const FED_MAX = 20000, MAX_PENDING = 8;
let device = null, devicePending = 0, nextTopk = -Infinity;

async function fetchWebConfig() { // null when the server does not offer it
  try {
    const r = await fetch("/web/config", apiKey ? { headers: { Authorization: `Bearer ${apiKey}` } } : {});
    return r.ok ? await r.json() : null;
  } catch (e) { return null; }
}

async function fetchGraph(url) {
  const r = await fetch(url, apiKey ? { headers: { Authorization: `Bearer ${apiKey}` } } : {});
  if (!r.ok) throw new Error(`${url} answered HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

async function loadDevice(web) { // the graphs in onnxruntime-web and the decoder; throws when anything is missing
  const ort = await import(web.ort_path + "ort.wasm.min.mjs");
  ort.env.wasm.wasmPaths = web.ort_path;
  ort.env.wasm.numThreads = 1; // no cross-origin isolation here: one thread, no worker
  const stream = await import("/static/stream.js");
  const model = await stream.ortModel(ort, await fetchGraph(web.graph.url), web);
  const segmenter = web.segmenter ? await stream.ortSegmenter(ort, await fetchGraph(web.segmenter.url), web) : null;
  const proba = model.proba;
  model.proba = async (clips) => { // timed: the graph's milliseconds per call, for the page's state and the benchmark
    const t0 = performance.now(), out = await proba(clips);
    live.graphMs.push({ clips: clips.length, frames: clips[0].length, ms: performance.now() - t0 });
    if (live.graphMs.length > 500) live.graphMs.shift();
    return out;
  };
  const recognizer = new stream.StreamRecognizer(web, model, segmenter);
  device = window.__device = { ort, stream, web, model, segmenter, recognizer };
  hello = { config: web.stream, min_window_frames: web.stream.min_window_frames, idle_classes: web.policy.no_sign === null ? [] : [web.policy.no_sign] };
  return device;
}

function feedDevice(t, points) { // one landmark frame into the page's decoder; its messages shown as the server's would be
  if (devicePending >= MAX_PENDING) { live.dropped++; return; } // the decoder is behind: drop, as the server does
  devicePending++;
  if (live.fed.length < FED_MAX) live.fed.push([t, points]);
  device.recognizer.push(points, t).then((events) => {
    live.framesDecoded++;
    for (const ev of events) handle({ type: "event", ...ev });
    const latest = device.recognizer.latest;
    if (latest && t >= nextTopk) {
      nextTopk = t + (config.limits ? config.limits.topk_every_s : 0.25);
      handle({ type: "topk", t, ...latest, dropped: live.dropped });
    }
  }).catch((e) => status(`recognition: ${e.message || e}`)).finally(() => { devicePending--; });
}

function chooseRecognition(landmarks, web) { // ["device" | "server", note]
  const asked = params.get("recognize");
  if (asked !== null && asked !== "device" && asked !== "server") return ["server", `Unknown ?recognize=${asked} (device or server).`];
  if (asked === "server") return ["server", ""];
  if (landmarks !== "browser") {
    return ["server", asked === "device" ? "Recognition on this device needs landmarks in this browser: recognising on the server." : ""];
  }
  if (!web) return ["server", "Recognition on this device is not offered by this server: recognising on the server."];
  if (!web.available) return ["server", `Recognition on this device is not available (${web.reason}): recognising on the server.`];
  return ["device", ""];
}

function showRecognition(where, note) {
  live.recognition = where;
  live.recognitionNote = note;
  const el = $("recognition");
  el.dataset.mode = where;
  el.textContent = (where === "device"
    ? "Recognition: on this device (neither the video nor the landmarks leave it)"
    : live.mode === "browser" ? "Recognition: on the server (the landmarks are sent to it)" : "Recognition: on the server")
    + (note ? ` \u2014 ${note}` : "");
  for (const input of $("controls").querySelectorAll("input[name=recognize]")) input.checked = input.value === where;
}

function chooseMode() { // ?landmarks=browser|server when available there, else the server's default; a note when refused
  const asked = params.get("landmarks"), modes = config.modes || { [config.mode]: true };
  if (asked === "browser" || asked === "server") {
    if (modes[asked]) return [asked, ""];
    return [config.mode, asked === "browser"
      ? "Landmarks in this browser are not available: the server has no web assets (npm ci --prefix src/signlang/serve/static/vendor)."
      : "Landmarks on the server are not available: MediaPipe is not installed there."];
  }
  if (asked !== null) return [config.mode, `Unknown ?landmarks=${asked} (browser or server).`];
  return [config.mode, ""];
}

function setupControls(mode, web) { // the mode, lite and recognition choices as address parameters; a change reloads the page
  const form = $("controls");
  const modes = config.modes || { [config.mode]: true };
  for (const input of form.querySelectorAll("input[name=landmarks]")) {
    input.checked = input.value === mode;
    input.disabled = !modes[input.value];
    input.parentElement.title = modes[input.value] ? "" : input.value === "browser"
      ? "not available: the server has no web assets for MediaPipe in the browser" : "not available: no MediaPipe on the server";
  }
  const lite = $("lite");
  lite.checked = params.get("lite") === "1";
  lite.disabled = mode !== "browser";
  for (const input of form.querySelectorAll("input[name=recognize]")) {
    const ok = input.value === "server" || (mode === "browser" && web && web.available);
    input.disabled = !ok;
    input.parentElement.title = ok ? "" : mode !== "browser" ? "needs landmarks in this browser"
      : `not available: ${web ? web.reason : "the server does not offer it"}`;
  }
  form.hidden = false;
  form.addEventListener("change", (e) => {
    const next = new URLSearchParams(location.search);
    next.set("landmarks", form.querySelector("input[name=landmarks]:checked").value);
    if (lite.checked) next.set("lite", "1"); else next.delete("lite");
    if (e.target.name === "recognize") next.set("recognize", e.target.value); // kept in the address once chosen
    location.search = next.toString();
  });
}

function setupPause() { // stops the camera frames (and MediaPipe) until "Resume"; the socket stays open
  const button = $("pause");
  button.disabled = false;
  button.addEventListener("click", () => {
    live.paused = !live.paused;
    button.textContent = live.paused ? "Resume" : "Pause";
    if (live.paused) video.pause(); else video.play();
    status(live.paused ? "paused" : "camera: on");
  });
}

async function main() {
  config = await fetchConfig();
  if (!config) return; // waiting for a key: the form reloads the page
  bones = config.bones;
  const [chosen, note] = chooseMode();
  live.mode = chosen;
  const web = chosen === "browser" ? await fetchWebConfig() : null;
  setupControls(chosen, web);
  const mode = $("mode");
  mode.dataset.mode = chosen;
  mode.textContent = chosen === "browser"
    ? "Mode: landmarks in your browser (the video never leaves this device)"
    : "Mode: server-side landmarks (downscaled JPEG frames go to the server)" + (config.modes && !config.modes.browser ? "; web assets not installed" : "");
  if (note) status(note);
  let [where, recNote] = chooseRecognition(chosen, web);
  if (where === "device") {
    showRecognition("device", "loading the model\u2026");
    try {
      await loadDevice(web);
    } catch (e) { // a clear message, and the server recognises instead
      where = "server";
      recNote = `the model could not be loaded in this browser (${e.message || e}): recognising on the server instead.`;
    }
  }
  showRecognition(where, recNote);
  if (recNote) status(recNote);
  video.srcObject = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  await video.play();
  status(note || recNote || "camera: on");
  if (where === "server") socket = await openSocket();
  startedAt = performance.now() / 1000;
  setupPause();
  if (chosen === "browser") await runBrowserMode(); else runServerMode();
}

main().catch((e) => { live.errors.push(String(e)); status(String(e)); });
