//! Finds libsrt with pkg-config and generates its bindings with bindgen, as a table of
//! functions opened at run time (`Srt`) rather than linked: see src/lib.rs for why.

use std::env;
use std::path::PathBuf;

const MIN_VERSION: &str = "1.5.0";

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rustc-check-cfg=cfg(srt_1_5_2)");

    // The probe gives headers and the version; `cargo_metadata(false)`: no link flags, since
    // nothing links libsrt (src/lib.rs opens it).
    let lib = match pkg_config::Config::new()
        .atleast_version(MIN_VERSION)
        .cargo_metadata(false)
        .probe("srt")
    {
        Ok(lib) => lib,
        Err(e) => panic!(
            "\n\nsrt-sys needs libsrt >= {MIN_VERSION}, found through pkg-config module `srt`.\n\
             On Debian/Ubuntu: apt-get install libsrt-openssl-dev pkg-config\n\
             If it is installed elsewhere, point PKG_CONFIG_PATH at its srt.pc.\n\
             pkg-config said: {e}\n"
        ),
    };
    if version_at_least(&lib.version, (1, 5, 2)) {
        println!("cargo:rustc-cfg=srt_1_5_2");
    }
    // libsrt's soname is libsrt.so.MAJOR.MINOR (its CMakeLists: SOVERSION ${SRT_VERSION_MAJOR}.
    // ${SRT_VERSION_MINOR}; 1.5.1 ships libsrt.so.1.5): the ABI of the headers we bind.
    let mut parts = lib.version.split('.');
    let (major, minor) = match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) => (major, minor),
        _ => panic!(
            "\n\nsrt-sys: pkg-config gave libsrt version '{}', expected MAJOR.MINOR.PATCH\n",
            lib.version
        ),
    };
    println!("cargo:rustc-env=SRT_SYS_SONAME=libsrt.so.{major}.{minor}");

    let mut builder = bindgen::Builder::default()
        .header("wrapper.h")
        .allowlist_function("srt_.*")
        .allowlist_type("SRT.*")
        .allowlist_type("srt_.*")
        .allowlist_var("SRT.*")
        .allowlist_var("srt_.*")
        .allowlist_var("LOG_.*")
        // libsrt's two exported data symbols (const tables we do not use): as raw pointers in
        // `Srt` they would make the table neither Send nor Sync, so it could not be shared.
        .blocklist_var("srt_msgctrl_default|srt_rejectreason_msg")
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .derive_default(true)
        .layout_tests(false)
        // Functions become fields of `Srt`, resolved by dlsym when the library is opened; with
        // require_all a missing symbol fails the open instead of a later call.
        .dynamic_library_name("Srt")
        .dynamic_link_require_all(true)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for path in &lib.include_paths {
        builder = builder.clang_arg(format!("-I{}", path.display()));
    }
    let bindings = builder
        .generate()
        .expect("bindgen failed on libsrt's headers (is libclang-dev installed?)");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("writing bindings.rs into OUT_DIR");
}

fn version_at_least(version: &str, min: (u32, u32, u32)) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let v = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    v >= min
}
