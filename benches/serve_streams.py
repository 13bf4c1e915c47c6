#!/usr/bin/env python3
"""Aggregate decode throughput of an OpenAI-compatible server at 1, 2 and 4 concurrent
streams: `wisp serve --device cpu` (continuous batching on the CPU engine) against
llama.cpp's own server (llama-server, from the PyPI wheel `xllamacpp`, CPU build), one
after the other on the same machine, the same model, threads, prompts and token counts.

    python3 -m venv target/bench-venv && target/bench-venv/bin/pip install xllamacpp==2026.10.11549
    cargo build --release -p wisp-cli
    target/bench-venv/bin/python benches/serve_streams.py target/models/SmolLM2-135M-Instruct.Q4_1.gguf

Each measurement runs `streams` client threads at once, each sending `--requests`
greedy /v1/completions requests of `--max-tokens` one after the other (distinct
prompts, so no request is served from another's cache); aggregate tok/s is all
completion tokens over the wall time of the whole set (prefill included: the prompts
are short). Run it on a quiet machine: a build beside it makes the numbers meaningless.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

PROMPTS = [
    "Count from one to one hundred in words: one, two, three,",
    "The alphabet, letter by letter, separated by commas: A, B, C,",
    "Write the multiples of seven: 7, 14, 21,",
    "List the months of the year, then the days of the week: January, February,",
    "Even numbers from two upwards: 2, 4, 6, 8,",
    "Powers of two: 1, 2, 4, 8, 16,",
    "Name the planets of the solar system in order, with a fact about each: Mercury",
    "Spell out the numbers from ten to fifty: ten, eleven, twelve,",
]


def post(base, path, body, timeout=600):
    req = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.load(r)


def wait_healthy(base, proc, seconds=300):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.3)
    sys.exit("server did not become healthy")


def measure(base, streams, requests, max_tokens):
    tokens = [0] * streams
    errors = []

    def client(i):
        try:
            for r in range(requests):
                prompt = PROMPTS[(i * requests + r) % len(PROMPTS)] + f" (list {i}.{r})"
                out = post(
                    base,
                    "/v1/completions",
                    {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0},
                )
                tokens[i] += out["usage"]["completion_tokens"]
        except Exception as e:  # reported, and the measurement is refused
            errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(streams)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        sys.exit(f"requests failed: {errors[:3]}")
    return sum(tokens) / wall


def run_server(cmd, base, env=None):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_healthy(base, proc)
    except SystemExit:
        proc.kill()
        raise
    return proc


def series(name, base, proc, args):
    try:
        # Warm-up: first-touch of the weights, thread pools spun up.
        post(base, "/v1/completions", {"prompt": "Hello", "max_tokens": 8, "temperature": 0})
        rows = {}
        for streams in args.streams:
            best = max(
                measure(base, streams, args.requests, args.max_tokens) for _ in range(args.reps)
            )
            rows[streams] = best
            print(f"  {name:<12} {streams} stream(s): {best:7.1f} tok/s", flush=True)
        return rows
    finally:
        proc.terminate()
        proc.wait(timeout=30)


PEER = r"""
import sys, time, xllamacpp as x
p = x.CommonParams()
p.model.path = sys.argv[1]
p.n_parallel = int(sys.argv[2])
p.n_ctx = int(sys.argv[2]) * int(sys.argv[3])
p.cpuparams.n_threads = int(sys.argv[4])
p.cpuparams_batch.n_threads = int(sys.argv[4])
p.port = int(sys.argv[5])
server = x.Server(p)
while True:
    time.sleep(3600)
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--wisp", default="target/release/wisp")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--streams", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4])
    ap.add_argument("--requests", type=int, default=2, help="requests per stream")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--reps", type=int, default=2, help="best of this many")
    ap.add_argument("--ctx", type=int, default=512, help="context per stream")
    ap.add_argument("--no-peer", action="store_true")
    args = ap.parse_args()
    parallel = max(args.streams)
    print(f"{os.path.basename(args.model)}, {args.threads} threads, {args.max_tokens} tokens "
          f"per request, {args.requests} requests per stream, best of {args.reps}")

    port = 18431
    base = f"http://127.0.0.1:{port}"
    wisp = run_server(
        [args.wisp, "serve", args.model, "--device", "cpu", "--threads", str(args.threads),
         "--parallel", str(parallel), "--ctx-size", str(args.ctx), "--port", str(port)],
        base,
    )
    ours = series("wisp serve", base, wisp, args)
    peer = None
    if not args.no_peer:
        port += 1
        base = f"http://127.0.0.1:{port}"
        proc = run_server(
            [sys.executable, "-c", PEER, args.model, str(parallel), str(args.ctx),
             str(args.threads), str(port)],
            base,
        )
        peer = series("llama-server", base, proc, args)

    print("\n| streams | wisp serve tok/s | scaling | llama-server tok/s | scaling | wisp / llama-server |")
    print("|---:|---:|---:|---:|---:|---:|")
    for s in args.streams:
        row = f"| {s} | {ours[s]:.1f} | {ours[s] / ours[args.streams[0]]:.2f}× |"
        if peer:
            row += f" {peer[s]:.1f} | {peer[s] / peer[args.streams[0]]:.2f}× | {ours[s] / peer[s]:.2f}× |"
        else:
            row += " | | |"
        print(row)


if __name__ == "__main__":
    main()
