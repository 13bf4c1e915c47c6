//! The GGUF reader on a whole file (its length known), then everything the CPU load path
//! derives from the header: config, tensor table checks, tokenizer, chat template.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wisp::gguf::{GgufError, GgufHeader};

fuzz_target!(|data: &[u8]| {
    match GgufHeader::parse(data, Some(data.len() as u64)) {
        Ok(h) => wisp_fuzz::exercise_header(&h, Some(data.len() as u64)),
        // With the whole file in hand the reader never asks for more.
        Err(GgufError::NeedMore { needed }) => panic!("NeedMore({needed}) on a whole file"),
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
