//! `wisp serve` end to end: a real server process on a free loopback port with SmolLM2 on
//! the CPU engine, driven over raw HTTP. Greedy answers must be exactly what `wisp run
//! --special --temperature 0` prints for the rendered prompt, whole and streamed; bad
//! input must get OpenAI-shaped errors while the server keeps serving; the queue, keys,
//! disconnects and shutdown must behave as documented (crates/cli/src/serve/mod.rs).

mod common;

use common::{rendered_chat, wisp_run, Server, WISP};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::Command;
use std::time::{Duration, Instant};

const SYSTEM: &str = "You are a helpful assistant. Answer in full sentences.";
const USER: &str = "Name three colours of the rainbow and say something about each.";

fn messages() -> Value {
    json!([{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}])
}

fn prompt_ids(text: &str) -> usize {
    let o = Command::new(WISP)
        .args([
            "tokenize",
            &common::model("smollm2"),
            "--special",
            "--json",
            "--text",
            text,
        ])
        .output()
        .unwrap();
    serde_json::from_slice::<Vec<u32>>(&o.stdout).unwrap().len()
}

/// Concatenated text and the last usage of a chat or completion event stream.
fn stream_text(r: &common::Response, chat: bool) -> (String, Option<Value>, Vec<Value>) {
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let events = r.events();
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let mut text = String::new();
    let mut usage = None;
    for c in &chunks {
        let object = if chat {
            "chat.completion.chunk"
        } else {
            "text_completion"
        };
        assert_eq!(c["object"], object, "{c}");
        if let Some(choice) = c["choices"].get(0) {
            let piece = if chat {
                &choice["delta"]["content"]
            } else {
                &choice["text"]
            };
            text += piece.as_str().unwrap_or("");
        }
        if c["usage"].is_object() {
            usage = Some(c["usage"].clone());
        }
    }
    (text, usage, chunks)
}

