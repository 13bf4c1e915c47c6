// swift-tools-version:5.9
// Wisp for Swift: the uniffi-generated API (Sources/Wisp/Generated) plus Sources/Wisp/Wisp.swift.
//
// Two ways to get the native library:
// - Apple platforms: `build-xcframework.sh` (macOS) makes WispFFI.xcframework next to this
//   file; the package then uses it as a binary target.
// - Linux and tests: set WISP_LIB_DIR to the directory holding libwisp_ffi.so (as
//   `cargo xtask swift` does); the headers come from Sources/WispFFI.
import Foundation
import PackageDescription

let libDir = ProcessInfo.processInfo.environment["WISP_LIB_DIR"]

let ffiTarget: Target = libDir == nil
    ? .binaryTarget(name: "WispFFI", path: "WispFFI.xcframework")
    : .target(name: "WispFFI", path: "Sources/WispFFI")

let package = Package(
    name: "Wisp",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [.library(name: "Wisp", targets: ["Wisp"])],
    targets: [
        ffiTarget,
        .target(
            name: "Wisp",
            dependencies: ["WispFFI"],
            path: "Sources/Wisp",
            linkerSettings: libDir.map { [.linkedLibrary("wisp_ffi"), .unsafeFlags(["-L", $0])] } ?? []
        ),
        .testTarget(name: "WispTests", dependencies: ["Wisp"], path: "Tests/WispTests"),
    ]
)
