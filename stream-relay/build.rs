//! Release builds lay out the functions that run in use (`hot-symbols.txt`) together at the
//! start of the code, so that the kernel, which maps code 64 kB around each page fault, maps
//! about as much of it as runs (1.9 MB of the binary resident instead of 2.8 MB; the list and
//! how it is made: `scripts/hot-symbols.sh`). This changes the layout only, never what is
//! linked: a name missing from the binary is skipped. Relative relocations are packed as well.

use std::env;
use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=hot-symbols.txt");
    println!("cargo:rerun-if-env-changed=STREAM_RELAY_NO_SYMBOL_ORDER");
    if env::var("PROFILE").as_deref() != Ok("release")
        || env::var_os("STREAM_RELAY_NO_SYMBOL_ORDER").is_some()
        || !default_linker_is_lld()
    {
        return;
    }
    let dir = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let list = Path::new(&dir).join("hot-symbols.txt");
    if !list.exists() {
        return;
    }
    println!(
        "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
        list.display()
    );
    // Names from another toolchain or an older build of our own code are expected.
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    // The dynamic linker reads all of .rela.dyn at load: 4,300 relocations of 24 bytes, 104 kB
    // resident in every process. Packed (DT_RELR), they take 4 kB. glibc runs them from 2.36.
    if glibc_at_least(2, 36) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// The build machine's glibc, which the binary links against and requires at least.
fn glibc_at_least(major: u32, minor: u32) -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    // "glibc 2.36"
    second_word_version(&out.stdout) >= (major, minor)
}

/// (major, minor) of a version printed as the second word, as "glibc 2.36" or "rustc 1.95.0".
fn second_word_version(output: &[u8]) -> (u32, u32) {
    let text = String::from_utf8_lossy(output);
    let mut parts = text
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// `--symbol-ordering-file` is an lld option, which GNU ld rejects. rustc links with its own
/// lld on x86_64 Linux since 1.90, unless a linker or linker flags are set for the build.
fn default_linker_is_lld() -> bool {
    if env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu")
        || env::var_os("RUSTC_LINKER").is_some()
        || env::var("CARGO_ENCODED_RUSTFLAGS").is_ok_and(|flags| flags.contains("link"))
    {
        return false;
    }
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("--version").output() else {
        return false;
    };
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    second_word_version(&out.stdout) >= (1, 90)
}
