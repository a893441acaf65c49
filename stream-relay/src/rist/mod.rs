//! Safe wrapper over librist (the `rist-sys` bindings) and the RIST adapter for the relay core.
//! Only `log.rs`, `config.rs`, `context.rs`, `callback.rs` and the version query contain
//! `unsafe`.

mod callback;
mod config;
mod context;
mod error;
mod log;
pub mod relay;
pub mod uri;

pub use error::{Error, Result};

#[allow(unsafe_code)]
mod library {
    use rist_sys as sys;
    use std::ffi::CStr;

    /// The version of the librist that was actually loaded, e.g. "0.2.7".
    pub fn version() -> String {
        // SAFETY: librist_version returns a pointer to a static NUL-terminated string.
        let v = unsafe { CStr::from_ptr(sys::librist_version()) };
        v.to_string_lossy().into_owned()
    }
}

pub use library::version;

/// The oldest librist whose behaviour we rely on (Debian bookworm's).
pub const MIN_VERSION: (u32, u32, u32) = (0, 2, 7);

/// `version()` as numbers, for comparisons; unknown parts are 0.
pub fn version_triple() -> (u32, u32, u32) {
    let v = version();
    let mut parts = v
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}
