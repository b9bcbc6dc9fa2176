// signlang live page: camera -> landmarks (in the page with @mediapipe/holistic, or on the server from
// downscaled JPEG frames) -> WebSocket /ws/live -> top-3 and transcript. State for tests: window.__live.
// API keys (a server started with SIGNLANG_API_KEYS / --api-keys-file): the key comes from the page's
// address, /#token=KEY (the fragment never reaches the server; ?token=KEY works too), or from the key
// field shown when the server answers 401. It is kept in this tab's sessionStorage and removed from
// the address bar, sent as "Authorization: Bearer" to /live/config and as ?token= on the socket
// (browsers cannot set headers on a WebSocket).
"use strict";
const live = (window.__live = { mode: null, auth: null, hello: false, landmarksDrawn: 0, framesSent: 0, topk: 0, events: [], errors: [] });
window.addEventListener("error", (e) => live.errors.push(String(e.message || e)));
window.addEventListener("unhandledrejection", (e) => live.errors.push(String(e.reason)));

const $ = (id) => document.getElementById(id);
const video = $("video"), overlay = $("overlay"), ctx = overlay.getContext("2d");
const JPEG_MAGIC = [0x4a, 0x50, 0x47, 0x30]; // "JPG0"
let bones = [], socket = null, config = null;

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

function showTopk(msg) {
  live.topk++;
  const ol = $("top3");
  ol.replaceChildren(...msg.top_k.map(({ sign, prob }) => {
    const li = document.createElement("li");
    li.textContent = `${sign} ${(100 * prob).toFixed(0)}%`;
    const bar = document.createElement("span");
    bar.className = "bar"; bar.style.width = `${Math.round(100 * prob)}px`;
    li.appendChild(bar);
    if (msg.rejected) li.className = "rejected";
    return li;
  }));
  ol.dataset.rejected = msg.rejected || "";
}

function onMessage(ev) {
  const msg = JSON.parse(ev.data);
  if (msg.type === "hello") live.hello = true;
  else if (msg.type === "topk") showTopk(msg);
  else if (msg.type === "event") { live.events.push(msg); $("transcript").textContent = live.events.map((e) => (e.unknown ? "[unknown sign]" : e.sign)).join(" "); }
  else if (msg.type === "landmarks") draw(msg.landmarks);
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
  const params = new URLSearchParams(location.search); // ?lite=1: the lighter pose model (slow machines)
  holistic.setOptions({ modelComplexity: params.get("lite") === "1" ? 0 : 1, smoothLandmarks: true, refineFaceLandmarks: false, minDetectionConfidence: 0.5, minTrackingConfidence: 0.5 });
  let t = 0;
  holistic.onResults((r) => { const pts = toPoints(r); draw(pts); sendLandmarks(t, pts); });
  await holistic.initialize();
  const small = document.createElement("canvas"), g = small.getContext("2d"); // MediaPipe gets at most 320 px
  const loop = async () => { // one frame at a time; a slow machine simply processes fewer frames
    if (video.readyState >= 2) {
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
    if (video.readyState >= 2 && socket.readyState === WebSocket.OPEN && socket.bufferedAmount === 0) {
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

async function main() {
  config = await fetchConfig();
  if (!config) return; // waiting for a key: the form reloads the page
  bones = config.bones;
  live.mode = config.mode;
  const mode = $("mode");
  mode.dataset.mode = config.mode;
  mode.textContent = config.mode === "browser"
    ? "Mode: landmarks in your browser (the video never leaves this device)"
    : "Mode: server-side landmarks (web assets not installed; downscaled JPEG frames go to the server)";
  video.srcObject = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  await video.play();
  status("camera: on");
  socket = await openSocket();
  if (config.mode === "browser") await runBrowserMode(); else runServerMode();
}

main().catch((e) => { live.errors.push(String(e)); status(String(e)); });
