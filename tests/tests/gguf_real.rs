//! Wisp's GGUF reader on the three real models agrees with gguf-py's `GGUFReader`
//! (fixture written by `tests/reference/gguf_tables.py`).

use serde_json::Value as Json;
use wisp::gguf::{GgufFile, GgufHeader, Value};

fn check_value(model: &str, key: &str, got: &Value, want: &Json) -> Result<(), String> {
    let ty = want["type"].as_str().unwrap_or("?");
    if got.type_name() != ty {
        return Err(format!(
            "{model}: {key} is {} (gguf-py: {ty})",
            got.type_name()
        ));
    }
    let same = match got {
        Value::Array(a) => {
            want["elem"] == a.type_name() && want["len"].as_u64() == Some(a.len() as u64)
        }
        Value::String(s) => want["value"] == s.as_str(),
        Value::Bool(b) => want["value"] == *b,
        Value::F32(_) | Value::F64(_) => want["value"].as_f64() == got.as_f64(),
        Value::U64(x) => want["value"].as_u64() == Some(*x),
        Value::I64(x) => want["value"].as_i64() == Some(*x),
        other => want["value"].as_i64().map(i128::from) == other.as_int(),
    };
    if same {
        Ok(())
    } else {
        Err(format!("{model}: {key} = {got:?} (gguf-py: {want})"))
    }
}

#[test]
fn real_headers_match_gguf_py() {
    let path = wisp_e2e::fixtures_dir().join("gguf/tables.json");
    let tables: Json =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("tables.json")).unwrap();
    let mut errors = Vec::new();
    for model in wisp_e2e::MODELS.iter() {
        let want = &tables[model.file];
        assert!(want.is_object(), "{} missing from tables.json", model.file);
        let file = GgufFile::open(&wisp_e2e::model_path(model.key)).expect("model opens");
        let h = &file.header;
        let m = model.file;

        assert_eq!(
            Some(h.version as u64),
            want["version"].as_u64(),
            "{m}: version"
        );
        assert_eq!(
            Some(h.alignment),
            want["alignment"].as_u64(),
            "{m}: alignment"
        );
        assert_eq!(
            Some(h.data_offset),
            want["data_offset"].as_u64(),
            "{m}: data offset"
        );
        assert_eq!(
            Some(h.metadata.len() as u64),
            want["n_kv"].as_u64(),
            "{m}: metadata count"
        );

        let want_meta = want["metadata"].as_object().unwrap();
        for (key, value) in &h.metadata {
            match want_meta.get(key) {
                Some(w) => {
                    if let Err(e) = check_value(m, key, value, w) {
                        errors.push(e);
                    }
                }
                None => errors.push(format!("{m}: {key} unknown to gguf-py")),
            }
        }

        let want_tensors = want["tensors"].as_array().unwrap();
        assert_eq!(h.tensors.len(), want_tensors.len(), "{m}: tensor count");
        for (t, w) in h.tensors.iter().zip(want_tensors) {
            let dims: Vec<u64> = w["dims"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Json::as_u64)
                .collect();
            let ok = w["name"] == t.name.as_str()
                && dims == t.dims
                && w["type"] == t.ggml_type.name()
                && w["offset"].as_u64() == Some(t.offset)
                && w["n_bytes"].as_u64() == Some(t.n_bytes);
            if !ok {
                errors.push(format!("{m}: tensor {t:?} (gguf-py: {w})"));
            }
        }
        assert!(h.data_end() <= file.bytes().len() as u64, "{m}: data end");

        // The header alone, without the file length, gives the same header.
        let prefix = &file.bytes()[..h.header_len as usize];
        let p = GgufHeader::parse(prefix, None).expect("header prefix parses");
        assert_eq!(p.metadata, h.metadata, "{m}: prefix metadata");
        assert_eq!(p.tensors, h.tensors, "{m}: prefix tensors");
        // One byte short of the header asks for more.
        assert!(matches!(
            GgufHeader::parse(&prefix[..prefix.len() - 1], None),
            Err(wisp::gguf::GgufError::NeedMore { .. })
        ));
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}
