//! CPU dequantization against gguf-py: every type with a CPU dequantizer must reproduce
//! the fixtures written by `tests/reference/gen_dequant_fixtures.py` bit for bit.

use std::path::PathBuf;
use wisp::quant::{dequantize, f32_to_f16, GgmlType, TYPE_TABLE};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/dequant")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run tests/reference/gen_dequant_fixtures.py)",
            path.display()
        )
    })
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(b[i..i + 4].try_into().unwrap())
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Compare bit patterns, so NaNs match only when their bits do.
fn assert_bits_eq(ty: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{ty}: length");
    let bad: Vec<usize> = (0..got.len())
        .filter(|&i| got[i].to_bits() != want[i].to_bits())
        .collect();
    if let Some(&i) = bad.first() {
        panic!(
            "{ty}: {} of {} values differ; first at element {i}: got {} ({:#010x}), want {} ({:#010x})",
            bad.len(),
            got.len(),
            got[i],
            got[i].to_bits(),
            want[i],
            want[i].to_bits()
        );
    }
}

#[test]
fn every_dequantizable_type_matches_gguf_py() {
    let mut checked = Vec::new();
    for info in TYPE_TABLE.iter().filter(|t| t.dequant.is_some()) {
        let ty = GgmlType::from_id(info.id).unwrap();
        assert!(ty.can_dequantize());
        let blob = fixture(&format!("{}.bin", info.name));
        assert_eq!(&blob[..4], b"WDQ1", "{ty}");
        assert_eq!(u32_at(&blob, 4), info.id, "{ty}: type id");
        let n = u32_at(&blob, 8) as usize;
        let n_src = u32_at(&blob, 12) as usize;
        let src = &blob[16..16 + n_src];
        let want = f32s(&blob[16 + n_src..]);
        assert_eq!(want.len(), n, "{ty}: fixture length");

        let mut got = vec![f32::from_bits(0xdead_beef); n];
        dequantize(ty, src, &mut got).unwrap();
        assert_bits_eq(info.name, &got, &want);

        // Dequantizing block by block gives the same values as all at once.
        let per = info.block_size as usize;
        let bytes = info.type_size as usize;
        let mut piecewise = vec![0f32; n];
        for (i, y) in piecewise.chunks_mut(per).enumerate() {
            dequantize(ty, &src[i * bytes..(i + 1) * bytes], y).unwrap();
        }
        assert_bits_eq(info.name, &piecewise, &want);
        checked.push(info.name);
    }
    for required in [
        "F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K",
        "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS",
    ] {
        assert!(checked.contains(&required), "{required} not dequantizable");
    }
}

#[test]
fn f32_to_f16_matches_numpy() {
    let blob = fixture("f32_to_f16.bin");
    assert_eq!(&blob[..4], b"WH16");
    let n = u32_at(&blob, 4) as usize;
    let x = f32s(&blob[8..8 + 4 * n]);
    let want: Vec<u16> = blob[8 + 4 * n..]
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    assert_eq!(want.len(), n);
    for (x, want) in x.iter().zip(want) {
        assert_eq!(
            f32_to_f16(*x),
            want,
            "f32_to_f16({x:e} = {:#010x})",
            x.to_bits()
        );
    }
}

#[test]
fn unsupported_types_are_named() {
    for info in TYPE_TABLE.iter().filter(|t| t.dequant.is_none()) {
        let ty = GgmlType::from_id(info.id).unwrap();
        assert!(!ty.can_dequantize());
        let src = vec![0u8; info.type_size as usize];
        let mut dst = vec![0f32; info.block_size as usize];
        match dequantize(ty, &src, &mut dst) {
            Err(wisp::Error::Unsupported(m)) => assert!(m.contains(info.name), "{m}"),
            other => panic!("{}: {other:?}", info.name),
        }
    }
}
