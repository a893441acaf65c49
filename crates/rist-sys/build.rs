//! Finds librist with pkg-config and generates its bindings with bindgen, as a table of
//! functions opened at run time (`Rist`) rather than linked: see src/lib.rs for why.

use std::env;
use std::path::{Path, PathBuf};

const MIN_VERSION: &str = "0.2.7";

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    // APIs newer than Debian bookworm's 0.2.7 are gated behind this cfg.
    println!("cargo:rustc-check-cfg=cfg(rist_0_2_8)");

    // The probe gives headers and the version; `cargo_metadata(false)`: no link flags, since
    // nothing links librist (src/lib.rs opens it).
    let lib = match pkg_config::Config::new()
        .atleast_version(MIN_VERSION)
        .cargo_metadata(false)
        .probe("librist")
    {
        Ok(lib) => lib,
        Err(e) => panic!(
            "\n\nrist-sys needs librist >= {MIN_VERSION}, found through pkg-config module `librist`.\n\
             On Debian/Ubuntu: apt-get install librist-dev pkg-config\n\
             If it is installed elsewhere, point PKG_CONFIG_PATH at its librist.pc.\n\
             pkg-config said: {e}\n"
        ),
    };
    if version_at_least(&lib.version, (0, 2, 8)) {
        println!("cargo:rustc-cfg=rist_0_2_8");
    }
    println!("cargo:rustc-env=RIST_SYS_SONAME={}", soname(&lib));

    let mut builder = bindgen::Builder::default()
        .header("wrapper.h")
        .allowlist_function("rist_.*")
        .allowlist_function("librist_.*")
        .allowlist_type("rist_.*")
        .allowlist_type("librist_.*")
        .allowlist_var("RIST_.*")
        .allowlist_var("LIBRIST_.*")
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .derive_default(true)
        .layout_tests(false)
        // Functions become fields of `Rist`, resolved by dlsym when the library is opened; with
        // require_all a missing symbol fails the open instead of a later call.
        .dynamic_library_name("Rist")
        .dynamic_link_require_all(true)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for path in &lib.include_paths {
        builder = builder.clang_arg(format!("-I{}", path.display()));
    }
    let bindings = builder
        .generate()
        .expect("bindgen failed on librist's headers (is libclang-dev installed?)");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("writing bindings.rs into OUT_DIR");
}

/// The file to open: librist's soname, which its version does not give (0.2.7 is
/// `librist.so.4`). The development link `librist.so`, which the -dev package installs next to
/// the library, points at it.
fn soname(lib: &pkg_config::Library) -> String {
    let libdir = pkg_config::get_variable("librist", "libdir").unwrap_or_default();
    let dirs = lib
        .link_paths
        .iter()
        .map(PathBuf::as_path)
        .chain([Path::new(&libdir)]);
    for dir in dirs {
        let link = dir.join("librist.so");
        println!("cargo:rerun-if-changed={}", link.display());
        if let Ok(target) = std::fs::read_link(&link) {
            if let Some(name) = target.file_name().and_then(|n| n.to_str()) {
                return name.to_owned();
            }
        }
    }
    panic!(
        "\n\nrist-sys: cannot tell librist's soname: no symbolic link librist.so -> librist.so.N \
         in {libdir:?} or pkg-config's library paths {:?}\n",
        lib.link_paths
    )
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
