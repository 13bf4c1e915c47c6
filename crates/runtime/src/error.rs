//! The crate-wide error type: every failure a caller can meet, each naming the problem.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    Io(String),
    Gguf(crate::gguf::GgufError),
    /// The file is a valid GGUF but describes something Wisp cannot run.
    Unsupported(String),
    /// The file lacks (or has malformed) metadata or tensors the architecture needs.
    InvalidModel(String),
    Tokenizer(String),
    Template(String),
    /// The caller's request is invalid (bad parameter, empty prompt, …).
    InvalidRequest(String),
    /// The request needs more positions than the KV cache holds: `needed` tokens (cached
    /// plus new) against a context of `n_ctx`. Nothing was evaluated; the session is
    /// unchanged. A generation that merely *fills* the context is not an error: it stops
    /// with finish reason `length` and returns its text.
    ContextFull {
        needed: usize,
        n_ctx: usize,
    },
    Cancelled,
    /// The GPU failed: no adapter, a kernel the device rejected, out of memory, device lost.
    /// After a device loss every later call on that device fails fast with this error; a
    /// new [`crate::gpu::GpuContext`] (and the model loaded again) is needed.
    Gpu(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(m) => write!(f, "{m}"),
            Error::Gguf(e) => write!(f, "{e}"),
            Error::Unsupported(m) => write!(f, "unsupported: {m}"),
            Error::InvalidModel(m) => write!(f, "invalid model: {m}"),
            Error::Tokenizer(m) => write!(f, "tokenizer: {m}"),
            Error::Template(m) => write!(f, "chat template: {m}"),
            Error::InvalidRequest(m) => write!(f, "{m}"),
            Error::ContextFull { needed, n_ctx } => write!(
                f,
                "context full: the request needs {needed} tokens but the context holds {n_ctx}; \
                 shorten it or raise the context size"
            ),
            Error::Cancelled => write!(f, "cancelled"),
            Error::Gpu(m) => write!(f, "GPU: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<crate::gguf::GgufError> for Error {
    fn from(e: crate::gguf::GgufError) -> Self {
        Error::Gguf(e)
    }
}
