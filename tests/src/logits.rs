//! The logit fixtures (`tests/fixtures/logits/<model>.json`, made by
//! `tests/reference/make_logit_fixtures.sh`) and the bars every backend is held to.

use serde_json::Value;

/// One teacher-forced case: prompt tokens followed by llama.cpp's greedy continuation.
pub struct Case {
    pub prompt: String,
    pub n_prompt: usize,
    pub tokens: Vec<u32>,
    /// llama.cpp (Vulkan) top-10 per position.
    pub llama: Vec<Vec<(u32, f32)>>,
    /// Our float64 reference's top-20 per position.
    pub f64: Vec<Vec<(u32, f32)>>,
}

pub struct Fixture {
    pub model: String,
    pub cases: Vec<Case>,
}

fn tops(v: &Value) -> Vec<Vec<(u32, f32)>> {
    v.as_array()
        .expect("positions")
        .iter()
        .map(|pos| {
            pos.as_array()
                .expect("top list")
                .iter()
                .map(|e| {
                    (
                        e[0].as_u64().expect("id") as u32,
                        e[1].as_f64().expect("logit") as f32,
                    )
                })
                .collect()
        })
        .collect()
}

pub fn load(key: &str) -> Fixture {
    let path = crate::fixtures_dir().join(format!("logits/{key}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: Value = serde_json::from_str(&text).expect("fixture JSON");
    let cases = v["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| Case {
            prompt: c["prompt"].as_str().expect("prompt").to_string(),
            n_prompt: c["n_prompt"].as_u64().expect("n_prompt") as usize,
            tokens: c["tokens"]
                .as_array()
                .expect("tokens")
                .iter()
                .map(|t| t.as_u64().expect("token") as u32)
                .collect(),
            llama: tops(&c["llama"]),
            f64: tops(&c["f64"]),
        })
        .collect();
    Fixture {
        model: v["model"].as_str().expect("model").to_string(),
        cases,
    }
}

/// Gap between the reference's top-1 and top-2 below which ranks may swap.
pub const NEAR_TIE: f32 = 0.3;
/// How far a logit may sit from llama.cpp's at the first generated position.
pub const LLAMA_TOLERANCE: f32 = 0.35;

/// How a backend's logits compared with the references over a fixture.
#[derive(Debug, Default)]
pub struct Agreement {
    pub positions: usize,
    /// Positions where the float64 gap was wide enough to demand top-1 agreement.
    pub gated: usize,
    pub top1_mismatches: Vec<String>,
    /// Gated positions where llama.cpp's own top-1 differs from the float64 reference.
    pub llama_vs_f64_flips: usize,
    pub first_position_failures: Vec<String>,
    /// Largest |Δ| against llama.cpp over its top-5 at the first generated positions.
    pub max_llama_delta: f32,
    /// Largest |Δ| against the float64 reference over its top-10, everywhere.
    pub max_f64_delta: f32,
    /// Largest |Δ| against float64 divided by that position's largest |logit|.
    pub max_f64_rel: f32,
}

impl Agreement {
    /// Compare one case's logits (`n_vocab` per position) with the fixture.
    pub fn add(&mut self, case: &Case, logits: &[f32], n_vocab: usize) {
        let rows: Vec<&[f32]> = logits.chunks(n_vocab).collect();
        assert_eq!(rows.len(), case.tokens.len(), "one row per token");
        for (i, row) in rows.iter().enumerate() {
            self.positions += 1;
            let f = &case.f64[i];
            let scale = f.iter().map(|e| e.1.abs()).fold(0f32, f32::max).max(1.0);
            for &(id, l) in f.iter().take(10) {
                let d = (row[id as usize] - l).abs();
                self.max_f64_delta = self.max_f64_delta.max(d);
                self.max_f64_rel = self.max_f64_rel.max(d / scale);
            }
            if f[0].1 - f[1].1 >= NEAR_TIE {
                self.gated += 1;
                let ours = wisp::sampling::argmax(row);
                let l = &case.llama[i];
                // llama.cpp's Vulkan logits carry f16 rounding (1/32 steps near 37): where
                // its own gap is below the bar its top-1 can flip, so it only binds where
                // it is decisive too; the float64 reference binds everywhere.
                let llama_decisive = l[0].1 - l[1].1 >= NEAR_TIE;
                if l[0].0 != f[0].0 {
                    self.llama_vs_f64_flips += 1;
                }
                if ours != f[0].0 || (llama_decisive && ours != l[0].0) {
                    self.top1_mismatches.push(format!(
                        "{:?} position {i}: ours {ours}, float64 {}, llama.cpp {}",
                        case.prompt, f[0].0, case.llama[i][0].0
                    ));
                }
            }
        }
        // The first generated position: llama.cpp's top-5 within our top-10.
        let i = case.n_prompt - 1;
        let ours = wisp::sampling::top_k(rows[i], 10);
        for &(id, l) in case.llama[i].iter().take(5) {
            match ours.iter().find(|e| e.0 == id) {
                Some(&(_, mine)) => {
                    let d = (mine - l).abs();
                    self.max_llama_delta = self.max_llama_delta.max(d);
                    if d > LLAMA_TOLERANCE {
                        self.first_position_failures.push(format!(
                            "{:?}: token {id} ours {mine} llama.cpp {l}",
                            case.prompt
                        ));
                    }
                }
                None => self.first_position_failures.push(format!(
                    "{:?}: llama.cpp's top-5 token {id} not in our top-10",
                    case.prompt
                )),
            }
        }
    }

    /// The bars every backend must meet: enough decisive positions to mean something, the
    /// first generated position against llama.cpp, top-1 agreement where decisive.
    pub fn assert_meets_bars(&self) {
        assert!(
            self.gated >= 16,
            "too few decisive positions to test anything"
        );
        assert!(
            self.first_position_failures.is_empty(),
            "{:#?}",
            self.first_position_failures
        );
        assert!(
            self.top1_mismatches.is_empty(),
            "{:#?}",
            self.top1_mismatches
        );
    }
}