#[test]
fn greedy_answers_match_wisp_run_whole_and_streamed() {
    let server = Server::start("smollm2", &["--device", "cpu"]);
    let health = server.get("/health");
    assert_eq!(
        (health.status, health.json()["status"].clone()),
        (200, json!("ok"))
    );
    let models = server.get("/v1/models").json();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "SmolLM2-135M-Instruct.Q4_1");
    assert_eq!(models["data"].as_array().unwrap().len(), 1);

    let rendered = rendered_chat("smollm2", &[("system", SYSTEM), ("user", USER)]);
    let n_prompt = prompt_ids(&rendered);
    let expected = wisp_run("smollm2", &rendered, 40, &[]);
    assert!(expected.len() > 20, "a real answer: {expected:?}");

    let request = json!({"model": "SmolLM2-135M-Instruct.Q4_1", "messages": messages(), "temperature": 0, "max_tokens": 40});
    let r = server.post("/v1/chat/completions", &request);
    assert_eq!(r.status, 200, "{}", r.text());
    let whole = r.json();
    assert_eq!(whole["object"], "chat.completion");
    assert!(whole["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert!(whole["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(whole["model"], "SmolLM2-135M-Instruct.Q4_1");
    let choice = &whole["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"].as_str().unwrap(), expected);
    let usage = &whole["usage"];
    let completion = usage["completion_tokens"].as_u64().unwrap();
    assert_eq!(usage["prompt_tokens"], n_prompt);
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        n_prompt as u64 + completion
    );
    match choice["finish_reason"].as_str().unwrap() {
        "length" => assert_eq!(completion, 40),
        "stop" => assert!(completion < 40),
        other => panic!("finish_reason {other}"),
    }

    // Streamed: the same text, usage at the end when asked for.
    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let (text, stream_usage, chunks) =
        stream_text(&server.post("/v1/chat/completions", &streamed), true);
    assert_eq!(text, expected);
    assert_eq!(stream_usage.as_ref(), Some(usage));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let finish = chunks
        .iter()
        .rev()
        .find_map(|c| c["choices"][0]["finish_reason"].as_str());
    assert_eq!(finish, choice["finish_reason"].as_str());
    // Without include_usage there is no usage chunk.
    streamed["stream_options"] = json!({"include_usage": false});
    let (text, no_usage, _) = stream_text(&server.post("/v1/chat/completions", &streamed), true);
    assert_eq!((text.as_str(), no_usage), (expected.as_str(), None));

    // A stop string ends the text just before it.
    let word = expected
        .split_whitespace()
        .nth(4)
        .expect("five words")
        .to_string();
    let cut = &expected[..expected.find(&word).unwrap()];
    let mut stopped = request.clone();
    stopped["stop"] = json!([word, "never appears"]);
    let s = server.post("/v1/chat/completions", &stopped).json();
    assert_eq!(s["choices"][0]["message"]["content"], cut);
    assert_eq!(s["choices"][0]["finish_reason"], "stop");
    stopped["stop"] = json!(word);
    let s = server.post("/v1/chat/completions", &stopped).json();
    assert_eq!(s["choices"][0]["message"]["content"], cut);

    // Content as an array of text parts renders as the joined text.
    let mut parts = request.clone();
    parts["messages"][1]["content"] =
        json!([{"type": "text", "text": &USER[..10]}, {"type": "text", "text": &USER[10..]}]);
    let p = server.post("/v1/chat/completions", &parts).json();
    assert_eq!(
        p["choices"][0]["message"]["content"].as_str().unwrap(),
        expected
    );

    // Raw completions, as `wisp run` (special tokens parsed, BOS as the vocab asks).
    let prompt = "The capital of France is";
    let expected = wisp_run("smollm2", prompt, 12, &[]);
    let c = server
        .post(
            "/v1/completions",
            &json!({"prompt": prompt, "temperature": 0, "max_tokens": 12}),
        )
        .json();
    assert_eq!(c["object"], "text_completion");
    assert!(c["id"].as_str().unwrap().starts_with("cmpl-"));
    assert_eq!(c["choices"][0]["text"].as_str().unwrap(), expected);
    assert_eq!(c["usage"]["prompt_tokens"], prompt_ids(prompt));
    let (text, usage, _) = stream_text(
        &server.post(
            "/v1/completions",
            &json!({"prompt": [prompt], "temperature": 0, "max_tokens": 12, "stream": true, "stream_options": {"include_usage": true}}),
        ),
        false,
    );
    assert_eq!(text, expected);
    assert_eq!(usage.unwrap(), c["usage"]);
    let echoed = server
        .post(
            "/v1/completions",
            &json!({"prompt": prompt, "temperature": 0, "max_tokens": 12, "echo": true}),
        )
        .json();
    assert_eq!(
        echoed["choices"][0]["text"].as_str().unwrap(),
        format!("{prompt}{expected}")
    );

    // Sampling options reach the sampler: a seed reproduces, a ban is honoured.
    let sampled = json!({"prompt": prompt, "temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0,
        "seed": 7, "max_tokens": 16, "presence_penalty": 0.5, "frequency_penalty": 0.5, "repeat_penalty": 1.1});
    let a = server.post("/v1/completions", &sampled).json();
    let b = server.post("/v1/completions", &sampled).json();
    assert_eq!(a["choices"][0]["text"], b["choices"][0]["text"]);
    let greedy_first = server
        .post(
            "/v1/completions",
            &json!({"prompt": prompt, "temperature": 0, "max_tokens": 1}),
        )
        .json()["choices"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    let first_id = {
        let o = Command::new(WISP)
            .args([
                "tokenize",
                &common::model("smollm2"),
                "--no-bos",
                "--json",
                "--text",
                &greedy_first,
            ])
            .output()
            .unwrap();
        serde_json::from_slice::<Vec<u32>>(&o.stdout).unwrap()[0]
    };
    let banned = server
        .post(
            "/v1/completions",
            &json!({"prompt": prompt, "temperature": 0, "max_tokens": 1, "logit_bias": {first_id.to_string(): -100}}),
        )
        .json();
    assert_ne!(banned["choices"][0]["text"].as_str().unwrap(), greedy_first);

    // Every request got one log line with its tokens.
    let log = server.log();
    assert!(log.contains("GET /health 200"), "{log}");
    assert!(
        log.lines()
            .any(|l| l.starts_with("POST /v1/chat/completions 200 tokens=") && l.ends_with(" ms")),
        "{log}"
    );
}

