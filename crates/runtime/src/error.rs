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
    /// The caller's request is invalid (bad parameter, context full, …).
    InvalidRequest(String),
    Cancelled,
    /// The GPU failed: no adapter, a kernel the device rejected, out of memory, device lost.
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
