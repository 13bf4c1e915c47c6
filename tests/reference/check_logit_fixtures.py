#!/usr/bin/env python3
"""Check that the float64 reference agrees with llama.cpp's Vulkan logits in the fixtures.

Asserts, at every position of every case: each of llama.cpp's top-5 tokens appears in the
f64 top-20 with |logit difference| <= 0.35. Reports per model the max and median |delta|
over llama's top-5, and the top-1 agreement at positions where the f64 top-2 gap >= 0.3.

--compare FILE[,FILE...]  also report (without asserting) the same numbers for other
llama.cpp runs over the fixtures' token sequences, e.g. the CPU backend:
target/logit-fixtures/llama_cpu_smollm2.json (made by logits_llamacpp.mjs --backend cpu
--mode teacher-force).
"""
import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(REPO, "tests", "fixtures", "logits")
TOL = 0.35
TOPN = 5
GAP = 0.3


def compare(cases_llama, cases_f64, label, strict):
    deltas, fails = [], []
    agree = n_decisive = 0
    per_case_max = []
    skipped = 0
    for ci, (lc, fc) in enumerate(zip(cases_llama, cases_f64)):
        if lc["tokens"] != fc["tokens"]:
            assert not strict
            skipped += 1  # another run whose greedy continuation went elsewhere
            continue
        cmax = 0.0
        for pos, (lp, fp) in enumerate(zip(lc["llama"], fc["f64"])):
            fd = {int(i): v for i, v in fp}
            for tid, lv in lp[:TOPN]:
                if tid not in fd:
                    fails.append((ci, pos, tid, lv, None))
                    continue
                dlt = abs(fd[tid] - lv)
                deltas.append(dlt)
                cmax = max(cmax, dlt)
                if dlt > TOL:
                    fails.append((ci, pos, tid, lv, fd[tid]))
            if fp[0][1] - fp[1][1] >= GAP:
                n_decisive += 1
                agree += int(lp[0][0] == fp[0][0])
        per_case_max.append(cmax)
    d = np.array(deltas)
    stats = {
        "label": label, "positions": sum(len(c["tokens"]) for c, f in zip(cases_llama, cases_f64) if c["tokens"] == f["tokens"]),
        "max": float(d.max()), "median": float(np.median(d)), "p99": float(np.quantile(d, 0.99)),
        "top1_agree": agree, "top1_decisive": n_decisive, "fails": len(fails),
        "per_case_max": [round(x, 3) for x in per_case_max],
    }
    print(f"{label:28s} positions={stats['positions']:5d}  |d| over llama top-{TOPN}: max={stats['max']:.4f} "
          f"median={stats['median']:.4f} p99={stats['p99']:.4f}  top-1 agree {agree}/{n_decisive} "
          f"(f64 gap>={GAP})  violations={len(fails)}"
          + (f"  ({skipped} cases with other tokens skipped)" if skipped else ""))
    print(f"{'':28s} per-case max |d|: {stats['per_case_max']}")
    if fails and strict:
        for f in fails[:10]:
            print(f"   FAIL case {f[0]} pos {f[1]} token {f[2]} llama {f[3]} f64 {f[4]}")
    return stats


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="smollm2,gemma3,qwen2")
    ap.add_argument("--compare", default="")
    args = ap.parse_args()
    ok = True
    fx = {}
    for key in args.models.split(","):
        F = json.load(open(os.path.join(FIXTURES, f"{key}.json")))
        fx[F["model"]] = F
        for c in F["cases"]:
            assert len(c["llama"]) == len(c["f64"]) == len(c["tokens"])
            assert all(len(p) == 10 for p in c["llama"]) and all(len(p) == 20 for p in c["f64"])
            assert len(c["tokens"]) == c["n_prompt"] + 32
        s = compare(F["cases"], F["cases"], f"{key} vulkan vs f64", True)
        ok &= s["fails"] == 0
    for path in filter(None, args.compare.split(",")):
        L = json.load(open(path))
        F = fx[L["model"]]
        compare(L["cases"], F["cases"], f"{os.path.basename(path)} vs f64", False)
    if not ok:
        print("FAILED: llama.cpp Vulkan and the f64 reference disagree", file=sys.stderr)
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