#[test]
fn bad_requests_get_openai_errors_and_the_server_keeps_serving() {
    let server = Server::start("smollm2", &["--device", "cpu", "--ctx-size", "128"]);
    let chat = |body: Value| server.post("/v1/chat/completions", &body);
    let ok = json!({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2});
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };

    let raw = |body: &[u8]| {
        server.request(
            "POST",
            "/v1/chat/completions",
            &[("Content-Type", "application/json")],
            body,
        )
    };
    assert!(raw(b"{\"messages\": [").error(400)["message"]
        .as_str()
        .unwrap()
        .contains("not valid JSON"));
    raw(b"[1, 2]").error(400);
    raw(b"").error(400);
    let e = chat(with("max_tokens", json!("ten"))).error(400);
    assert_eq!(e["param"], "max_tokens");
    assert_eq!(
        chat(with("max_tokens", json!(-3))).error(400)["param"],
        "max_tokens"
    );
    assert_eq!(
        chat(with("max_tokens", json!(0))).error(400)["param"],
        "max_tokens"
    );
    assert_eq!(
        chat(with("temperature", json!("hot"))).error(400)["param"],
        "temperature"
    );
    assert_eq!(
        chat(with("temperature", json!(-1))).error(400)["param"],
        "temperature"
    );
    assert_eq!(chat(with("top_p", json!(1.5))).error(400)["param"], "top_p");
    assert_eq!(chat(with("stop", json!(5))).error(400)["param"], "stop");
    assert_eq!(
        chat(with("stream", json!("yes"))).error(400)["param"],
        "stream"
    );
    assert_eq!(
        chat(with("messages", json!("hi"))).error(400)["param"],
        "messages"
    );
    assert_eq!(
        chat(with("messages", json!([]))).error(400)["param"],
        "messages"
    );
    assert_eq!(
        chat(with("messages", json!([{"role": "user", "content": 5}]))).error(400)["param"],
        "messages[0].content"
    );
    assert_eq!(
        chat(with(
            "messages",
            json!([{"role": "wizard", "content": "x"}])
        ))
        .error(400)["param"],
        "messages[0].role"
    );
    assert_eq!(
        chat(json!({"max_tokens": 3})).error(400)["param"],
        "messages"
    );
    assert_eq!(chat(with("n", json!(2))).error(400)["param"], "n");
    assert_eq!(
        chat(with("logprobs", json!(true))).error(400)["param"],
        "logprobs"
    );
    assert_eq!(
        chat(with("logit_bias", json!({"999999": 5}))).error(400)["param"],
        "logit_bias"
    );

    // Later features are refused, not ignored; an empty tool list is no tools.
    for (k, v) in [
        (
            "tools",
            json!([{"type": "function", "function": {"name": "f", "parameters": {}}}]),
        ),
        ("response_format", json!({"type": "json_object"})),
        (
            "response_format",
            json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}),
        ),
        ("tool_choice", json!("required")),
    ] {
        let e = chat(with(k, v)).error(400);
        assert_eq!(e["param"], k);
        assert!(
            e["message"].as_str().unwrap().contains("not supported yet"),
            "{e}"
        );
    }
    assert_eq!(chat(with("tools", json!([]))).status, 200);
    assert_eq!(
        chat(with("response_format", json!({"type": "text"}))).status,
        200
    );

    assert_eq!(
        chat(with("model", json!("gpt-4o"))).error(404)["code"],
        "model_not_found"
    );
    server.get("/v1/models/gpt-4o").error(404);
    server.get("/v1/nothing").error(404);
    server.request("DELETE", "/v1/models", &[], b"").error(405);
    let e = server
        .post(
            "/v1/embeddings",
            &json!({"input": "hi", "model": "SmolLM2-135M-Instruct.Q4_1"}),
        )
        .error(400);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("not an embedding model"),
        "{e}"
    );

    // A prompt longer than the context is a 400 that says so (context: 128 tokens).
    let long = "word ".repeat(400);
    let e = chat(with("messages", json!([{"role": "user", "content": long}]))).error(400);
    assert_eq!(e["code"], "context_length_exceeded");
    let e = server
        .post("/v1/completions", &json!({"prompt": long}))
        .error(400);
    assert_eq!(
        (e["code"].clone(), e["param"].clone()),
        (json!("context_length_exceeded"), json!("prompt"))
    );
    // max_tokens beyond the context: capped, ends with `length`.
    let capped = chat(with("max_tokens", json!(100_000))).json();
    let used = capped["usage"]["total_tokens"].as_u64().unwrap();
    assert!(used <= 129, "{capped}");

    // Too large a body (2 MiB), not JSON, or from a page on another host.
    let huge = vec![b' '; 2 << 20];
    raw(&huge).error(413);
    server
        .request(
            "POST",
            "/v1/chat/completions",
            &[("Content-Type", "text/plain")],
            ok.to_string().as_bytes(),
        )
        .error(415);
    server
        .request(
            "GET",
            "/v1/models",
            &[("Host", "attacker.example:8080")],
            b"",
        )
        .error(403);

    // Completions' own fields.
    let comp = |body: Value| server.post("/v1/completions", &body);
    assert_eq!(
        comp(json!({"prompt": ["a", "b"]})).error(400)["param"],
        "prompt"
    );
    assert_eq!(
        comp(json!({"prompt": [1, 99999999]})).error(400)["param"],
        "prompt"
    );
    assert_eq!(
        comp(json!({"prompt": {"text": "x"}})).error(400)["param"],
        "prompt"
    );
    assert_eq!(
        comp(json!({"prompt": "x", "suffix": "y"})).error(400)["param"],
        "suffix"
    );
    assert_eq!(
        comp(json!({"prompt": [504, 3458], "max_tokens": 2})).status,
        200
    );

    // No --cors-origin: no CORS headers for anyone.
    let r = server.request(
        "GET",
        "/v1/models",
        &[("Origin", "https://app.example")],
        b"",
    );
    assert_eq!(
        (r.status, r.header("access-control-allow-origin")),
        (200, None)
    );

    // Still serving, and no panic was printed.
    let r = chat(ok.clone());
    assert_eq!(r.status, 200, "{}", r.text());
    let log = server.log();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn api_key_and_host_rules() {
    let refused = Command::new(WISP)
        .args([
            "serve",
            &common::model("smollm2"),
            "--device",
            "cpu",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.starts_with("wisp: ") && err.contains("--api-key"),
        "{err}"
    );

    let server = Server::start(
        "smollm2",
        &[
            "--device",
            "cpu",
            "--api-key",
            "sekrit",
            "--cors-origin",
            "https://app.example",
        ],
    );
    assert_eq!(server.get("/health").status, 200);
    // A page on the allowed origin may call (its preflight needs no key); others get no
    // CORS headers, so their browser keeps the answer from them.
    let preflight = |origin: &str| {
        server.request(
            "OPTIONS",
            "/v1/chat/completions",
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
                (
                    "Access-Control-Request-Headers",
                    "authorization, content-type",
                ),
            ],
            b"",
        )
    };
    let allowed = preflight("https://app.example");
    assert_eq!(allowed.status, 200, "{allowed:?}");
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(
        preflight("https://other.example").header("access-control-allow-origin"),
        None
    );
    let e = server.get("/v1/models").error(401);
    assert_eq!(e["code"], "invalid_api_key");
    server
        .request(
            "GET",
            "/v1/models",
            &[("Authorization", "Bearer wrong")],
            b"",
        )
        .error(401);
    server
        .request(
            "POST",
            "/v1/chat/completions",
            &[("Content-Type", "application/json")],
            br#"{"messages":[{"role":"user","content":"hi"}]}"#,
        )
        .error(401);
    let ok = server.request(
        "GET",
        "/v1/models",
        &[("Authorization", "Bearer sekrit")],
        b"",
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    // With a key, other Host names are fine (it is meant to be reached from elsewhere).
    let ok = server.request(
        "GET",
        "/v1/models",
        &[
            ("Authorization", "Bearer sekrit"),
            ("Host", "wisp.internal:8080"),
        ],
        b"",
    );
    assert_eq!(ok.status, 200);
}

/// A request that generates for a long time: no end-of-text token can be sampled.
fn endless(stream: bool) -> Value {
    let file = wisp::gguf::GgufFile::open(&wisp_e2e::model_path("smollm2")).unwrap();
    let tok = wisp::tokenizer::Tokenizer::from_gguf(&file.header).unwrap();
    let bias: serde_json::Map<String, Value> = (0..tok.vocab_size() as u32)
        .filter(|&id| tok.is_eog(id))
        .map(|id| (id.to_string(), json!(-100)))
        .collect();
    json!({"messages": [{"role": "user", "content": "Tell me a very long story."}],
        "temperature": 0, "max_tokens": 3000, "logit_bias": bias, "stream": stream})
}

#[test]
fn full_queue_gets_429_and_a_client_that_leaves_frees_its_session() {
    let server = Server::start(
        "smollm2",
        &[
            "--device",
            "cpu",
            "--parallel",
            "1",
            "--queue",
            "0",
            "--ctx-size",
            "4096",
        ],
    );
    let short =
        json!({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "temperature": 0});

    for stream in [true, false] {
        let mut s = server.connect();
        let body = endless(stream).to_string();
        common::write_request(
            &mut s,
            server.port,
            "POST",
            "/v1/chat/completions",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
        if stream {
            // Wait until it generates.
            let mut r = BufReader::new(s.try_clone().unwrap());
            let (status, _) = common::read_head(&mut r);
            assert_eq!(status, 200);
            let mut line = String::new();
            while !line.contains("\"content\":\"") || line.contains("\"role\"") {
                line.clear();
                r.read_line(&mut line).unwrap();
            }
        } else {
            std::thread::sleep(Duration::from_millis(1500));
        }
        // The one session is busy and nobody may wait: 429.
        let busy = server.post("/v1/chat/completions", &short);
        let e = busy.error(429);
        assert_eq!(e["code"], "rate_limit_exceeded");
        assert!(busy.header("retry-after").is_some());
        // Hang up: the generation is cancelled and the next request is served at once.
        drop(s);
        let start = Instant::now();
        let r = loop {
            let r = server.post("/v1/chat/completions", &short);
            if r.status != 429 || start.elapsed() > Duration::from_secs(10) {
                break r;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(r.status, 200, "stream={stream}: {}", r.text());
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "took {:?}",
            start.elapsed()
        );
    }
    let log = server.log();
    assert!(log.contains("client gone"), "{log}");
}

#[test]
fn requests_wait_in_the_queue_and_sessions_keep_their_prefix() {
    let server = Server::start(
        "smollm2",
        &["--device", "cpu", "--parallel", "2", "--queue", "4"],
    );
    let expected = server
        .post(
            "/v1/chat/completions",
            &json!({"messages": messages(), "temperature": 0, "max_tokens": 24}),
        )
        .json()["choices"][0]["message"]["content"]
        .clone();
    // Six at once over two sessions: all answered, all the same greedy text.
    let port = server.port;
    let handles: Vec<_> = (0..6)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                let body =
                    json!({"messages": messages(), "temperature": 0, "max_tokens": 24}).to_string();
                common::write_request(
                    &mut s,
                    port,
                    "POST",
                    "/v1/chat/completions",
                    &[("Content-Type", "application/json")],
                    body.as_bytes(),
                );
                common::read_response(&mut s)
            })
        })
        .collect();
    for h in handles {
        let r = h.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["choices"][0]["message"]["content"], expected);
    }
    // The same prompt again: every request after the first two found it cached (all but
    // the last token, which is evaluated for its logits).
    let log = server.log();
    let cached: Vec<usize> = log
        .lines()
        .filter(|l| l.starts_with("POST /v1/chat/completions 200"))
        .map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("cached="))
                .unwrap_or_else(|| panic!("no cached= in {l}"))
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(cached.len(), 7, "{log}");
    assert_eq!(cached[0], 0);
    assert!(
        cached.iter().filter(|&&c| c > 20).count() >= 5,
        "{cached:?}"
    );
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let mut server = Server::start("smollm2", &["--device", "cpu"]);
    assert_eq!(server.get("/health").status, 200);
    let kill = Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = server
        .wait(Duration::from_secs(15))
        .expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}: {}", server.log());
}

