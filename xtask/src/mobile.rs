//! The Swift and Kotlin bindings (bindings/): regenerate them from the built library,
//! fail on drift, run the JVM and XCTest suites, and check the mobile targets build.

use crate::{cargo, models, run, workspace_root};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const KOTLIN_HOME: &str = "/usr/lib/node_modules/kotlin-compiler";
const JNA_JAR: &str = "/usr/share/java/jna.jar";
/// Where `.ci/mobile-toolchains` puts the trixie chroot with Swift 6.0.3.
fn swift_chroot() -> PathBuf {
    std::env::var_os("WISP_SWIFT_CHROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/wisp/swift-trixie")
        })
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Generated file → where it is committed.
const GENERATED: &[(&str, &str)] = &[
    (
        "dev/wisp/wisp_ffi.kt",
        "bindings/kotlin/src/main/kotlin/dev/wisp/wisp_ffi.kt",
    ),
    (
        "Wisp.swift",
        "bindings/swift/Sources/Wisp/Generated/Wisp.swift",
    ),
    (
        "WispFFI.h",
        "bindings/swift/Sources/WispFFI/include/WispFFI.h",
    ),
    (
        "WispFFI.modulemap",
        "bindings/swift/Sources/WispFFI/include/module.modulemap",
    ),
];

/// Build the native library and the CLI the tests compare against; returns the directory
/// holding `libwisp_ffi.so` and `wisp`. The `test` profile (output in target/debug) reuses
/// what `cargo test --workspace` just compiled, and is optimized enough for the GPU tests.
fn build_native() -> Result<PathBuf, String> {
    run(cargo().args([
        "build",
        "--profile",
        "test",
        "-p",
        "wisp-ffi",
        "--features",
        "bindgen",
        "-p",
        "wisp-cli",
    ]))?;
    Ok(target_dir().join("debug"))
}

/// Regenerate the Swift and Kotlin sources from the built library. With `write`, update
/// the committed copies; without, fail if they differ (the bindings drifted).
pub fn bindings(write: bool) -> Result<PathBuf, String> {
    let lib_dir = build_native()?;
    let out = target_dir().join("uniffi-gen");
    let _ = fs::remove_dir_all(&out);
    run(Command::new(lib_dir.join("uniffi-bindgen"))
        .args(["generate", "--language", "kotlin", "--language", "swift"])
        .args(["--no-format", "--out-dir"])
        .arg(&out)
        .arg(lib_dir.join("libwisp_ffi.so")))?;
    let root = workspace_root();
    let mut drift = Vec::new();
    for (generated, committed) in GENERATED {
        let new = fs::read(out.join(generated))
            .map_err(|e| format!("uniffi-bindgen wrote no {generated}: {e}"))?;
        let path = root.join(committed);
        if write {
            fs::create_dir_all(path.parent().unwrap()).map_err(|e| e.to_string())?;
            fs::write(&path, &new).map_err(|e| format!("cannot write {committed}: {e}"))?;
        } else if fs::read(&path).ok().as_deref() != Some(&new[..]) {
            drift.push(*committed);
        }
    }
    if !drift.is_empty() {
        return Err(format!(
            "the generated bindings drifted from the library: {}; run `cargo xtask bindings` and commit",
            drift.join(", ")
        ));
    }
    Ok(lib_dir)
}

fn smollm2() -> Result<PathBuf, String> {
    models::fetch_all()?
        .into_iter()
        .find(|(k, _)| *k == "smollm2")
        .map(|(_, p)| p)
        .ok_or_else(|| "no smollm2 model".into())
}

fn require(path: &str, what: &str) -> Result<(), String> {
    if Path::new(path).exists() {
        Ok(())
    } else {
        Err(format!(
            "{path} is missing: {what} (run .ci/mobile-toolchains)"
        ))
    }
}

/// Compile the Kotlin API, the generated code and the tests with kotlinc, run them on the JVM.
pub fn kotlin() -> Result<(), String> {
    require(JNA_JAR, "Debian libjna-java")?;
    require(KOTLIN_HOME, "npm kotlin-compiler@2.4.20")?;
    let lib_dir = bindings(false)?;
    let model = smollm2()?;
    let root = workspace_root();
    let out = target_dir().join("kotlin");
    fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let jar = out.join("wisp-kotlin-tests.jar");
    let coroutines = format!("{KOTLIN_HOME}/lib/kotlinx-coroutines-core-jvm.jar");
    let kt = root.join("bindings/kotlin/src");
    run(Command::new(format!("{KOTLIN_HOME}/bin/kotlinc"))
        .args(["-Werror", "-cp"])
        .arg(format!("{JNA_JAR}:{coroutines}"))
        .arg(kt.join("main/kotlin"))
        .arg(kt.join("test/kotlin"))
        .arg("-d")
        .arg(&jar))?;
    run(Command::new("java")
        .arg(format!("-Djna.library.path={}", lib_dir.display()))
        .arg("-cp")
        .arg(format!(
            "{}:{JNA_JAR}:{coroutines}:{KOTLIN_HOME}/lib/kotlin-stdlib.jar",
            jar.display()
        ))
        .arg("dev.wisp.WispTestKt")
        // Mesa's Vulkan loader complains on every start without it (.ci/run sets it).
        .env(
            "XDG_RUNTIME_DIR",
            std::env::var_os("XDG_RUNTIME_DIR").unwrap_or_else(|| std::env::temp_dir().into()),
        )
        .env("WISP_MODEL", &model)
        .env("WISP_CLI", lib_dir.join("wisp")))
}

