"""Usage: python benchmarks/openset_joint_heldout.py JOINT_PROBA.npz MODEL_DIR -> openset_joint_heldout.json here.

Open-set figures of a pretrained model on people it never saw, from the held-out probabilities of its recipe
(``signlang benchmark accuracy --parts joint`` -> ``*_joint_proba.npz``): the crowd's known clips (each scored
by the fit that never saw its person) and the clips of the crowd signs left out of the vocabulary (unknown).
1. The model's own rule (``meta.open_set`` of MODEL_DIR, after its temperature): share declined per known sign,
   per unknown sign, and on the main set's test part.
2. Cross-fitted over people: the same kind of rule fitted on the known crowd clips of half of the people (seeded
   halves, both ways) and scored on the other half, so the threshold never saw the people it is scored on.
"""
import json
import sys

import numpy as np

from signlang.models.openset import OpenSetRule, auroc, fit_open_set
from signlang.models.temperature import apply_temperature

proba_path, model = sys.argv[1], sys.argv[2]
OUT = "openset_joint_heldout.json"
manifest = json.load(open(f"{model}/manifest.json"))
meta = manifest["meta"]
T = float(meta["temperature"])
rule = OpenSetRule.from_json(meta["open_set"])
z = np.load(proba_path, allow_pickle=False)
classes = [str(c) for c in z["classes"]]
assert classes == list(manifest["classes"]), "the probabilities' classes differ from the model's"
known = apply_temperature(z["crowd_proba"], T)
y, signer = z["crowd_y"], z["crowd_signer"].astype(str)
unknown = apply_temperature(z["unknown_proba"], T)
u_sign, u_signer = z["unknown_sign"].astype(str), z["unknown_signer"].astype(str)
main = apply_temperature(z["main_proba"].reshape(-1, z["main_proba"].shape[-1]), T)
k_dec, u_dec = rule.unknown(known), rule.unknown(unknown)
res = {"proba": proba_path, "model": model, "temperature": T, "rule": {"method": rule.method, "threshold": rule.threshold},
       "shipped_rule": {
           "known_crowd": {"clips": int(len(known)), "people": int(len(set(signer))), "declined": float(k_dec.mean()),
                           "per_sign": {classes[c]: {"clips": int((y == c).sum()), "declined": float(k_dec[y == c].mean())} for c in sorted(set(y.tolist()))},
                           "accuracy_answered": float((known.argmax(1) == y)[~k_dec].mean()), "accuracy_all": float((known.argmax(1) == y).mean())},
           "unknown_crowd": {"clips": int(len(unknown)), "people": int(len(set(u_signer))), "declined": float(u_dec.mean()),
                             "per_sign": {s: {"clips": int((u_sign == s).sum()), "people": int(len(set(u_signer[u_sign == s]))),
                                              "declined": float(u_dec[u_sign == s].mean()),
                                              "answered_as": dict(zip(*[a.tolist() for a in np.unique(np.asarray(classes)[unknown[(u_sign == s) & ~u_dec].argmax(1)], return_counts=True)]))}
                                          for s in sorted(set(u_sign))}},
           "main_test_declined": float(rule.unknown(main).mean()),
           "auroc_crowd": auroc(rule.score(known), rule.score(unknown))}}
people = np.array(sorted(set(signer) | set(u_signer)))
half = set(np.random.default_rng(0).permutation(people)[: len(people) // 2].tolist())
rows = []
for fit_half in (True, False):
    fk = np.array([(s in half) == fit_half for s in signer])
    fu = np.array([(s in half) == fit_half for s in u_signer])
    r = fit_open_set(known[fk], rule.method, float(rule.record.get("target_false_rejection", 0.05)), unknown[fu], y_known_valid=y[fk])
    kd, ud = r.unknown(known[~fk]), r.unknown(unknown[~fu])
    rows.append({"threshold": r.threshold, "known_clips": int((~fk).sum()), "known_declined": float(kd.mean()),
                 "unknown_clips": int((~fu).sum()), "unknown_declined": float(ud.mean()), "auroc": auroc(r.score(known[~fk]), r.score(unknown[~fu]))})
res["cross_fitted_by_people"] = {"halves": rows, "known_declined": float(np.mean([r["known_declined"] for r in rows])),
                                 "unknown_declined": float(np.mean([r["unknown_declined"] for r in rows]))}
json.dump(res, open(OUT, "w"), indent=1, default=float)
print(json.dumps(res, indent=1, default=float))