#[test]
fn idle_and_half_sent_connections_do_not_block_others() {
    let server = Server::start("smollm2", &["--device", "cpu"]);
    let idle: Vec<_> = (0..100).map(|_| server.connect()).collect();
    let half: Vec<_> = (0..20)
        .map(|_| {
            let mut s = server.connect();
            std::io::Write::write_all(
                &mut s,
                b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 50\r\n",
            )
            .unwrap();
            s
        })
        .collect();
    let start = Instant::now();
    let r = server.post(
        "/v1/completions",
        &json!({"prompt": "Hello", "max_tokens": 4, "temperature": 0}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    drop((idle, half));
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// 200 requests from 8 clients at once over 4 batched sessions and a queue: every one
/// answered, each with its prompt's greedy text (batched decode steps change nothing),
/// and the server's resident memory is flat across the run.
#[test]
fn two_hundred_requests_from_eight_clients_all_answered_with_flat_memory() {
    let server = Server::start(
        "smollm2",
        &[
            "--device",
            "cpu",
            "--parallel",
            "4",
            "--queue",
            "8",
            "--ctx-size",
            "256",
        ],
    );
    let prompts = [
        "The capital of France is",
        "Water boils at",
        "def add(a, b):",
        "A list of fruits: apple,",
    ];
    let body = |p: &str| json!({"prompt": p, "temperature": 0, "max_tokens": 8});
    // Each prompt's answer alone (one request at a time, nothing batched).
    let expected: Vec<Value> = prompts
        .iter()
        .map(|p| server.post("/v1/completions", &body(p)).json()["choices"][0]["text"].clone())
        .collect();
    let port = server.port;
    let round = |requests: usize| {
        let handles: Vec<_> = (0..8)
            .map(|client| {
                let bodies: Vec<(usize, String)> = (0..requests / 8)
                    .map(|r| {
                        let which = (client + r) % prompts.len();
                        (which, body(prompts[which]).to_string())
                    })
                    .collect();
                std::thread::spawn(move || {
                    bodies
                        .into_iter()
                        .map(|(which, body)| {
                            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                            s.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
                            common::write_request(
                                &mut s,
                                port,
                                "POST",
                                "/v1/completions",
                                &[("Content-Type", "application/json")],
                                body.as_bytes(),
                            );
                            (which, common::read_response(&mut s))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut answered = 0;
        for h in handles {
            for (which, r) in h.join().unwrap() {
                assert_eq!(r.status, 200, "{}", r.text());
                let text = &r.json()["choices"][0]["text"];
                assert_eq!(text, &expected[which], "prompt {:?}", prompts[which]);
                answered += 1;
            }
        }
        answered
    };
    // A first round touches every session's cache and the allocator's pools.
    assert_eq!(round(40), 40);
    let before = rss_kib(server.pid());
    assert_eq!(round(200), 200);
    let after = rss_kib(server.pid());
    assert!(
        after as f64 <= before as f64 * 1.10,
        "resident memory grew from {before} KiB to {after} KiB over 200 requests"
    );
    let log = server.log();
    let served = log
        .lines()
        .filter(|l| l.starts_with("POST /v1/completions 200"))
        .count();
    assert_eq!(served, 4 + 40 + 200, "every request logged once");
}
