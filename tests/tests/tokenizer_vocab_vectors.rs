//! llama.cpp's own tokenizer test vectors (`ggml-vocab-*.gguf` with `.inp`/`.out`), run
//! the way its `test-tokenizer-0` runs them: inputs separated by
//! `\n__ggml_vocab_test__\n`, one line of space-separated ids per input, tokenized with
//! `add_special = false, parse_special = false` (no BOS, no leading space added).
//!
//! Every vocabulary Wisp supports must pass every case; every other one must be refused
//! by `from_gguf` with `Error::Unsupported` naming what is missing.

use std::path::Path;
use wisp::gguf::GgufFile;
use wisp::tokenizer::Tokenizer;

fn read_cases(inp: &Path, out: &Path) -> Vec<(String, Vec<u32>)> {
    let raw = std::fs::read_to_string(inp).unwrap();
    let sep = "\n__ggml_vocab_test__\n";
    // test-tokenizer-0's splitting: a trailing separator ends the list, it does not
    // add an empty case.
    let mut inputs = Vec::new();
    let mut pos = 0;
    while pos < raw.len() {
        match raw[pos..].find(sep) {
            Some(i) => {
                inputs.push(raw[pos..pos + i].to_string());
                pos += i + sep.len();
            }
            None => {
                inputs.push(raw[pos..].to_string());
                break;
            }
        }
    }
    let outputs: Vec<Vec<u32>> = std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect();
    assert_eq!(inputs.len(), outputs.len(), "{}", inp.display());
    inputs.into_iter().zip(outputs).collect()
}

#[test]
fn llama_cpp_vocab_vectors() {
    let dir = wisp_e2e::llama_cpp_dir();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
        .collect();
    files.sort();
    let (mut passed, mut unsupported, mut no_vectors, mut failures) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let inp = path.with_extension("gguf.inp");
        let out = path.with_extension("gguf.out");
        let file = GgufFile::open(path).unwrap();
        let t0 = std::time::Instant::now();
        let tok = Tokenizer::from_gguf(&file.header);
        let load = t0.elapsed();
        if !inp.exists() {
            no_vectors.push(format!(
                "{name} ({})",
                match &tok {
                    Ok(_) => "loads".to_string(),
                    Err(e) => e.to_string(),
                }
            ));
            continue;
        }
        let tok = match tok {
            Ok(t) => t,
            Err(wisp::Error::Unsupported(msg)) => {
                assert!(
                    msg.contains("not supported") || msg.contains("unknown"),
                    "{name}: unclear message {msg:?}"
                );
                unsupported.push(format!("{name}: {msg}"));
                continue;
            }
            Err(e) => panic!("{name}: from_gguf failed with a non-unsupported error: {e}"),
        };
        let cases = read_cases(&inp, &out);
        let mut bad = 0;
        for (text, want) in &cases {
            let got = tok.encode(text, false);
            if &got != want {
                bad += 1;
                if bad <= 5 {
                    failures.push(format!(
                        "{name}: {text:?}\n   want {want:?}\n   got  {got:?}"
                    ));
                }
            }
        }
        passed.push(format!(
            "{name}: {}/{} cases (vocab {} tokens loaded in {load:.1?})",
            cases.len() - bad,
            cases.len(),
            tok.vocab_size()
        ));
        if bad > 0 {
            failures.push(format!("{name}: {bad} of {} cases differ", cases.len()));
        }
    }
    println!("supported, vectors run:\n  {}", passed.join("\n  "));
    println!(
        "unsupported (refused by from_gguf):\n  {}",
        unsupported.join("\n  ")
    );
    println!("no .inp/.out vectors:\n  {}", no_vectors.join("\n  "));
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
    // The test must not pass by refusing everything.
    for must in [
        "llama-spm",
        "llama-bpe",
        "qwen2",
        "gpt-2",
        "phi-3",
        "starcoder",
        "falcon",
    ] {
        let f = format!("ggml-vocab-{must}.gguf:");
        assert!(
            passed.iter().any(|p| p.starts_with(&f)),
            "{must} should be supported"
        );
    }
}
