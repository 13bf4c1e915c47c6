// SwiftPM builds a C target only if it has a source file; the real code is the Rust
// library libwisp_ffi, linked by the Wisp target (or shipped in WispFFI.xcframework).
