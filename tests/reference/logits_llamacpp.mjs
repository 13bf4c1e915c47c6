// Reference logits from llama.cpp (through node-llama-cpp 3.22.1's prebuilt binaries).
//
// Mode "generate" (default), backend Vulkan (lavapipe on a GPU-less machine):
//   for every model and prompt in tests/fixtures/logits/prompts.json
//     1. tokenize the raw prompt as llama.cpp does (common_tokenize with add_special=false,
//        parse_special=false; a BOS is prepended only when the vocab says add_bos_token),
//     2. generate a 32-token greedy continuation (temperature 0, no chat template),
//     3. teacher-force prompt+continuation in ONE batch on a fresh sequence and record the
//        top-10 (id, raw logit) of the distribution after every token.
// Mode "teacher-force" (use with --backend cpu to measure the CPU backend): reads the token
//   sequences from the existing fixtures and only does step 3.
//
// usage: node logits_llamacpp.mjs [--backend vulkan|cpu] [--mode generate|teacher-force]
//                                 [--models smollm2,gemma3,qwen2] [--out DIR] [--vk-f16] [--threads N]
//
// Precision: ggml-vulkan multiplies matrices (batches of more than 8 tokens) with f16
// accumulators whenever the device has shaderFloat16 (lavapipe has), which moves logits by up
// to ~1.0 on SmolLM2. These fixtures are a precision reference, so by default this script
// sets GGML_VK_DISABLE_F16=1 (f32 shaders; the KV cache stays f16). --vk-f16 keeps the
// default f16 path (output llama_vulkan-f16_<key>.json) for comparison.
// env:   WISP_MODELS (default <repo>/target/models), GGML_VK_VISIBLE_DEVICES=0 for lavapipe,
//        NODE_LLAMA_CPP_SKIP_DOWNLOAD=true.
import {createRequire} from "node:module";
import {fileURLToPath, pathToFileURL} from "node:url";
import path from "node:path";
import fs from "node:fs";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..", "..");
// node-llama-cpp is resolved from tests/reference/node_modules (see package.json here).
const require = createRequire(path.join(here, "package.json"));
const nlcEntry = require.resolve("node-llama-cpp");
const {getLlama, LlamaLogLevel} = await import(pathToFileURL(nlcEntry).href);

export const MODELS = {
    smollm2: "SmolLM2-135M-Instruct.Q4_1.gguf",
    gemma3: "gemma-3-270m-q4_k_m.gguf",
    qwen2: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
};
const N_GEN = 32;
const TOP_K = 10;

function parseArgs(argv) {
    const a = {backend: "vulkan", mode: "generate", models: Object.keys(MODELS),
        out: path.join(repo, "target", "logit-fixtures")};
    for (let i = 0; i < argv.length; i++) {
        const k = argv[i], v = argv[i + 1];
        if (k === "--backend") { a.backend = v; i++; }
        else if (k === "--mode") { a.mode = v; i++; }
        else if (k === "--models") { a.models = v.split(","); i++; }
        else if (k === "--out") { a.out = path.resolve(v); i++; }
        else if (k === "--vk-f16") { a.vkF16 = true; }
        else if (k === "--threads") { a.threads = Number(v); i++; }
        else throw new Error(`unknown argument ${k}`);
    }
    return a;
}

const args = parseArgs(process.argv.slice(2));
const modelsDir = process.env.WISP_MODELS ?? path.join(repo, "target", "models");
const prompts = JSON.parse(fs.readFileSync(path.join(repo, "tests/fixtures/logits/prompts.json"), "utf8"));
fs.mkdirSync(args.out, {recursive: true});

if (args.backend === "vulkan" && !args.vkF16) process.env.GGML_VK_DISABLE_F16 = "1";
const llama = await getLlama({
    gpu: args.backend === "cpu" ? false : args.backend,
    build: "never",
    skipDownload: true,
    logLevel: LlamaLogLevel.warn,
});
const devices = args.backend === "cpu" ? ["cpu"] : await llama.getGpuDeviceNames();
const info = {
    node_llama_cpp: JSON.parse(fs.readFileSync(path.join(path.dirname(nlcEntry), "..", "package.json"), "utf8")).version,
    llama_cpp_release: llama.llamaCppRelease,
    backend: llama.gpu === false ? "cpu" : llama.gpu,
    device: devices.join(", "),
    build_type: llama.buildType,
    env: Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith("GGML_VK_") || k.startsWith("LP_"))),
};
const backendTag = info.backend + (args.backend === "vulkan" && args.vkF16 ? "-f16" : "");
console.error(`[llama.cpp] ${JSON.stringify(info)}`);

