//! Every tensor of the three real models, dequantized on the CPU by Wisp, hashes to the
//! same sha256 as gguf-py's float32 dequantization (fixture written by
//! `tests/reference/dequant_model_hashes.py`).

use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use wisp::gguf::{GgufFile, TensorInfo};
use wisp::quant::dequantize;

/// Elements dequantized per step: bounds memory on the 136M-element embeddings.
const CHUNK_ELEMENTS: u64 = 1 << 20;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn tensor_hash(file: &GgufFile, t: &TensorInfo, buf: &mut Vec<f32>, bytes: &mut Vec<u8>) -> String {
    let ty = t.ggml_type;
    let block = ty.block_size();
    let data = file.tensor_data(t);
    let chunk_blocks = (CHUNK_ELEMENTS / block).max(1);
    let chunk_bytes = (chunk_blocks * ty.type_size()) as usize;
    let mut hasher = Sha256::new();
    for src in data.chunks(chunk_bytes) {
        let n = (src.len() as u64 / ty.type_size() * block) as usize;
        buf.resize(n, 0.0);
        dequantize(ty, src, buf).unwrap_or_else(|e| panic!("{}: {e}", t.name));
        bytes.clear();
        bytes.extend(buf.iter().flat_map(|x| x.to_le_bytes()));
        hasher.update(&bytes[..]);
    }
    hex(&hasher.finalize())
}

#[test]
fn real_model_tensors_match_gguf_py() {
    let start = Instant::now();
    let fixture = wisp_e2e::fixtures_dir().join("dequant/model_hashes.json");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&fixture).expect("model_hashes.json"))
            .expect("valid JSON");
    let mut failures = Vec::new();
    let mut n_tensors = 0;
    for model in wisp_e2e::MODELS.iter() {
        let file = GgufFile::open(&wisp_e2e::model_path(model.key)).expect("model opens");
        let want = expected[model.file]
            .as_object()
            .unwrap_or_else(|| panic!("{} missing from {}", model.file, fixture.display()));
        let tensors = &file.header.tensors;
        assert_eq!(tensors.len(), want.len(), "{}: tensor count", model.file);

        // Tensors are independent: hash them on all cores.
        let next = AtomicUsize::new(0);
        let results = Mutex::new(Vec::new());
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    let (mut buf, mut bytes) = (Vec::new(), Vec::new());
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(t) = tensors.get(i) else { break };
                        let h = tensor_hash(&file, t, &mut buf, &mut bytes);
                        results.lock().unwrap().push((i, h));
                    }
                });
            }
        });
        for (i, got) in results.into_inner().unwrap() {
            let t = &tensors[i];
            n_tensors += 1;
            let Some(w) = want.get(&t.name) else {
                failures.push(format!("{}: {} not in fixture", model.file, t.name));
                continue;
            };
            if w["type"] != t.ggml_type.name() {
                failures.push(format!(
                    "{}: {} type {} (fixture says {})",
                    model.file, t.name, t.ggml_type, w["type"]
                ));
            }
            if w["hash"] != got.as_str() {
                failures.push(format!(
                    "{}: {} ({}) hash {got} (fixture {})",
                    model.file, t.name, t.ggml_type, w["hash"]
                ));
            }
        }
    }
    eprintln!(
        "dequantized and hashed {n_tensors} tensors in {:.1?}",
        start.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} tensors differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(n_tensors, 272 + 236 + 291);
}
