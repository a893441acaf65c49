//! Routes libsrt's own log messages into `tracing` (target `srt`), with secrets scrubbed.
#![allow(unsafe_code)]

use crate::common::metrics::CALLBACK_PANICS;
use crate::common::redact;
use srt_sys as sys;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::atomic::Ordering;

// syslog severities, as libsrt's logging API uses them.
const LOG_ERR: c_int = 3;
const LOG_WARNING: c_int = 4;
const LOG_NOTICE: c_int = 5;
const LOG_DEBUG: c_int = 7;

/// Installs the global handler. libsrt calls it from its own threads while holding its logger
/// mutex, so the handler only formats and hands the line to tracing.
pub fn install() {
    super::startup();
    let level = if tracing::enabled!(target: "srt", tracing::Level::DEBUG) {
        LOG_DEBUG
    } else if tracing::enabled!(target: "srt", tracing::Level::INFO) {
        LOG_NOTICE
    } else {
        LOG_WARNING
    };
    let flags = (sys::SRT_LOGF_DISABLE_TIME
        | sys::SRT_LOGF_DISABLE_THREADNAME
        | sys::SRT_LOGF_DISABLE_SEVERITY
        | sys::SRT_LOGF_DISABLE_EOL) as c_int;
    // SAFETY: the handler is a plain function with the exact SRT_LOG_HANDLER_FN signature and
    // needs no opaque data (null); the settings are global and set once at startup.
    unsafe {
        sys::srt_setloghandler(std::ptr::null_mut(), Some(handler));
        sys::srt_setlogflags(flags);
        sys::srt_setloglevel(level);
    }
}

unsafe extern "C" fn handler(
    _opaque: *mut c_void,
    level: c_int,
    _file: *const c_char,
    _line: c_int,
    area: *const c_char,
    message: *const c_char,
) {
    // SAFETY: libsrt passes NUL-terminated strings (or null) valid for the call; they are
    // copied out before returning.
    let copy = |p: *const c_char| unsafe {
        if p.is_null() {
            String::new()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    };
    let area = copy(area);
    let message = copy(message);
    let result = std::panic::catch_unwind(move || emit(level, &area, &message));
    if result.is_err() {
        CALLBACK_PANICS.fetch_add(1, Ordering::Relaxed);
    }
}

fn emit(level: c_int, area: &str, message: &str) {
    let text = message.trim_start_matches(": ").trim_end();
    let text = redact::scrub(text);
    match level {
        l if l <= LOG_ERR => tracing::error!(target: "srt", area, "{text}"),
        LOG_WARNING => tracing::warn!(target: "srt", area, "{text}"),
        LOG_NOTICE => tracing::info!(target: "srt", area, "{text}"),
        _ => tracing::debug!(target: "srt", area, "{text}"),
    }
}
