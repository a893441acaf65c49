//! Routes librist's log messages into `tracing` (target `rist`), with secrets scrubbed.
#![allow(unsafe_code)]

use crate::common::metrics::CALLBACK_PANICS;
use crate::common::redact;
use rist_sys as sys;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::atomic::Ordering;
use std::sync::OnceLock;

/// The process-wide logging settings every context is created with. librist keeps a pointer to
/// them in each context, so they live as long as the process (allocated once, never freed).
struct Settings(*mut sys::rist_logging_settings);

// SAFETY: librist only reads the settings after creation (level, callback pointer); they are
// written once, here, before any context exists, and never freed.
unsafe impl Send for Settings {}
// SAFETY: as above; concurrent reads of immutable data.
unsafe impl Sync for Settings {}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// The settings to pass to `rist_receiver_create`/`rist_sender_create`. The first call decides
/// the level from the tracing filter (target `rist`) and makes them global too, so that
/// librist's URL parser logs through us instead of printing to stderr.
pub(crate) fn settings(lib: &sys::Rist) -> *mut sys::rist_logging_settings {
    SETTINGS
        .get_or_init(|| {
            // librist's RIST_LOG_SIMULATE (100) injects packet loss: never go beyond DEBUG.
            let level = if tracing::enabled!(target: "rist", tracing::Level::DEBUG) {
                sys::RIST_LOG_DEBUG
            } else if tracing::enabled!(target: "rist", tracing::Level::INFO) {
                sys::RIST_LOG_INFO
            } else {
                sys::RIST_LOG_WARN
            };
            let mut ptr: *mut sys::rist_logging_settings = std::ptr::null_mut();
            // SAFETY: with *ptr null, rist_logging_set allocates the settings and fills them;
            // the callback has the exact signature librist expects and needs no argument.
            let rc = unsafe {
                lib.rist_logging_set(
                    &mut ptr,
                    level,
                    Some(handler),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            };
            if rc == 0 && !ptr.is_null() {
                // SAFETY: ptr points at the settings just allocated, which are never freed.
                unsafe {
                    lib.rist_logging_set_global(ptr);
                }
            }
            Settings(if rc == 0 { ptr } else { std::ptr::null_mut() })
        })
        .0
}

unsafe extern "C" fn handler(
    _arg: *mut c_void,
    level: sys::rist_log_level,
    message: *const c_char,
) -> c_int {
    if message.is_null() {
        return 0;
    }
    // SAFETY: librist passes a NUL-terminated string valid for the duration of the call; it
    // is copied out before returning.
    let message = unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned();
    if std::panic::catch_unwind(move || emit(level, &message)).is_err() {
        CALLBACK_PANICS.fetch_add(1, Ordering::Relaxed);
    }
    0
}

fn emit(level: sys::rist_log_level, message: &str) {
    let text = message.trim();
    let text = text
        .strip_prefix("[ERROR] ")
        .or_else(|| text.strip_prefix("[WARNING] "))
        .or_else(|| text.strip_prefix("[NOTICE] "))
        .or_else(|| text.strip_prefix("[INFO] "))
        .or_else(|| text.strip_prefix("[DEBUG] "))
        .unwrap_or(text);
    let text = redact::scrub(text);
    match level {
        l if l <= sys::RIST_LOG_ERROR => tracing::error!(target: "rist", "{text}"),
        sys::RIST_LOG_WARN => tracing::warn!(target: "rist", "{text}"),
        sys::RIST_LOG_NOTICE | sys::RIST_LOG_INFO => tracing::info!(target: "rist", "{text}"),
        _ => tracing::debug!(target: "rist", "{text}"),
    }
}
