//! The commands of `wisp`, each a thin driver over the runtime library.

use crate::load;
use crate::prompt;
use crate::{ModelArgs, SamplingArgs};
use serde_json::{json, Map, Value as Json};
use std::io::{BufRead, IsTerminal, Write};
use wisp::chat::ChatMessage;
use wisp::engine::MemoryPlan;
use wisp::generate::{generate, GenerateOptions};
use wisp::gguf::{Array, Value};
use wisp::gpu::wgpu::Features as wgpu_features;
use wisp::model::{Logits, ModelConfig};
use wisp::sampling::{top_k, Sampler};

fn metadata_json(v: &Value) -> Json {
    match v {
        Value::String(s) if s.len() > 2000 => json!(format!(
            "{}… ({} bytes)",
            &s[..s.floor_char_boundary(200)],
            s.len()
        )),
        Value::String(s) => json!(s),
        Value::Bool(b) => json!(b),
        Value::F32(x) => json!(x),
        Value::F64(x) => json!(x),
        Value::Array(a) if a.len() <= 16 => match a {
            Array::String(v) => json!(v.iter().collect::<Vec<_>>()),
            Array::F32(v) => json!(v),
            Array::Bool(v) => json!(v),
            other => other
                .to_i64_vec()
                .map(|v| json!(v))
                .unwrap_or_else(|| json!(format!("[{} × array]", other.len()))),
        },
        Value::Array(a) => json!(format!("[{} × {}]", a.len(), a.type_name())),
        other => json!(other.as_int().map(|x| x as i64)),
    }
}

pub fn inspect(args: &ModelArgs, as_json: bool) -> Result<(), String> {
    let file = load::open_file(args)?;
    let h = &file.header;
    let mut meta = Map::new();
    for (k, v) in &h.metadata {
        meta.insert(k.clone(), metadata_json(v));
    }
    let mut by_type: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    let tensors: Vec<Json> = h
        .tensors
        .iter()
        .map(|t| {
            let e = by_type.entry(t.ggml_type.name().to_string()).or_default();
            e.0 += 1;
            e.1 += t.n_bytes;
            json!({"name": t.name, "type": t.ggml_type.name(), "dims": t.dims, "offset": t.offset, "bytes": t.n_bytes})
        })
        .collect();
    let weight_bytes: u64 = h.tensors.iter().map(|t| t.n_bytes).sum();
    let config = ModelConfig::from_gguf(h);
    let (arch_json, plan_json) = match &config {
        Ok(c) => {
            let n_ctx = args.ctx_size.unwrap_or(c.default_n_ctx());
            let kv = n_ctx as u64 * c.n_layer as u64 * (c.k_dim() + c.v_dim()) as u64 * 4;
            (
                json!({
                    "arch": c.arch.name(), "n_embd": c.n_embd, "n_layer": c.n_layer, "n_head": c.n_head,
                    "n_head_kv": c.n_head_kv, "head_dim_k": c.head_dim_k, "head_dim_v": c.head_dim_v,
                    "n_ff": c.n_ff, "n_vocab": c.n_vocab, "n_ctx_train": c.n_ctx_train,
                    "rope_base": c.rope_base, "rope_base_swa": c.rope_base_swa, "sliding_window": c.sliding_window,
                }),
                match args.device {
                    crate::Device::Oracle => {
                        json!({"device": "oracle", "n_ctx": n_ctx, "weights_bytes": weight_bytes,
                        "kv_cache_bytes": kv, "kv_cache_type": "f32", "total_bytes": weight_bytes + kv})
                    }
                    // The CPU engine reads the file in place and caches f16 keys and values.
                    crate::Device::Cpu => {
                        let kv = kv / 2;
                        json!({"device": "cpu", "n_ctx": n_ctx, "weights_bytes": weight_bytes,
                        "kv_cache_bytes": kv, "kv_cache_type": "f16", "total_bytes": weight_bytes + kv})
                    }
                    // Planned for the WebGPU default binding size (the floor every device meets).
                    crate::Device::Gpu => match MemoryPlan::new(h, c, n_ctx, true, 128 << 20) {
                        Ok(p) => {
                            json!({"device": "gpu", "n_ctx": n_ctx, "weights_bytes": p.weights_bytes,
                            "kv_cache_bytes": p.kv_cache_bytes, "kv_cache_type": "f16", "scratch_bytes": p.scratch_bytes,
                            "largest_buffer_bytes": p.largest_buffer, "total_bytes": p.total_bytes,
                            "max_storage_binding_assumed": 128u64 << 20})
                        }
                        Err(e) => json!({"device": "gpu", "error": e.to_string()}),
                    },
                },
            )
        }
        Err(e) => (json!({"error": e.to_string()}), Json::Null),
    };
    let types: Map<String, Json> = by_type
        .iter()
        .map(|(k, (n, b))| (k.clone(), json!({"tensors": n, "bytes": b})))
        .collect();
    if as_json {
        let out = json!({
            "file": args.model.display().to_string(), "version": h.version, "alignment": h.alignment,
            "data_offset": h.data_offset, "metadata": meta, "tensor_count": h.tensors.len(),
            "tensors": tensors, "types": types, "architecture": arch_json, "memory_plan": plan_json,
        });
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
        return Ok(());
    }
    println!("file: {}", args.model.display());
    println!(
        "GGUF v{}, {} metadata keys, {} tensors, {:.1} MiB of weights",
        h.version,
        h.metadata.len(),
        h.tensors.len(),
        weight_bytes as f64 / 1048576.0
    );
    println!("\nmetadata:");
    for (k, v) in &meta {
        println!("  {k} = {v}");
    }
    println!("\ntensor types:");
    for (k, (n, b)) in &by_type {
        println!(
            "  {k:<8} {n:>5} tensors {:>10.1} MiB",
            *b as f64 / 1048576.0
        );
    }
    println!("\narchitecture: {arch_json}");
    println!("memory plan: {plan_json}");
    Ok(())
}

