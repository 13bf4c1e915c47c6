// llama.cpp's speed on the same model, prompt size and device as `wisp bench`, through
// node-llama-cpp's prebuilt binaries. Prints the same JSON shape as `wisp bench --json`.
//
//   node benches/llamacpp_bench.mjs MODEL --pp 128 --tg 32 --reps 1 [--backend vulkan|cpu] [--threads N]
//
// Vulkan on lavapipe needs GGML_VK_VISIBLE_DEVICES=0 (set here when absent).
import {getLlama} from "node-llama-cpp";
import os from "node:os";
import {readFileSync} from "node:fs";

// Resident bytes now and at peak (Linux), as `wisp bench` reports them.
const resident = () => {
    try {
        const status = readFileSync("/proc/self/status", "utf8");
        const kb = (k) => Number(status.match(new RegExp(`${k}:\\s+(\\d+) kB`))?.[1]) * 1024;
        return {rss: kb("VmRSS"), peak: kb("VmHWM")};
    } catch {
        return {rss: NaN, peak: NaN};
    }
};

const args = process.argv.slice(2);
const opt = (name, dflt) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : dflt;
};
const modelPath = args[0];
const pp = Number(opt("pp", 128)), tg = Number(opt("tg", 32)), reps = Number(opt("reps", 1));
const backend = opt("backend", "vulkan");
process.env.GGML_VK_VISIBLE_DEVICES ??= "0";

const t0 = performance.now();
const llama = await getLlama({gpu: backend === "cpu" ? false : backend, build: "never", skipDownload: true});
// Node and the llama.cpp libraries before the model.
const baseline = resident();
const model = await llama.loadModel({modelPath, gpuLayers: backend === "cpu" ? 0 : "max"});
// One thread per core: node-llama-cpp's default (4 here) oversubscribes a 2-core machine,
// and llama.cpp's spinning thread barriers then make the CPU build ~10x slower.
const threads = Number(opt("threads", os.availableParallelism?.() ?? os.cpus().length));
const context = await model.createContext({contextSize: Math.max(256, pp + tg + 8), batchSize: Math.max(pp, 8), threads});
const loadS = (performance.now() - t0) / 1000;
const seq = context.getSequence();
// The same prompt ids as `wisp bench`: spread over the vocabulary.
const vocab = Number(model.fileInfo.metadata?.[model.fileInfo.metadata.general.architecture]?.vocab_size ?? model.fileInfo.metadata.tokenizer.ggml.tokens.length);
const prompt = Array.from({length: pp}, (_, i) => 1000 + (i * 7919) % (vocab - 1000));

const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const ppTimes = [], tgTimes = [];
for (let rep = 0; rep <= reps; rep++) {
    await seq.clearHistory();
    let t = performance.now();
    await seq.evaluateWithoutGeneratingNewTokens(prompt);
    const prefill = (performance.now() - t) / 1000;
    t = performance.now();
    let n = 0;
    if (tg > 0) {
        for await (const token of seq.evaluate([prompt[pp - 1]], {temperature: 0})) {
            void token;
            if (++n >= tg) break;
        }
    }
    const decode = (performance.now() - t) / 1000;
    if (rep > 0) {
        ppTimes.push(prefill);
        tgTimes.push(decode);
    }
}
const ppS = median(ppTimes);
const end = resident();
console.log(JSON.stringify({
    peak_rss_bytes: end.peak, baseline_rss_bytes: baseline.rss, model_peak_rss_bytes: end.peak - baseline.rss,
    load_s: loadS, pp_tokens: pp, pp_tok_s: pp / ppS, tg_tokens: tg, tg_tok_s: tg > 0 ? tg / median(tgTimes) : 0,
    ttft_s: ppS, backend, threads, lp_num_threads: process.env.LP_NUM_THREADS ?? null, device: llama.getGpuDeviceNames ? await llama.getGpuDeviceNames() : [],
}));
await context.dispose();
await model.dispose();
await llama.dispose();
