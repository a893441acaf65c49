//! A peer configuration, parsed by librist's own URL parser. librist's parser uses `strtok`,
//! which is not reentrant, so every call goes through one lock; the result is copied into
//! memory we own, because `rist_peer_create` writes into the configuration it is given.
#![allow(unsafe_code)]

use super::error::{Error, Result};
use crate::common::redact::Secret;
use rist_sys as sys;
use std::ffi::CString;
use std::sync::Mutex;

static PARSE_LOCK: Mutex<()> = Mutex::new(());

pub struct PeerConfig {
    pub(crate) inner: Box<sys::rist_peer_config>,
}

impl PeerConfig {
    /// Parses `url` (already validated by `RistEndpoint::parse`). Errors never include the URL,
    /// which may hold a secret.
    pub fn parse(url: &Secret) -> Result<PeerConfig> {
        let c_url = CString::new(url.expose()).map_err(|_| {
            Error::new("rist_parse_address2", -1).with_detail("the URI contains a NUL byte")
        })?;
        let lib = super::library::started()?;
        let _guard = PARSE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let mut ptr: *mut sys::rist_peer_config = std::ptr::null_mut();
        // SAFETY: c_url is a valid C string for the call; with *ptr null librist allocates a
        // configuration and hands it to us. PARSE_LOCK serialises the strtok inside.
        let rc = unsafe { lib.rist_parse_address2(c_url.as_ptr(), &mut ptr) };
        if rc != 0 || ptr.is_null() {
            if !ptr.is_null() {
                // SAFETY: ptr came from rist_parse_address2 and is freed exactly once.
                unsafe {
                    lib.rist_peer_config_free2(&mut ptr);
                }
            }
            return Err(Error::new("rist_parse_address2", rc.min(-1))
                .with_detail("librist could not read the address"));
        }
        // SAFETY: ptr points at a fully initialised configuration (plain data: numbers and
        // fixed-size char arrays), copied by value before librist's allocation is freed.
        let inner = Box::new(unsafe { *ptr });
        // SAFETY: as above; freed exactly once, and not used after.
        unsafe {
            lib.rist_peer_config_free2(&mut ptr);
        }
        Ok(PeerConfig { inner })
    }

    pub fn virt_dst_port(&self) -> u16 {
        self.inner.virt_dst_port
    }
}

impl Drop for PeerConfig {
    fn drop(&mut self) {
        // The secret lives in a fixed array of the copy: wipe it.
        self.inner.secret.iter_mut().for_each(|b| *b = 0);
        self.inner.srp_password.iter_mut().for_each(|b| *b = 0);
    }
}