/// `swift test` in the trixie chroot, with the work tree bind-mounted at its own path so
/// every path (library, model, CLI) is the same inside and out.
pub fn swift() -> Result<(), String> {
    let chroot = swift_chroot();
    // usr/bin/swift is an absolute symlink, valid only inside the chroot.
    if fs::symlink_metadata(chroot.join("usr/bin/swift")).is_err() {
        return Err(format!(
            "no Swift in {} (run .ci/mobile-toolchains)",
            chroot.display()
        ));
    }
    let lib_dir = bindings(false)?;
    let model = smollm2()?;
    let root = workspace_root();
    let target = target_dir();
    let mut mounts = Mounts::default();
    mounts.mount(&["-t", "proc", "proc"], &chroot.join("proc"))?;
    for dir in [&root, &target] {
        let inside = chroot.join(dir.strip_prefix("/").unwrap_or(dir));
        if !mounts.is_mounted(&inside) {
            fs::create_dir_all(&inside).map_err(|e| e.to_string())?;
            mounts.mount(&["--bind", &dir.to_string_lossy()], &inside)?;
        }
    }
    let scratch = target.join("swift-build");
    let script = format!(
        "cd {pkg} && XDG_RUNTIME_DIR=/tmp WISP_LIB_DIR={lib} LD_LIBRARY_PATH={lib} \
         WISP_MODEL={model} WISP_CLI={lib}/wisp swift test --scratch-path {scratch}",
        pkg = root.join("bindings/swift").display(),
        lib = lib_dir.display(),
        model = model.display(),
        scratch = scratch.display(),
    );
    run(Command::new("chroot")
        .arg(&chroot)
        .args(["sh", "-c", &script])
        .env("HOME", "/root"))
}

/// Mounts made for one run, undone when dropped (also on failure).
#[derive(Default)]
struct Mounts(Vec<PathBuf>);

impl Mounts {
    fn is_mounted(&self, path: &Path) -> bool {
        Command::new("mountpoint")
            .arg("-q")
            .arg(path)
            .status()
            .is_ok_and(|s| s.success())
    }

    fn mount(&mut self, args: &[&str], at: &Path) -> Result<(), String> {
        if self.is_mounted(at) {
            return Ok(());
        }
        run(Command::new("mount").args(args).arg(at))?;
        self.0.push(at.to_path_buf());
        Ok(())
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        for at in self.0.iter().rev() {
            let _ = Command::new("umount").arg(at).status();
        }
    }
}

/// The mobile targets build (no NDK or Apple SDK here, so no linking): a type check for
/// iOS and a static library for Android. Without the `https` feature, whose ring build
/// script needs the target's C compiler (the NDK's clang or Xcode, present in real builds).
pub fn mobile_targets() -> Result<(), String> {
    // No debug info: these builds only prove the code compiles and links into an archive
    // (with it, the Android archive is ~480 MiB and slower to write).
    let cargo = || {
        let mut c = cargo();
        c.env("CARGO_PROFILE_DEV_DEBUG", "false");
        c
    };
    run(cargo().args([
        "check",
        "-p",
        "wisp-ffi",
        "--lib",
        "--no-default-features",
        "--target",
        "aarch64-apple-ios",
    ]))?;
    run(cargo().args([
        "rustc",
        "-p",
        "wisp-ffi",
        "--lib",
        "--no-default-features",
        "--target",
        "aarch64-linux-android",
        "--crate-type",
        "staticlib",
    ]))?;
    let lib = target_dir().join("aarch64-linux-android/debug/libwisp_ffi.a");
    let size = fs::metadata(&lib)
        .map_err(|e| format!("no {}: {e}", lib.display()))?
        .len();
    // The exported functions must be in the archive for Swift/Kotlin to find them.
    let nm = Command::new("nm")
        .args(["-g", "--defined-only"])
        .arg(&lib)
        .output()
        .map_err(|e| format!("cannot run nm: {e}"))?;
    let exported = String::from_utf8_lossy(&nm.stdout)
        .lines()
        .filter(|l| l.contains(" T uniffi_wisp_ffi_fn_"))
        .count();
    eprintln!(
        "{}: {} MiB, {exported} uniffi functions",
        lib.display(),
        size >> 20
    );
    if exported == 0 {
        return Err(format!("{} exports no uniffi function", lib.display()));
    }
    Ok(())
}
