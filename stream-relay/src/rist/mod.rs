//! Safe wrapper over librist (the `rist-sys` bindings) and the RIST adapter for the relay core.
//! Only `log.rs`, `config.rs`, `context.rs`, `callback.rs` and the `library` module below
//! contain `unsafe`. librist is opened on first use (`library`), not linked.

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
    //! Opening librist. As for libsrt: a `&'static sys::Rist` (librist's function table) only
    //! comes out of `started()`, after the library was opened and found new enough, and every
    //! context, block and callback argument keeps the table it was made with, so no librist
    //! call can be reached without a successful load, and a failed load is an `Err` of the
    //! constructor that tried.
    use super::Error;
    use crate::common::once::OnceTry;
    use rist_sys as sys;
    use std::ffi::CStr;

    /// Set once librist is open; "librist loaded" is logged once.
    static STARTED: OnceTry<&'static sys::Rist> = OnceTry::new();

    /// librist's function table; opens it on the first call (every context does).
    pub(super) fn started() -> Result<&'static sys::Rist, Error> {
        STARTED.get_or_try_init(load)
    }

    fn load() -> Result<&'static sys::Rist, Error> {
        let lib = open()?;
        let version = version_of(lib);
        if triple(&version) < super::MIN_VERSION {
            let (major, minor, patch) = super::MIN_VERSION;
            return Err(Error::new("dlopen", 0).with_detail(format!(
                "{} is librist {version}, older than {major}.{minor}.{patch}",
                sys::LIBRARY_NAME
            )));
        }
        tracing::info!(librist = %version, library = sys::LIBRARY_NAME, "librist loaded");
        Ok(lib)
    }

    /// Opens librist (see `started`); for `main`, to load it at startup when the
    /// configuration already uses RIST.
    pub fn startup() -> Result<(), Error> {
        started().map(drop)
    }

    fn open() -> Result<&'static sys::Rist, Error> {
        sys::library().map_err(|e| Error::new("dlopen", 0).with_detail(e))
    }

    /// The version of the librist found at run time, opening it if needed: for `--version`.
    pub fn version() -> Result<String, Error> {
        open().map(version_of)
    }

    /// The version of the loaded librist, if it is loaded.
    pub fn loaded_version() -> Option<String> {
        STARTED.get().map(version_of)
    }

    fn version_of(lib: &sys::Rist) -> String {
        // SAFETY: librist_version returns a pointer to a static NUL-terminated string.
        let v = unsafe { CStr::from_ptr(lib.librist_version()) };
        v.to_string_lossy().into_owned()
    }

    /// "0.2.7" as numbers, for comparisons; unknown parts are 0.
    pub(super) fn triple(version: &str) -> (u32, u32, u32) {
        let mut parts = version
            .split(|c: char| !c.is_ascii_digit())
            .filter(|p| !p.is_empty())
            .map(|p| p.parse().unwrap_or(0));
        (
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
        )
    }
}

pub use library::{loaded_version, startup, version};

/// The oldest librist whose behaviour we rely on (Debian bookworm's).
pub const MIN_VERSION: (u32, u32, u32) = (0, 2, 7);