function topEntries(map, k) {
    // node-llama-cpp returns the Map sorted by logit, highest first.
    const out = [];
    for (const [id, logit] of map) {
        out.push([id, logit]);
        if (out.length === k) break;
    }
    return out;
}

async function teacherForce(seq, tokens) {
    await seq.clearHistory();
    const opts = {generateNext: {logits: {filter: {tokens: [], includeTop: TOP_K}}}};
    const res = await seq.controlledEvaluate(tokens.map((t) => [t, opts]));
    return res.map((r, i) => {
        if (r?.next?.logits == null) throw new Error(`no logits at position ${i}`);
        return topEntries(r.next.logits, TOP_K);
    });
}

async function generateGreedy(seq, promptTokens) {
    await seq.clearHistory();
    const step = {generateNext: {token: true, options: {temperature: 0},
        logits: {filter: {tokens: [], includeTop: 2}}}};
    const gen = [];
    const gaps = [];
    let input = promptTokens.map((t, i) => (i === promptTokens.length - 1 ? [t, step] : t));
    for (let n = 0; n < N_GEN; n++) {
        const res = await seq.controlledEvaluate(input);
        const next = res[res.length - 1].next;
        const top = topEntries(next.logits, 2);
        if (next.token !== top[0][0] && top[0][1] !== top[1][1])
            throw new Error(`sampled ${next.token} but argmax is ${top[0][0]}`);
        gen.push(next.token);
        gaps.push(top[0][1] - top[1][1]);
        input = [[next.token, step]];
    }
    return {gen, gaps};
}

for (const key of args.models) {
    const file = MODELS[key];
    const modelPath = path.join(modelsDir, file);
    const model = await llama.loadModel({modelPath, gpuLayers: args.backend === "cpu" ? 0 : "max"});
    const casePrompts = [...prompts.common, ...(prompts.extra[key] ?? [])];

    let sequences;
    if (args.mode === "teacher-force") {
        const fx = JSON.parse(fs.readFileSync(path.join(repo, "tests/fixtures/logits", `${key}.json`), "utf8"));
        sequences = fx.cases.map((c) => ({prompt: c.prompt, n_prompt: c.n_prompt, tokens: c.tokens}));
    } else {
        sequences = casePrompts.map((p) => {
            const ids = Array.from(model.tokenize(p, false));
            const bos = model.tokens.shouldPrependBosToken ? [model.tokens.bos] : [];
            return {prompt: p, n_prompt: bos.length + ids.length, tokens: [...bos, ...ids]};
        });
    }
    const maxLen = Math.max(...sequences.map((s) => s.n_prompt + N_GEN));
    const ctxSize = Math.max(256, Math.ceil(maxLen / 256) * 256);
    const context = await model.createContext({contextSize: ctxSize, batchSize: ctxSize,
        sequences: 1, flashAttention: false, ...(args.threads ? {threads: args.threads} : {})});
    const seq = context.getSequence();
    console.error(`[${key}] ${file}: gpuLayers=${model.gpuLayers} ctx=${ctxSize} cases=${sequences.length}`);

    const cases = [];
    for (const s of sequences) {
        const t0 = performance.now();
        let gen = null, gaps = null;
        if (args.mode === "generate") {
            ({gen, gaps} = await generateGreedy(seq, s.tokens));
            s.tokens = [...s.tokens.slice(0, s.n_prompt), ...gen];
        }
        const t1 = performance.now();
        const top = await teacherForce(seq, s.tokens);
        const t2 = performance.now();
        const c = {prompt: s.prompt, n_prompt: s.n_prompt, tokens: s.tokens, llama: top,
            seconds: {generate: (t1 - t0) / 1000, teacher_force: (t2 - t1) / 1000}};
        if (gen) {
            c.continuation_text = model.detokenize(gen, false, s.tokens.slice(0, s.n_prompt));
            c.generation_top2_gap = gaps;
        }
        cases.push(c);
        console.error(`[${key}] n_prompt=${s.n_prompt} gen ${((t1 - t0) / 1000).toFixed(1)} s, ` +
            `teacher-force ${s.tokens.length} tok ${((t2 - t1) / 1000).toFixed(1)} s ` +
            `(${(s.tokens.length / ((t2 - t1) / 1000)).toFixed(1)} tok/s) ${JSON.stringify(c.continuation_text ?? "")}`);
    }
    const out = {model: file, add_bos: model.tokens.shouldPrependBosToken, info, mode: args.mode, cases};
    const outFile = path.join(args.out, `llama_${backendTag}_${key}.json`);
    fs.writeFileSync(outFile, JSON.stringify(out));
    console.error(`[${key}] wrote ${outFile}`);
    await context.dispose();
    await model.dispose();
}
await llama.dispose();
