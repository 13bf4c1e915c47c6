//! Tokenizers built from GGUF metadata: SentencePiece (`llama`) and byte-level BPE (`gpt2`).
