#!/usr/bin/env bash
# Build WispFFI.xcframework (macOS with Xcode only): the Rust library as a static library
# for iOS devices, the iOS simulator (arm64 + x86_64) and macOS, with the generated C
# header and module map. Package.swift then uses it as a binary target.
#
#   rustup target add aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios \
#       aarch64-apple-darwin x86_64-apple-darwin
#   bindings/swift/build-xcframework.sh          # from anywhere in the repo
#
# Not run in CI: this machine has no Apple SDK (CI checks `cargo check --target
# aarch64-apple-ios` instead).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
out="$root/bindings/swift/WispFFI.xcframework"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
build() {
    # staticlib only: a cdylib is neither wanted nor linkable for iOS.
    cargo rustc -p wisp-ffi --lib --release --target "$1" --crate-type staticlib
}
for t in aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin x86_64-apple-darwin; do
    build "$t"
done
lib() { echo "$target_dir/$1/release/libwisp_ffi.a"; }
tmp=$(mktemp -d)
mkdir -p "$tmp/ios-sim" "$tmp/macos" "$tmp/headers"
lipo -create "$(lib aarch64-apple-ios-sim)" "$(lib x86_64-apple-ios)" -output "$tmp/ios-sim/libwisp_ffi.a"
lipo -create "$(lib aarch64-apple-darwin)" "$(lib x86_64-apple-darwin)" -output "$tmp/macos/libwisp_ffi.a"
cp bindings/swift/Sources/WispFFI/include/WispFFI.h bindings/swift/Sources/WispFFI/include/module.modulemap "$tmp/headers/"
rm -rf "$out"
xcodebuild -create-xcframework \
    -library "$(lib aarch64-apple-ios)" -headers "$tmp/headers" \
    -library "$tmp/ios-sim/libwisp_ffi.a" -headers "$tmp/headers" \
    -library "$tmp/macos/libwisp_ffi.a" -headers "$tmp/headers" \
    -output "$out"
rm -rf "$tmp"
echo "built $out"
