//! Tokenizer encode and decode on the three test models' vocabularies (SentencePiece
//! and two byte-level BPE pre-tokenizers), on arbitrary text and arbitrary ids.
//! Input: a control byte (model, parse_special, render_special), then the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wisp::tokenizer::StreamDecoder;

fuzz_target!(|input: &[u8]| {
    let Some((&ctl, rest)) = input.split_first() else {
        return;
    };
    let toks = wisp_fuzz::tokenizers();
    // 0: SmolLM2 (BPE), 1: Gemma 3 (SentencePiece), 2: Qwen2.5 (BPE).
    let which = (ctl & 3) as usize % toks.len();
    let tok = &toks[which];
    let parse_special = ctl & 4 != 0;
    let render_special = ctl & 8 != 0;
    let text = String::from_utf8_lossy(rest);
    let n = tok.vocab_size();

    let ids = tok.encode(&text, parse_special);
    assert!(ids.iter().all(|&id| (id as usize) < n), "id out of vocab");
    let prompt = tok.encode_prompt(&text, parse_special);
    assert!(
        prompt.iter().all(|&id| (id as usize) < n),
        "id out of vocab"
    );
    let decoded = tok.decode(&ids, render_special);
    // Plain text through a byte-level BPE comes back byte for byte, but for the bytes
    // the vocabulary has no token for (dropped, as llama.cpp does).
    if !parse_special && which != 1 {
        let missing = &wisp_fuzz::unencodable_bytes()[which];
        let kept: Vec<u8> = text.bytes().filter(|b| !missing.contains(b)).collect();
        assert_eq!(
            decoded,
            String::from_utf8_lossy(&kept),
            "byte-level BPE round trip"
        );
    }
    // Streaming the same ids gives the same text (the stream never strips or cleans).
    if which != 1 {
        let mut stream = StreamDecoder::new(tok, render_special);
        let mut streamed: String = ids.iter().map(|&id| stream.push(id)).collect();
        streamed.push_str(&stream.finish());
        assert_eq!(streamed, decoded, "streamed and whole decode differ");
    }

    // Arbitrary ids, in and out of the vocabulary, whole and streamed piece by piece.
    let raw: Vec<u32> = rest
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()) % (n as u32 + 16))
        .collect();
    let _ = tok.decode(&raw, render_special);
    let mut stream = StreamDecoder::new(tok, render_special);
    for &id in &raw {
        let _ = stream.push(id);
    }
    let _ = stream.finish();
    for &id in &raw {
        let _ = tok.token_bytes(id, render_special);
        let _ = tok.token_text(id);
        let _ = tok.is_eog(id);
        let _ = tok.is_control(id);
    }
});
