// Reference token ids from llama.cpp (through node-llama-cpp's prebuilt binary) for the
// tokenizer fixtures: for each test model, every string of
// tests/fixtures/tokenizer/corpus.json tokenized with parse_special = false and no BOS
// (llama_tokenize(add_special = false)), llama_detokenize of those ids with and without
// special tokens rendered, a few chat-markup strings with parse_special = true, the BOS
// llama.cpp prepends, and the end-of-generation token set.
//
//   NODE_LLAMA_CPP_SKIP_DOWNLOAD=true WISP_MODELS=/path/to/models \
//   NODE_LLAMA_CPP_DIR=/path/to/node_modules/node-llama-cpp \
//     node tests/reference/tokenize_llamacpp.mjs
//
// Writes tests/fixtures/tokenizer/<key>.json for smollm2, gemma3 and qwen2.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const nlcDir = process.env.NODE_LLAMA_CPP_DIR;
const nlc = nlcDir
    ? await import(pathToFileURL(path.join(nlcDir, "dist/index.js")).href)
    : await import("node-llama-cpp");
const { getLlama, LlamaLogLevel } = nlc;

const models = {
    smollm2: "SmolLM2-135M-Instruct.Q4_1.gguf",
    gemma3: "gemma-3-270m-q4_k_m.gguf",
    qwen2: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
};
const modelsDir = process.env.WISP_MODELS ?? path.join(root, "target/models");
const fixtures = path.join(root, "tests/fixtures/tokenizer");
const corpus = JSON.parse(fs.readFileSync(path.join(fixtures, "corpus.json"), "utf8"));

// Template-style markup, tokenized with parse_special = true.
const special = {
    smollm2: [
        "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>user\n<|im_end|>",
        "<|endoftext|><|im_start|><|im_end|>",
        "text<|im_end|>more <|im_start|> spaced",
        "<|im_start|><|im_start|>",
        "<|im_ <|im_start|",
        "<repo_name>wisp<file_sep>src/main.rs\nfn main() {}",
    ],
    gemma3: [
        "<start_of_turn>user\nHello there<end_of_turn>\n<start_of_turn>model\n",
        "<bos><start_of_turn>user\nHi<end_of_turn>",
        "<start_of_turn>  spaced  <end_of_turn>",
        "no markup at all",
        "<eos><pad><unk><mask>",
        "<start_of_image> image <end_of_image>",
        "<unused0><unused99>",
        "<start_of_turn<end_of_turn>>",
    ],
    qwen2: [
        "<|im_start|>system\nYou are Qwen.<|im_end|>\n<|im_start|>user\nWrite code.<|im_end|>\n<|im_start|>assistant\n",
        "<|fim_prefix|>def f():\n<|fim_suffix|>\n    return 1<|fim_middle|>",
        "<tool_call>\n{\"name\": \"f\"}\n</tool_call>",
        "<|endoftext|><|im_end|>",
        "<|im_start|> <|im_end|>",
        "<|repo_name|>r\n<|file_sep|>a.py\nx",
    ],
};

const llama = await getLlama({
    gpu: false,
    build: "never",
    skipDownload: true,
    logLevel: LlamaLogLevel.error,
});

for (const [key, file] of Object.entries(models)) {
    const model = await llama.loadModel({ modelPath: path.join(modelsDir, file), vocabOnly: true });
    const t0 = Date.now();
    const cases = corpus.map((text) => {
        const ids = Array.from(model.tokenize(text, false));
        return {
            text,
            ids,
            decoded: model.detokenize(ids, false),
            decoded_special: model.detokenize(ids, true),
        };
    });
    const specialCases = special[key].map((text) => {
        const ids = Array.from(model.tokenize(text, true));
        return { text, ids, decoded_special: model.detokenize(ids, true) };
    });
    const bos = model.tokens.bos;
    const addBos = model.tokens.shouldPrependBosToken;
    // llama_tokenize(add_special = true) = BOS (when the model asks for it) + the rest.
    const withBos = ["Hello world", "<start_of_turn>user\nHi", " leading space", ""].map((text) => {
        const ids = Array.from(model.tokenize(text, true));
        return { text, ids: addBos && bos != null ? [bos, ...ids] : ids };
    });
    const nVocab = model.fileInfo.metadata?.tokenizer?.ggml?.tokens?.length;
    const eog = [];
    for (let id = 0; id < nVocab; id++) if (model.isEogToken(id)) eog.push(id);
    const out = {
        model: file,
        reference: "llama.cpp via node-llama-cpp (tokenize(text, false), detokenize(ids, special))",
        bos,
        eos: model.tokens.eos,
        add_bos: addBos,
        n_vocab: nVocab,
        eog,
        cases,
        special_cases: specialCases,
        with_bos: withBos,
    };
    fs.writeFileSync(path.join(fixtures, `${key}.json`), JSON.stringify(out, null, 1) + "\n");
    console.log(`${key}: ${cases.length} strings in ${Date.now() - t0} ms, eog ${JSON.stringify(eog)}`);
    await model.dispose();
}
await llama.dispose();
