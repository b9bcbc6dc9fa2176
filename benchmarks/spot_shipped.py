"""Usage: python benchmarks/spot_shipped.py MODEL_DIR [MINUTES] -> spot_shipped.json in the current folder.

Spotting figures of the shipped asl-cafe (with its segmenter) on streams of asl_crowd_8signs people it never saw
(signers 66-75: not in asl_crowd_3signs, which it trained on), kept cells of hello / iloveyou / thanks."""
import json, sys
import numpy as np, torch
from signlang.bench.spot import load_crowd, make_streams, _run_methods
from signlang.inference.predictor import Predictor
torch.set_num_threads(1)
model = sys.argv[1]
OUT = "spot_shipped.json"
clips = load_crowd()
pred = Predictor(model, threads=1)
classes = tuple(pred.classes)
rename = {"thanks": "thank-you"}
names = np.array([rename.get(str(l), str(l)) for l in clips.labels])
signers = np.asarray(clips.signers).astype(int)
keep = np.where((signers >= 66) & np.isin(names, ["hello", "iloveyou", "thank-you"]))[0]
y = np.array([classes.index(n) if n in classes else -1 for n in names])
people = sorted(set(signers[keep]))
rng = np.random.default_rng(0)
val_people = set(rng.choice(people, size=2, replace=False).tolist())
val_idx = np.array([i for i in keep if signers[i] in val_people]); test_idx = np.array([i for i in keep if signers[i] not in val_people])
val = make_streams(clips.landmarks, y, classes, val_idx, 10, 0, signers=clips.signers)
test = make_streams(clips.landmarks, y, classes, test_idx, 30, 1, signers=clips.signers)
res = _run_methods(pred, val, test, (0.33, 0.5, 0.8), 5)
res["people_test"] = sorted(int(p) for p in set(signers[test_idx])); res["people_val"] = sorted(int(p) for p in val_people)
json.dump(res, open(OUT, "w"), indent=1, default=float)
for k in ("segmenter", "gate", "baseline_fixed_windows"):
    r = res[k]; print(k, {m: r.get(m) for m in ("f1_iou50", "precision", "recall", "wer", "signs", "boundary_error_frames", "frames_per_s_one_core")}, r.get("latency_ms"))
print("people test", res["people_test"], "val", res["people_val"])

if len(sys.argv) > 2:  # minutes of looped stream for the memory trace (the recognizer fed frame by frame at 30 FPS)
    from signlang.bench.spot import constant_memory
    mem = constant_memory(pred, test, float(sys.argv[2]))
    print("memory", mem)
    res["memory"] = mem
    json.dump(res, open(OUT, "w"), indent=1, default=float)
