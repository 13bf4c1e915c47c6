//! CPU dequantization of every supported ggml type.