pub fn tokenize(
    args: &ModelArgs,
    text: &str,
    as_json: bool,
    no_bos: bool,
    special: bool,
) -> Result<(), String> {
    let file = load::open_file(args)?;
    let tok = load::tokenizer(&file)?;
    let ids = if no_bos {
        tok.encode(text, special)
    } else {
        tok.encode_prompt(text, special)
    };
    if as_json {
        println!("{}", json!(ids));
    } else {
        for id in ids {
            println!(
                "{id:>8} {:?}",
                String::from_utf8_lossy(&tok.token_bytes(id, true))
            );
        }
    }
    Ok(())
}

fn sampler(s: &SamplingArgs) -> Result<Sampler, String> {
    prompt::sampler(s.params())
}

fn stream_out(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    // A closed pipe (e.g. `| head`) ends generation quietly.
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .is_ok()
}

pub fn run(args: &ModelArgs, text: &str, special: bool, s: &SamplingArgs) -> Result<(), String> {
    let mut sampler = sampler(s)?;
    let loaded = load::load(args)?;
    let ids = prompt::raw_tokens(&loaded.tokenizer, text, special);
    let mut session = loaded.session()?;
    let opts = GenerateOptions {
        max_tokens: s.max_tokens,
        stop: s.stop.clone(),
    };
    generate(
        session.as_mut(),
        &loaded.tokenizer,
        &mut sampler,
        &ids,
        &opts,
        &mut stream_out,
    )
    .map_err(|e| e.to_string())?;
    if std::io::stdout().is_terminal() {
        println!();
    }
    Ok(())
}

pub fn chat(args: &ModelArgs, system: Option<&str>, s: &SamplingArgs) -> Result<(), String> {
    let mut sampler = sampler(s)?;
    let loaded = load::load(args)?;
    let format = prompt::ChatFormat::new(&loaded)?;
    let mut session = loaded.session()?;
    let mut messages: Vec<ChatMessage> = Vec::new();
    if let Some(sys) = system {
        messages.push(ChatMessage {
            role: "system".into(),
            content: sys.into(),
        });
    }
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!("chatting with {} (Ctrl-D to quit)", args.model.display());
    }
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        if interactive {
            eprint!("> ");
        }
        let Some(line) = lines.next() else { break };
        let line = line.map_err(|e| format!("cannot read stdin: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        messages.push(ChatMessage {
            role: "user".into(),
            content: line,
        });
        let ids = format
            .tokens(&loaded.tokenizer, &messages)
            .map_err(|e| e.to_string())?;
        let gen_opts = GenerateOptions {
            max_tokens: s.max_tokens,
            stop: s.stop.clone(),
        };
        let reply = generate(
            session.as_mut(),
            &loaded.tokenizer,
            &mut sampler,
            &ids,
            &gen_opts,
            &mut stream_out,
        )
        .map_err(|e| e.to_string())?;
        println!();
        messages.push(ChatMessage {
            role: "assistant".into(),
            content: reply.text.trim().to_string(),
        });
    }
    Ok(())
}

