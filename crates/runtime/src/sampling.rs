//! Choosing the next token: greedy, temperature, top-k, top-p, min-p, repetition /
//! presence / frequency penalties, with a seeded RNG (same seed → same text).
//!
//! The chain and its defaults follow llama.cpp's common sampler: penalties → top-k →
//! top-p → min-p → temperature → draw. Top-p and min-p see the logits before temperature,
//! as there.

use crate::Error;

/// Sampling parameters. `Default` gives llama.cpp's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 (or below): greedy.
    pub temperature: f32,
    /// 0: off.
    pub top_k: usize,
    /// 1.0: off.
    pub top_p: f32,
    /// 0.0: off.
    pub min_p: f32,
    /// 1.0: off. Divides positive logits (multiplies negative ones) of recent tokens.
    pub repeat_penalty: f32,
    /// How many recent tokens the penalties look at.
    pub repeat_last_n: usize,
    /// Subtracted once from the logit of every recent token.
    pub presence_penalty: f32,
    /// Subtracted per occurrence of each recent token.
    pub frequency_penalty: f32,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            seed: 0x5eed,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding with no penalties.
    pub fn greedy() -> Self {
        SamplingParams {
            temperature: 0.0,
            ..Default::default()
        }
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0
    }

    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::InvalidRequest(m));
        if !self.temperature.is_finite() {
            return bad(format!(
                "temperature must be finite, got {}",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad(format!("min_p must be in [0, 1], got {}", self.min_p));
        }
        if !(self.repeat_penalty > 0.0 && self.repeat_penalty.is_finite()) {
            return bad(format!(
                "repeat_penalty must be positive, got {}",
                self.repeat_penalty
            ));
        }
        if !self.presence_penalty.is_finite() || !self.frequency_penalty.is_finite() {
            return bad("presence and frequency penalties must be finite".into());
        }
        Ok(())
    }

    fn has_penalties(&self) -> bool {
        self.repeat_last_n > 0
            && (self.repeat_penalty != 1.0
                || self.presence_penalty != 0.0
                || self.frequency_penalty != 0.0)
    }
}

/// A small, fast, seedable generator (SplitMix64), so runs are reproducible everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Index of the largest logit (the first one on ties, as llama.cpp).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// The `k` largest logits as (id, logit), sorted descending (ties: lower id first).
pub fn top_k(logits: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut c: Vec<(u32, f32)> = logits
        .iter()
        .enumerate()
        .map(|(i, &v)| (i as u32, v))
        .collect();
    let k = k.min(c.len());
    let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if k < c.len() && k > 0 {
        c.select_nth_unstable_by(k - 1, order);
        c.truncate(k);
    }
    c.sort_by(order);
    c.truncate(k);
    c
}

/// Picks tokens according to [`SamplingParams`].
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng: Rng,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Result<Sampler, Error> {
        params.validate()?;
        let rng = Rng::new(params.seed);
        Ok(Sampler { params, rng })
    }

    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Apply the repetition / presence / frequency penalties for `history` to `logits`.
    pub fn apply_penalties(&self, logits: &mut [f32], history: &[u32]) {
        let p = &self.params;
        if !p.has_penalties() {
            return;
        }
        let recent = &history[history.len().saturating_sub(p.repeat_last_n)..];
        let mut counts: Vec<(u32, u32)> = Vec::new();
        for &t in recent {
            match counts.iter_mut().find(|(id, _)| *id == t) {
                Some((_, c)) => *c += 1,
                None => counts.push((t, 1)),
            }
        }
        for (id, count) in counts {
            let Some(l) = logits.get_mut(id as usize) else {
                continue;
            };
            if *l > 0.0 {
                *l /= p.repeat_penalty;
            } else {
                *l *= p.repeat_penalty;
            }
            *l -= count as f32 * p.frequency_penalty + p.presence_penalty;
        }
    }

    /// Choose the next token from `logits`, given the tokens so far. No logits (an empty
    /// vocabulary) is `Error::InvalidRequest`.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> Result<u32, Error> {
        if logits.is_empty() {
            return Err(nothing_to_sample());
        }
        let mut logits = logits.to_vec();
        self.apply_penalties(&mut logits, history);
        if self.params.is_greedy() {
            return Ok(argmax(&logits));
        }
        // Candidates sorted descending; top-k bounds the work on big vocabularies.
        let k = if self.params.top_k == 0 {
            logits.len()
        } else {
            self.params.top_k
        };
        Ok(self.draw(top_k(&logits, k)))
    }

    /// Choose the next token from the largest logits only (id, logit), as read back from
    /// a GPU top-k. Exact whenever the penalties only lower logits and the list holds at
    /// least `top_k` candidates beyond the penalised ones. No candidates is
    /// `Error::InvalidRequest`.
    pub fn sample_candidates(
        &mut self,
        mut cand: Vec<(u32, f32)>,
        history: &[u32],
    ) -> Result<u32, Error> {
        if cand.is_empty() {
            return Err(nothing_to_sample());
        }
        // Penalties index logits by token id: run them over the candidates' positions.
        let window = &history[history.len().saturating_sub(self.params.repeat_last_n)..];
        let local: Vec<u32> = window
            .iter()
            .filter_map(|t| cand.iter().position(|c| c.0 == *t).map(|i| i as u32))
            .collect();
        let mut logits: Vec<f32> = cand.iter().map(|c| c.1).collect();
        self.apply_penalties(&mut logits, &local);
        for (c, l) in cand.iter_mut().zip(&logits) {
            c.1 = *l;
        }
        let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        cand.sort_by(order);
        if self.params.is_greedy() {
            return Ok(cand[0].0);
        }
        if self.params.top_k > 0 {
            cand.truncate(self.params.top_k);
        }
        Ok(self.draw(cand))
    }

    /// Top-p, min-p, temperature and the draw over candidates sorted descending.
    fn draw(&mut self, mut cand: Vec<(u32, f32)>) -> u32 {
        let p = self.params.clone();
        if p.top_p < 1.0 {
            let probs = softmax_of(&cand, 1.0);
            let mut cum = 0.0;
            let mut keep = cand.len();
            for (i, pr) in probs.iter().enumerate() {
                cum += pr;
                if cum >= p.top_p as f64 {
                    keep = i + 1;
                    break;
                }
            }
            cand.truncate(keep.max(1));
        }
        if p.min_p > 0.0 {
            let threshold = cand[0].1 + p.min_p.ln();
            let keep = cand.iter().take_while(|c| c.1 >= threshold).count();
            cand.truncate(keep.max(1));
        }
        let probs = softmax_of(&cand, p.temperature);
        let mut r = self.rng.next_f64();
        for (c, pr) in cand.iter().zip(&probs) {
            if r < *pr {
                return c.0;
            }
            r -= pr;
        }
        cand.last().expect("at least one candidate").0
    }
}

