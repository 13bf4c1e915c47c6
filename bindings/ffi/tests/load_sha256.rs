//! Loading from a path with an expected SHA-256: a mismatch is refused with the typed
//! `ChecksumMismatch` before anything is loaded; the right hash (any case) loads.

use std::sync::{Arc, Mutex};
use wisp_ffi::{Engine, EngineConfig, LoadStage, ProgressListener, WispError};

/// SmolLM2-135M-Instruct Q4_1, as pinned by `cargo xtask fetch-models`.
const SMOLLM2_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

fn cpu(sha256: Option<&str>) -> EngineConfig {
    EngineConfig {
        device: Some(wisp_ffi::Device::Cpu),
        context_size: Some(64),
        sha256: sha256.map(str::to_string),
        ..EngineConfig::default()
    }
}

struct Stages(Mutex<Vec<LoadStage>>);

impl ProgressListener for Stages {
    fn on_progress(&self, stage: LoadStage, _: u64, _: u64) {
        self.0.lock().unwrap().push(stage);
    }
}

#[test]
fn a_wrong_hash_is_refused_and_the_right_one_loads() {
    let path = wisp_e2e::model_path("smollm2").display().to_string();
    let wrong = "ab".repeat(32);
    let stages = Arc::new(Stages(Mutex::new(Vec::new())));
    let err = Engine::new(path.clone(), cpu(Some(&wrong)), Some(stages.clone()), None)
        .err()
        .expect("refused");
    assert_eq!(
        err,
        WispError::ChecksumMismatch {
            expected: wrong,
            actual: SMOLLM2_SHA256.into()
        }
    );
    let seen = stages.0.lock().unwrap().clone();
    assert!(seen.contains(&LoadStage::Verifying), "{seen:?}");
    assert!(
        !seen.contains(&LoadStage::Loading),
        "nothing loaded: {seen:?}"
    );

    let upper = SMOLLM2_SHA256.to_ascii_uppercase();
    let engine = Engine::new(path.clone(), cpu(Some(&upper)), None, None).expect("loads");
    assert_eq!(engine.info().architecture, "llama");

    let bad = Engine::new(path, cpu(Some("xyz")), None, None)
        .err()
        .expect("refused");
    assert!(matches!(bad, WispError::InvalidRequest { .. }), "{bad:?}");
}

#[test]
fn a_file_that_is_not_gguf_reports_the_mismatch() {
    let dir = std::env::temp_dir().join(format!("wisp-ffi-sha-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("page.gguf");
    std::fs::write(&path, b"<html>not a model</html>").unwrap();
    let p = path.display().to_string();
    let err = Engine::new(p.clone(), cpu(Some(SMOLLM2_SHA256)), None, None)
        .err()
        .expect("refused");
    assert!(matches!(err, WispError::ChecksumMismatch { .. }), "{err:?}");
    let err = Engine::new(p, cpu(None), None, None)
        .err()
        .expect("refused");
    assert!(matches!(err, WispError::InvalidModel { .. }), "{err:?}");
    std::fs::remove_dir_all(&dir).ok();
}
