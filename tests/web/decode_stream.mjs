// Runs the page's decoder (src/signlang/serve/static/stream.js) in node on a landmark stream, with the
// model's graphs in onnxruntime-web (the vendored package), and prints its events as JSON.
// node decode_stream.mjs INPUT.json   (INPUT: {vendor, stream_js, config, frames (float32 file, T x 225), times, model, segmenter})
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const input = JSON.parse(readFileSync(process.argv[2], "utf8"));
const require = createRequire(input.vendor + "/package.json");
const ort = await import(pathToFileURL(require.resolve("onnxruntime-web")).href);
ort.env.wasm.numThreads = 1;
const { StreamRecognizer, ortModel, ortSegmenter } = await import(pathToFileURL(input.stream_js).href);

const cfg = input.config, S = 3 * cfg.layout.n_points;
const raw = readFileSync(input.frames);
const frames = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
const model = await ortModel(ort, readFileSync(input.model), cfg);
const segmenter = cfg.segmenter ? await ortSegmenter(ort, readFileSync(input.segmenter), cfg) : null;
const rec = new StreamRecognizer(cfg, model, segmenter);
const events = [], latest = [];
const t0 = performance.now();
for (let i = 0; i < input.times.length; i++) {
  events.push(...(await rec.push(frames.slice(i * S, (i + 1) * S), input.times[i])));
  latest.push(rec.latest);
}
events.push(...(await rec.finish()));
console.log(JSON.stringify({ mode: rec.mode, events, latest, stats: rec.stats, ms: performance.now() - t0 }));
