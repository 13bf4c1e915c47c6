//! `wisp`: the command line of the Wisp runtime. The contract (commands, flags, JSON
//! shapes) is `shared/CLI.md`; errors are one line on stderr and a non-zero exit.

mod bench;
mod commands;
mod load;
mod prompt;
mod serve;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "wisp",
    version,
    about = "Run small quantized language models (GGUF) locally"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Device {
    /// The WGSL engine on wgpu.
    Gpu,
    /// The CPU engine: quantized SIMD kernels on threads.
    Cpu,
    /// The plain-Rust f32 reference forward pass.
    Oracle,
}

/// How finely the CPU engine quantizes activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CpuPrecision {
    /// Each 8-bit activation block plus an 8-bit block of its residual: float64-level logits.
    Exact,
    /// One 8-bit block per activation block, as llama.cpp's CPU backend: faster prefill.
    Fast,
}

impl Device {
    /// Either of the two engines that run on the CPU.
    pub fn on_cpu(self) -> bool {
        matches!(self, Device::Cpu | Device::Oracle)
    }
}

/// A model file and the flags shared by every command that loads one.
#[derive(Args, Clone, Debug)]
pub struct ModelArgs {
    /// Path of the .gguf file.
    pub model: std::path::PathBuf,
    #[command(flatten)]
    pub flags: LoadFlags,
}

// `args.device` etc. read through to the flags (`bench` takes them without a model).
impl std::ops::Deref for ModelArgs {
    type Target = LoadFlags;
    fn deref(&self) -> &LoadFlags {
        &self.flags
    }
}

impl std::ops::DerefMut for ModelArgs {
    fn deref_mut(&mut self) -> &mut LoadFlags {
        &mut self.flags
    }
}

/// Device and loading flags (the global flags of `shared/CLI.md`).
#[derive(Args, Clone, Debug)]
pub struct LoadFlags {
    /// `gpu` (the WGSL engine on wgpu), `cpu` (the CPU engine: quantized SIMD kernels on
    /// threads) or `oracle` (the plain-Rust f32 reference).
    #[arg(long, value_enum, default_value = "gpu")]
    pub device: Device,
    /// CPU engine threads (default: the machine's cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// CPU engine activation precision.
    #[arg(long, value_enum, default_value = "exact")]
    pub cpu_precision: CpuPrecision,
    /// Request exactly the WebGPU spec default limits instead of the adapter's.
    #[arg(long)]
    pub webgpu_default_limits: bool,
    /// Behave as if the adapter lacked `shader-f16`.
    #[arg(long)]
    pub no_f16: bool,
    /// Context length to allocate the KV cache for (default: min(model's, 4096)).
    #[arg(long)]
    pub ctx_size: Option<usize>,
    /// Refuse the model file unless its sha256 matches.
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
    /// Refuse to load when the memory plan exceeds this many bytes.
    #[arg(long, value_name = "BYTES")]
    pub gpu_memory_budget: Option<u64>,
    /// Open the device with timestamp queries (set by `bench --profile`, not a flag).
    #[arg(skip)]
    pub timestamps: bool,
}

/// Sampling and stopping flags of `run`.
#[derive(Args, Clone, Debug)]
pub struct SamplingArgs {
    /// Stop after this many tokens.
    #[arg(long, short = 'n')]
    pub max_tokens: Option<usize>,
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f32,
    /// 0 disables.
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    #[arg(long, default_value_t = 0.0)]
    pub presence_penalty: f32,
    #[arg(long, default_value_t = 0.0)]
    pub frequency_penalty: f32,
    /// RNG seed (default: random).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop when this text is generated (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
}

