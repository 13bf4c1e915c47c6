//! `cargo xtask synth [--family KEY] [--mix KEY] [--layers N | --full-depth] [--out DIR]`:
//! write the synthetic models (default: every (family, mix) pair the tests use, at test
//! depth, into `$WISP_MODELS/synth`) and print each path with its sha256.

use crate::synth;
use std::path::PathBuf;

pub fn main(args: &[String]) -> Result<(), String> {
    let mut family = None;
    let mut mix = None;
    let mut layers: Option<usize> = None;
    let mut full_depth = false;
    let mut out = std::env::var_os("WISP_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target/models"))
        .join("synth");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value"))
        };
        match a.as_str() {
            "--family" => {
                let k = value()?;
                family = Some(synth::family(&k).ok_or_else(|| {
                    let keys: Vec<_> = synth::FAMILIES.iter().map(|f| f.key).collect();
                    format!("unknown family {k:?} (known: {})", keys.join(", "))
                })?);
            }
            "--mix" => {
                let k = value()?;
                mix = Some(synth::mix(&k).ok_or_else(|| {
                    let keys: Vec<_> = synth::MIXES.iter().map(|m| m.key).collect();
                    format!("unknown mix {k:?} (known: {})", keys.join(", "))
                })?);
            }
            "--layers" => {
                layers = Some(
                    value()?
                        .parse()
                        .map_err(|_| "--layers needs a number".to_string())?,
                )
            }
            "--full-depth" => full_depth = true,
            "--out" => out = PathBuf::from(value()?),
            other => return Err(format!("unknown synth option {other:?}")),
        }
    }
    let pairs: Vec<_> = synth::test_pairs()
        .into_iter()
        .filter(|(f, m)| {
            family.is_none_or(|x| x.key == f.key) && mix.is_none_or(|x| x.key == m.key)
        })
        .collect();
    let pairs = if pairs.is_empty() {
        // A pair outside the test set, asked for explicitly.
        match (family, mix) {
            (Some(f), Some(m)) => vec![(f, m)],
            _ => return Err("no such (family, mix) pair".into()),
        }
    } else {
        pairs
    };
    for (f, m) in pairs {
        let n = if full_depth {
            f.n_layer_full
        } else {
            layers.unwrap_or(f.n_layer_test)
        };
        let (path, digest) = synth::ensure(&out, f, m, n)?;
        println!("{digest}  {}", path.display());
    }
    Ok(())
}
