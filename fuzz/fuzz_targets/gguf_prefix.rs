//! The GGUF reader on growing prefixes, as the browser loader drives it
//! (`headerBytesNeeded`): every answer is final or asks for strictly more bytes, and the
//! loop ends with exactly the answer the whole file gives. The first input byte picks
//! the first prefix length and whether the file length is known.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wisp::gguf::{GgufError, GgufHeader};

fn summary(r: &Result<GgufHeader, GgufError>) -> String {
    match r {
        Ok(h) => format!(
            "{} {:?} {:?} {} {}",
            h.version, h.metadata, h.tensors, h.alignment, h.data_offset
        ),
        Err(e) => format!("{e:?}"),
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&ctl, data)) = input.split_first() else {
        return;
    };
    let len = data.len() as u64;
    let known_len = ctl & 0x80 != 0;
    let file_len = known_len.then_some(len);
    let whole = GgufHeader::parse(data, Some(len));
    // The loader's first read: 0..=127 bytes, then it follows the parser's answers.
    let mut have = ((ctl & 0x7f) as usize).min(data.len());
    let got = loop {
        match GgufHeader::parse(&data[..have], file_len) {
            Err(GgufError::NeedMore { needed }) => {
                assert!(needed > have as u64, "NeedMore({needed}) with {have} bytes");
                if known_len {
                    assert!(
                        needed <= len,
                        "NeedMore({needed}) past the file's {len} bytes"
                    );
                }
                if needed > len {
                    // The stream ends first: the loader reports a truncated header.
                    assert!(
                        whole.is_err(),
                        "prefix needs {needed} of a {len}-byte file that parses"
                    );
                    return;
                }
                // Like bindings/js: at least what was asked, at least twice as much.
                have = (needed as usize).max(have * 2).min(data.len());
            }
            r => break r,
        }
    };
    if let Ok(h) = &got {
        wisp_fuzz::exercise_header(h, file_len);
    }
    // Without the length the reader cannot check tensor extents, so a header it accepts
    // may still be refused by the whole-file parse; every other answer must agree.
    if known_len || whole.is_ok() {
        assert_eq!(
            summary(&got),
            summary(&whole),
            "prefix loop and whole-file parse disagree"
        );
    }
});