pub fn score(
    args: &ModelArgs,
    text: Option<&str>,
    tokens: Option<Vec<u32>>,
    special: bool,
    top: usize,
    as_json: bool,
) -> Result<(), String> {
    let loaded = load::load(args)?;
    let ids = match (text, tokens) {
        (Some(t), _) => loaded.tokenizer.encode_prompt(t, special),
        (None, Some(ids)) => ids,
        (None, None) => return Err("give --text or --tokens".into()),
    };
    if ids.is_empty() {
        return Err("nothing to score: the text has no tokens".into());
    }
    if ids.len() > loaded.n_ctx {
        return Err(format!(
            "{} tokens exceed the context size {}; raise --ctx-size",
            ids.len(),
            loaded.n_ctx
        ));
    }
    let mut session = loaded.session()?;
    let logits = session
        .forward(&ids, Logits::All)
        .map_err(|e| e.to_string())?;
    let n_vocab = loaded.config.n_vocab;
    let positions: Vec<Json> = logits
        .chunks(n_vocab)
        .map(|row| json!({"top": top_k(row, top).iter().map(|&(id, l)| json!([id, l])).collect::<Vec<_>>()}))
        .collect();
    let out = json!({"tokens": ids, "positions": positions});
    if as_json {
        println!("{out}");
    } else {
        for (i, (id, p)) in ids.iter().zip(&positions).enumerate() {
            println!("{i:>5} {id:>8} {}", p["top"]);
        }
    }
    Ok(())
}

pub fn devices(as_json: bool) -> Result<(), String> {
    let adapters = wisp::gpu::device::list_adapters();
    let list: Vec<Json> = adapters
        .iter()
        .map(|a| {
            let info = a.get_info();
            let limits = a.limits();
            let features = a.features();
            json!({
                "name": info.name, "backend": format!("{:?}", info.backend), "device_type": format!("{:?}", info.device_type),
                "driver": info.driver, "driver_info": info.driver_info,
                "features": {
                    "shader_f16": features.contains(wgpu_features::SHADER_F16),
                    "subgroups": features.contains(wgpu_features::SUBGROUP),
                    "timestamp_query": features.contains(wgpu_features::TIMESTAMP_QUERY),
                },
                "limits": {
                    "max_storage_buffer_binding_size": limits.max_storage_buffer_binding_size,
                    "max_buffer_size": limits.max_buffer_size,
                    "max_storage_buffers_per_shader_stage": limits.max_storage_buffers_per_shader_stage,
                    "max_compute_workgroup_storage_size": limits.max_compute_workgroup_storage_size,
                    "max_compute_invocations_per_workgroup": limits.max_compute_invocations_per_workgroup,
                    "max_compute_workgroups_per_dimension": limits.max_compute_workgroups_per_dimension,
                    "min_storage_buffer_offset_alignment": limits.min_storage_buffer_offset_alignment,
                },
            })
        })
        .collect();
    if as_json {
        println!("{}", json!(list));
    } else if list.is_empty() {
        println!("no GPU adapters found (on Linux without a GPU, install Mesa's lavapipe: mesa-vulkan-drivers)");
    } else {
        for a in &list {
            println!(
                "{} ({}, {}): f16 {}, subgroups {}, max storage binding {} MiB",
                a["name"].as_str().unwrap_or("?"),
                a["backend"].as_str().unwrap_or("?"),
                a["device_type"].as_str().unwrap_or("?"),
                a["features"]["shader_f16"],
                a["features"]["subgroups"],
                a["limits"]["max_storage_buffer_binding_size"]
                    .as_u64()
                    .unwrap_or(0)
                    >> 20
            );
        }
    }
    Ok(())
}
