// Teacher-forced top-k logits of llama.cpp (node-llama-cpp 3.22.1 prebuilt) over the
// synthetic models of `cargo xtask synth`: for each GGUF given, a fixed pseudo-random
// token sequence (ids from a seeded LCG, so the fixture records them and anyone can
// check), top-10 logits after every token.
//
// usage: node synth_logits_llamacpp.mjs --backend cpu|vulkan --out DIR [--tokens N]
//            [--context N] FILE.gguf...
// writes DIR/<file stem>.llama.json (with --context: <stem>.ctxN.llama.json; Phi-3 picks
// its long RoPE factors when the context exceeds rope.scaling.original_context_length)
import {createRequire} from "node:module";
import {fileURLToPath, pathToFileURL} from "node:url";
import path from "node:path";
import fs from "node:fs";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "package.json"));
const nlcEntry = require.resolve("node-llama-cpp");
const {getLlama, LlamaLogLevel} = await import(pathToFileURL(nlcEntry).href);

const TOP_K = 10;
const args = {backend: "cpu", out: null, n: 40, files: []};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === "--backend") args.backend = argv[++i];
    else if (k === "--out") args.out = path.resolve(argv[++i]);
    else if (k === "--tokens") args.n = Number(argv[++i]);
    else if (k === "--threads") args.threads = Number(argv[++i]);
    else if (k === "--context") args.context = Number(argv[++i]);
    else args.files.push(k);
}
if (!args.out || args.files.length === 0) throw new Error("usage: --out DIR FILE.gguf...");
fs.mkdirSync(args.out, {recursive: true});

// Ids in [259, n_vocab): past <unk> <s> </s> and the 256 byte tokens.
function tokenSequence(nVocab, n, seed) {
    let s = BigInt(seed);
    const out = [];
    for (let i = 0; i < n; i++) {
        s = (s * 6364136223846793005n + 1442695040888963407n) & ((1n << 64n) - 1n);
        out.push(259 + Number((s >> 33n) % BigInt(nVocab - 259)));
    }
    return out;
}

const llama = await getLlama({gpu: args.backend === "cpu" ? false : args.backend, build: "never",
    skipDownload: true, logLevel: LlamaLogLevel.warn});
const info = {
    node_llama_cpp: JSON.parse(fs.readFileSync(path.join(path.dirname(nlcEntry), "..", "package.json"), "utf8")).version,
    llama_cpp_release: llama.llamaCppRelease,
    backend: llama.gpu === false ? "cpu" : llama.gpu,
};
for (const file of args.files) {
    const t0 = performance.now();
    const model = await llama.loadModel({modelPath: file, gpuLayers: args.backend === "cpu" ? 0 : "max"});
    const nVocab = model.tokens.getVocabSize?.() ?? model.fileInfo.metadata.tokenizer.ggml.tokens.length;
    const tokens = tokenSequence(nVocab, args.n, 2026);
    const context = await model.createContext({contextSize: args.context ?? 256, batchSize: 256, sequences: 1,
        flashAttention: false, ...(args.threads ? {threads: args.threads} : {})});
    const seq = context.getSequence();
    const opts = {generateNext: {logits: {filter: {tokens: [], includeTop: TOP_K}}}};
    const res = await seq.controlledEvaluate(tokens.map((t) => [t, opts]));
    const top = res.map((r, i) => {
        if (r?.next?.logits == null) throw new Error(`no logits at position ${i}`);
        const out = [];
        for (const [id, logit] of r.next.logits) {
            out.push([id, Math.round(logit * 1e5) / 1e5]);
            if (out.length === TOP_K) break;
        }
        return out;
    });
    const stem = path.basename(file, ".gguf");
    const outFile = path.join(args.out, `${stem}${args.context ? `.ctx${args.context}` : ""}.llama.json`);
    fs.writeFileSync(outFile, JSON.stringify({model: path.basename(file), llama_cpp: info, n_ctx: args.context ?? 256,
        token_seed: 2026, tokens, llama: top}));
    console.error(`[${stem}] ${tokens.length} positions in ${((performance.now() - t0) / 1000).toFixed(1)} s -> ${outFile}`);
    await context.dispose();
    await model.dispose();
}