impl SamplingArgs {
    /// The sampler settings these flags ask for (a clock seed when none is given).
    pub fn params(&self) -> wisp::sampling::SamplingParams {
        wisp::sampling::SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            seed: self.seed.unwrap_or_else(prompt::random_seed),
            ..Default::default()
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Metadata, tensors, types and the memory plan.
    Inspect {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long)]
        json: bool,
    },
    /// The token ids a raw prompt is fed as.
    Tokenize {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long)]
        text: String,
        #[arg(long)]
        json: bool,
        /// Do not add BOS even where the model asks for it.
        #[arg(long)]
        no_bos: bool,
        /// Treat control-token text in the input as control tokens.
        #[arg(long)]
        special: bool,
    },
    /// Raw completion of a prompt (no chat template), streamed to stdout.
    Run {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long, short)]
        prompt: String,
        /// Treat control-token text in the prompt as control tokens.
        #[arg(long)]
        special: bool,
        #[command(flatten)]
        sampling: SamplingArgs,
    },
    /// Interactive chat with the model's template (one message per line when piped).
    Chat {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long)]
        system: Option<String>,
        #[command(flatten)]
        sampling: SamplingArgs,
    },
    /// Prefill and decode speed: medians over repetitions after a warm-up; or, with
    /// --kernels, the device's roofline and every weight kernel under it.
    Bench {
        /// Path of the .gguf file (not with --kernels).
        #[arg(required_unless_present = "kernels", conflicts_with = "kernels")]
        model: Option<std::path::PathBuf>,
        #[command(flatten)]
        flags: LoadFlags,
        /// Prompt tokens to prefill.
        #[arg(long, default_value_t = 128)]
        pp: usize,
        /// Tokens to generate.
        #[arg(long, default_value_t = 32)]
        tg: usize,
        /// Timed repetitions (after one warm-up).
        #[arg(long, default_value_t = 3)]
        reps: usize,
        #[arg(long)]
        json: bool,
        /// Measure the device instead of a model: streaming-read bandwidth, f32 FMA rate,
        /// and the quantized mat-vec / mat-mul kernels as fractions of them.
        #[arg(long)]
        kernels: bool,
        /// With --kernels: small sizes, short runs, four types (checks, not speed).
        #[arg(long, requires = "kernels")]
        quick: bool,
        /// With --kernels: only these weight types (e.g. Q4_K,Q6_K).
        #[arg(long, value_delimiter = ',', requires = "kernels")]
        types: Vec<String>,
        /// After the benchmark, time every dispatch of one decode token on its own
        /// (timestamp queries) and print the time per kernel.
        #[arg(long, conflicts_with = "kernels")]
        profile: bool,
    },
    /// An OpenAI-compatible HTTP server over the model (/v1/chat/completions,
    /// /v1/completions, /v1/models, /health).
    Serve {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        serve: serve::ServeArgs,
    },
    /// GPU adapters, backends, features and limits.
    Devices {
        #[arg(long)]
        json: bool,
    },
    /// Teacher-forced logits for every position.
    Score {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long, conflicts_with = "tokens", required_unless_present = "tokens")]
        text: Option<String>,
        /// Comma-separated token ids, used as given.
        #[arg(long, value_delimiter = ',')]
        tokens: Option<Vec<u32>>,
        #[arg(long)]
        special: bool,
        #[arg(long, default_value_t = 10)]
        top: usize,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    // Mesa's Vulkan drivers print a warning on every start when this is unset, which
    // would break the one-line error rule; the directory is not otherwise used.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // Usage errors follow the error rule too: one line naming the problem.
            let text = e.to_string();
            let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
            let mut first = lines.next().unwrap_or("invalid arguments").to_string();
            // "the following required arguments were not provided:" names them next.
            if first.ends_with(':') {
                first = format!("{first} {}", lines.next().unwrap_or(""));
            }
            eprintln!(
                "wisp: {} (see wisp --help)",
                first.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Inspect { model, json } => commands::inspect(&model, json),
        Command::Tokenize {
            model,
            text,
            json,
            no_bos,
            special,
        } => commands::tokenize(&model, &text, json, no_bos, special),
        Command::Run {
            model,
            prompt,
            special,
            sampling,
        } => commands::run(&model, &prompt, special, &sampling),
        Command::Chat {
            model,
            system,
            sampling,
        } => commands::chat(&model, system.as_deref(), &sampling),
        Command::Serve { model, serve } => serve::run(&model, &serve),
        Command::Devices { json } => commands::devices(json),
        Command::Bench {
            model,
            flags,
            pp,
            tg,
            reps,
            json,
            kernels,
            quick,
            types,
            profile,
        } => match model {
            Some(model) if !kernels => {
                let flags = LoadFlags {
                    timestamps: profile,
                    ..flags
                };
                bench::model(&ModelArgs { model, flags }, pp, tg, reps, json, profile)
            }
            _ => bench::kernels(&flags, quick, types, json),
        },
        Command::Score {
            model,
            text,
            tokens,
            special,
            top,
            json,
        } => commands::score(&model, text.as_deref(), tokens, special, top, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wisp: {e}");
            ExitCode::FAILURE
        }
    }
}