fn nothing_to_sample() -> Error {
    Error::InvalidRequest("no logits to sample from (empty vocabulary)".into())
}

/// Probabilities of sorted candidates at temperature `temp`, in f64.
fn softmax_of(cand: &[(u32, f32)], temp: f32) -> Vec<f64> {
    let max = cand[0].1 as f64;
    let e: Vec<f64> = cand
        .iter()
        .map(|c| ((c.1 as f64 - max) / temp as f64).exp())
        .collect();
    let sum: f64 = e.iter().sum();
    e.into_iter().map(|x| x / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        vec![1.0, 3.0, 2.5, -1.0, 0.5, 3.0]
    }

    #[test]
    fn nothing_to_sample_is_an_error() {
        for params in [SamplingParams::greedy(), SamplingParams::default()] {
            let mut s = Sampler::new(params).unwrap();
            assert!(matches!(
                s.sample(&[], &[1, 2]),
                Err(Error::InvalidRequest(_))
            ));
            assert!(matches!(
                s.sample_candidates(Vec::new(), &[1]),
                Err(Error::InvalidRequest(_))
            ));
        }
    }

    #[test]
    fn greedy_picks_first_max() {
        let mut s = Sampler::new(SamplingParams::greedy()).unwrap();
        assert_eq!(s.sample(&logits(), &[]).unwrap(), 1);
    }

    #[test]
    fn top_k_sorted_with_stable_ties() {
        assert_eq!(top_k(&logits(), 3), vec![(1, 3.0), (5, 3.0), (2, 2.5)]);
        assert_eq!(top_k(&logits(), 100).len(), 6);
    }

    #[test]
    fn same_seed_same_tokens_and_restriction_holds() {
        let params = SamplingParams {
            temperature: 1.5,
            top_k: 3,
            top_p: 1.0,
            min_p: 0.0,
            ..Default::default()
        };
        let run = |seed| {
            let mut s = Sampler::new(SamplingParams {
                seed,
                ..params.clone()
            })
            .unwrap();
            (0..200)
                .map(|_| s.sample(&logits(), &[]).unwrap())
                .collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        assert_ne!(a, run(8));
        assert!(a.iter().all(|t| [1, 2, 5].contains(t)), "top-k 3 only");
        assert!(
            [1, 2, 5].iter().all(|t| a.contains(t)),
            "all of top-k drawn at temp 1.5"
        );
    }

    #[test]
    fn top_p_and_min_p_cut_the_tail() {
        let mut s = Sampler::new(SamplingParams {
            top_k: 0,
            top_p: 0.5,
            min_p: 0.0,
            ..Default::default()
        })
        .unwrap();
        assert!((0..100).all(|_| [1, 5].contains(&s.sample(&logits(), &[]).unwrap())));
        let mut s = Sampler::new(SamplingParams {
            top_k: 0,
            top_p: 1.0,
            min_p: 0.5,
            ..Default::default()
        })
        .unwrap();
        // exp(2.5 - 3) = 0.61 ≥ 0.5 keeps id 2; exp(1 - 3) = 0.14 drops id 0.
        let drawn: Vec<u32> = (0..300)
            .map(|_| s.sample(&logits(), &[]).unwrap())
            .collect();
        assert!(drawn.iter().all(|t| [1, 2, 5].contains(t)));
        assert!(drawn.contains(&2));
    }

    #[test]
    fn penalties_follow_llama_cpp_rules() {
        let s = Sampler::new(SamplingParams {
            repeat_penalty: 2.0,
            presence_penalty: 0.5,
            frequency_penalty: 0.25,
            ..Default::default()
        })
        .unwrap();
        let mut l = logits();
        s.apply_penalties(&mut l, &[1, 1, 3]);
        assert_eq!(l[1], 3.0 / 2.0 - 2.0 * 0.25 - 0.5);
        assert_eq!(l[3], -2.0 - 0.25 - 0.5); // -1 × 2, then the penalties
        assert_eq!(l[0], 1.0);
    }

    #[test]
    fn bad_params_are_refused() {
        for p in [
            SamplingParams {
                temperature: f32::NAN,
                ..Default::default()
            },
            SamplingParams {
                top_p: 0.0,
                ..Default::default()
            },
            SamplingParams {
                min_p: 1.5,
                ..Default::default()
            },
            SamplingParams {
                repeat_penalty: 0.0,
                ..Default::default()
            },
        ] {
            assert!(matches!(Sampler::new(p), Err(Error::InvalidRequest(_))));
        }
    }
}
