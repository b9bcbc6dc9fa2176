// Where the one graph's time goes in onnxruntime-web (the wasm build the page uses), by part of the graph
// and by operator type, from onnxruntime's own profiler. Node 20, the vendored package:
//   node benchmarks/web_graph_profile.mjs EXPORT_DIR/model.onnx [FRAMES=24] [RUNS=20]
// The profiler adds its own cost per node (profiled runs are several times slower than unprofiled ones):
// read the shares, not the milliseconds. The profiled runs happen in a child process, whose standard
// output (onnxruntime writes the profile there itself) is parsed here.
import { readFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";

const raw = process.argv[2] === "--raw";
const [graph, frames = "24", runs = "20"] = process.argv.slice(raw ? 3 : 2);
if (!graph) { console.error("usage: node benchmarks/web_graph_profile.mjs MODEL.onnx [FRAMES] [RUNS]"); process.exit(2); }
const vendor = new URL("../src/signlang/serve/static/vendor/package.json", import.meta.url);
const ort = await import(pathToFileURL(createRequire(vendor).resolve("onnxruntime-web")).href);
ort.env.wasm.numThreads = 1;
const T = Number(frames), N = Number(runs);
const data = new Float32Array(T * 225).map((_, i) => 0.3 + 0.001 * (i % 97) + 0.0001 * Math.floor(i / 225));
const feeds = { landmarks: new ort.Tensor("float32", data, [1, T, 75, 3]), lengths: new ort.Tensor("int64", BigInt64Array.from([BigInt(T)]), [1]) };

if (raw) { // the child: profiled runs, the profile on stdout
  const session = await ort.InferenceSession.create(readFileSync(graph), { enableProfiling: true });
  for (let i = 0; i < N; i++) await session.run(feeds);
  session.endProfiling();
  process.exit(0);
}
const plain = await ort.InferenceSession.create(readFileSync(graph));
for (let i = 0; i < 3; i++) await plain.run(feeds);
const t0 = performance.now();
for (let i = 0; i < N; i++) await plain.run(feeds);
const unprofiled = (performance.now() - t0) / N;

const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), "--raw", graph, frames, runs], { encoding: "utf8", maxBuffer: 1 << 30 });
if (child.status !== 0) { console.error(child.stderr); process.exit(1); }
const text = child.stdout, events = JSON.parse(text.slice(text.indexOf("["), text.lastIndexOf("]") + 1));
const nodes = events.filter((e) => e.cat === "Node" && e.name.endsWith("_kernel_time"));
const part = (name) => name.startsWith("front__/normalizer") ? "normalisation" : name.startsWith("front__") ? "feature table + pooling"
  : /^m\d+__/.test(name) ? "base models" : "combiner, placement, temperature (and fused nodes)";
const sum = (key) => { const m = new Map(); for (const e of nodes) m.set(key(e), (m.get(key(e)) || 0) + e.dur); return [...m].sort((a, b) => b[1] - a[1]); };
const total = nodes.reduce((s, e) => s + e.dur, 0);
const row = ([k, us]) => `| ${k} | ${(us / N / 1e3).toFixed(2)} | ${(100 * us / total).toFixed(1)} % |`;
console.log(`model.onnx, 1 clip of ${T} frames, onnxruntime-web wasm, 1 thread: ${unprofiled.toFixed(1)} ms per run unprofiled; ` +
  `${(nodes.length / N).toFixed(0)} kernels per run.\n`);
console.log("| part | ms per run (profiled) | share |\n|---|---:|---:|\n" + sum((e) => part(e.name)).map(row).join("\n") + "\n");
console.log("| operator | ms per run (profiled) | share |\n|---|---:|---:|\n" + sum((e) => e.args.op_name).slice(0, 10).map(row).join("\n"));
