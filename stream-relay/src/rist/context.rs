//! A librist context (one receiver or one sender) and its peers. The context owns the
//! callback state it registered and frees it only after `rist_destroy` has stopped librist's
//! threads, so no callback can see freed memory.
#![allow(unsafe_code)]

use super::callback::{self, Shared};
use super::config::PeerConfig;
use super::error::{check, Error, Result};
use super::uri::Profile;
use rist_sys as sys;
use std::ffi::{c_void, CString};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Receiver,
    Sender(SenderWake),
}

/// The longest a sender context's protocol thread sleeps between passes (`rist_jitter_max_set`,
/// read once when the thread starts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SenderWake {
    /// 1 ms, for an output with packets to send. Each pass frees at most 9 packets older than
    /// the recovery buffer (`rist_clean_sender_enqueue` in 0.2.7), and `rist_sender_data_write`
    /// only wakes the thread if it is asleep: when we write a batch back to back, the thread
    /// runs about once per batch or per timeout. At librist's 5 ms that frees at most ~1,800
    /// packets/s (~19 Mbps of 1316-byte datagrams); above that the sender queue keeps every
    /// packet it cannot free and RSS grows by the difference (measured: +14 MB/min at 30 Mbps).
    /// At 1 ms it frees up to ~9,000 packets/s (~95 Mbps, twice the default `--max-bitrate`),
    /// for about 1,000 short wake-ups a second. It also sets how often NACKs are grouped and
    /// served, which only gets faster.
    Streaming,
    /// librist's own 5 ms, for an output that has nothing to send: the 1 ms passes cost an
    /// idle output about 1.2 points of a core (docs/notes-rist-sender-wake.md).
    Standby,
}

impl SenderWake {
    fn ms(self) -> i32 {
        match self {
            SenderWake::Streaming => 1,
            SenderWake::Standby => 5,
        }
    }
}

pub struct Context {
    lib: &'static sys::Rist,
    ctx: *mut sys::rist_ctx,
    role: Role,
    shared: Arc<Shared>,
    /// The `Arc::into_raw` pointer librist holds as callback argument; reclaimed in Drop.
    callback_arg: *const Shared,
}

// SAFETY: a context is driven by one route thread at a time (moved, never shared); librist
// itself synchronises between its threads and the API calls we make.
unsafe impl Send for Context {}

fn profile_value(p: Profile) -> sys::rist_profile {
    match p {
        Profile::Simple => sys::RIST_PROFILE_SIMPLE,
        Profile::Main => sys::RIST_PROFILE_MAIN,
    }
}

/// How often librist reports statistics, in ms; the route samples them once a second.
const STATS_INTERVAL_MS: i32 = 1000;

impl Context {
    pub fn new(role: Role, profile: Profile) -> Result<Context> {
        let lib = super::library::started()?;
        let logging = super::log::settings(lib);
        let mut ctx: *mut sys::rist_ctx = std::ptr::null_mut();
        // SAFETY: ctx is an out-pointer; logging is null or the process-wide settings that are
        // never freed.
        let rc = unsafe {
            match role {
                Role::Receiver => {
                    lib.rist_receiver_create(&mut ctx, profile_value(profile), logging)
                }
                Role::Sender(_) => lib.rist_sender_create(
                    &mut ctx,
                    profile_value(profile),
                    lib.rist_flow_id_create(),
                    logging,
                ),
            }
        };
        let function = match role {
            Role::Receiver => "rist_receiver_create",
            Role::Sender(_) => "rist_sender_create",
        };
        if rc != 0 || ctx.is_null() {
            return Err(Error::new(function, rc.min(-1)));
        }
        let shared = Arc::new(Shared::new(lib));
        let callback_arg = Arc::into_raw(shared.clone());
        let context = Context {
            lib,
            ctx,
            role,
            shared,
            callback_arg,
        };
        let arg = callback_arg as *mut c_void;
        // SAFETY: ctx is valid; arg stays valid until Drop, after rist_destroy.
        check("rist_connection_status_callback_set", unsafe {
            lib.rist_connection_status_callback_set(ctx, Some(callback::status), arg)
        })?;
        // SAFETY: as above.
        check("rist_stats_callback_set", unsafe {
            lib.rist_stats_callback_set(ctx, STATS_INTERVAL_MS, Some(callback::stats), arg)
        })?;
        if let Role::Sender(wake) = role {
            // Read by the protocol thread when it starts: must precede rist_start.
            // SAFETY: ctx is a valid sender context that has not been started.
            check("rist_jitter_max_set", unsafe {
                lib.rist_jitter_max_set(ctx, wake.ms())
            })?;
        }
        if role == Role::Receiver {
            // Range NACKs are librist's default and what its tools use; set explicitly so a
            // change of default does not change our behaviour.
            // SAFETY: ctx is a valid receiver context.
            check("rist_receiver_nack_type_set", unsafe {
                lib.rist_receiver_nack_type_set(ctx, sys::RIST_NACK_RANGE)
            })?;
        }
        Ok(context)
    }

    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Creates a peer (binds a listening socket or prepares to call out). `config` is consumed
    /// because librist writes into it.
    pub fn add_peer(&mut self, config: PeerConfig) -> Result<Peer> {
        let mut peer: *mut sys::rist_peer = std::ptr::null_mut();
        // SAFETY: ctx is valid; config points at a configuration we own for the call (librist
        // copies what it keeps); peer is an out-pointer.
        let rc = unsafe {
            self.lib
                .rist_peer_create(self.ctx, &mut peer, &*config.inner)
        };
        if rc != 0 || peer.is_null() {
            return Err(Error::new("rist_peer_create", rc.min(-1)));
        }
        Ok(Peer { ptr: peer })
    }

    /// Turns on SRP (EAP) authentication as a client with these credentials.
    pub fn enable_srp(&mut self, peer: &Peer, username: &str, password: &str) -> Result<()> {
        let user = CString::new(username)
            .map_err(|_| Error::new("rist_enable_eap_srp", -1).with_detail("NUL in username"))?;
        let pass = CString::new(password)
            .map_err(|_| Error::new("rist_enable_eap_srp", -1).with_detail("NUL in password"))?;
        // SAFETY: peer belongs to this live context; the strings are valid for the call and
        // librist copies them; no verifier lookup (client side).
        check("rist_enable_eap_srp", unsafe {
            self.lib.rist_enable_eap_srp(
                peer.ptr,
                user.as_ptr(),
                pass.as_ptr(),
                None,
                std::ptr::null_mut(),
            )
        })?;
        Ok(())
    }

    pub fn start(&mut self) -> Result<()> {
        // SAFETY: ctx is valid and started at most once.
        check("rist_start", unsafe { self.lib.rist_start(self.ctx) })?;
        Ok(())
    }

    /// Waits up to `timeout_ms` for the next block from a receiver.
    pub fn read(&mut self, timeout_ms: i32) -> Result<Option<Block>> {
        debug_assert_eq!(self.role, Role::Receiver);
        let mut block: *mut sys::rist_data_block = std::ptr::null_mut();
        // SAFETY: ctx is a valid, started receiver; block is an out-pointer that librist fills
        // with a block we own until rist_receiver_data_block_free2.
        let rc = unsafe {
            self.lib
                .rist_receiver_data_read2(self.ctx, &mut block, timeout_ms)
        };
        check("rist_receiver_data_read2", rc)?;
        if block.is_null() {
            Ok(None)
        } else {
            Ok(Some(Block {
                lib: self.lib,
                ptr: block,
            }))
        }
    }

    /// Hands one datagram to a sender. `ts_ntp` 0 lets librist stamp it with the current time.
    pub fn write(&mut self, payload: &[u8], ts_ntp: u64, virt_dst_port: u16) -> Result<usize> {
        debug_assert!(matches!(self.role, Role::Sender(_)));
        let block = sys::rist_data_block {
            payload: payload.as_ptr() as *const c_void,
            payload_len: payload.len(),
            ts_ntp,
            virt_src_port: sys::RIST_DEFAULT_VIRT_SRC_PORT as u16,
            virt_dst_port,
            // Receiver flags share bit values with sender flags (DISCONTINUITY = USE_SEQ):
            // always start from zero.
            flags: 0,
            ..Default::default()
        };
        // SAFETY: ctx is a valid, started sender; librist copies the payload before returning.
        let rc = unsafe { self.lib.rist_sender_data_write(self.ctx, &block) };
        check("rist_sender_data_write", rc).map(|n| n as usize)
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: ctx is valid and destroyed once; rist_destroy stops librist's threads, so
        // no callback runs afterwards and the callback argument can be released.
        unsafe {
            self.lib.rist_destroy(self.ctx);
            drop(Arc::from_raw(self.callback_arg));
        }
    }
}

/// A peer of a context. librist owns and frees it with the
/// context (`rist_peer_destroy` on a receiver leaves a dangling pointer in 0.2.7, so we never
/// destroy peers one by one: we rebuild the context).
pub struct Peer {
    ptr: *mut sys::rist_peer,
}

impl Peer {}

// SAFETY: the pointer is only passed back to librist by the thread owning the context.
unsafe impl Send for Peer {}

/// A block read from a receiver; freed on drop.
pub struct Block {
    lib: &'static sys::Rist,
    ptr: *mut sys::rist_data_block,
}

impl Block {
    fn raw(&self) -> &sys::rist_data_block {
        // SAFETY: ptr is a valid block until Drop.
        unsafe { &*self.ptr }
    }

    pub fn payload(&self) -> &[u8] {
        let b = self.raw();
        if b.payload.is_null() || b.payload_len == 0 {
            return &[];
        }
        // SAFETY: librist guarantees payload_len readable bytes at payload while the block
        // lives; the slice borrows self.
        unsafe { std::slice::from_raw_parts(b.payload as *const u8, b.payload_len) }
    }

    pub fn ts_ntp(&self) -> u64 {
        self.raw().ts_ntp
    }

    pub fn flow_id(&self) -> u32 {
        self.raw().flow_id
    }
}

/// What lets a block back a `bytes::Bytes` without a copy: the payload lives in its own
/// allocation that stays put until the block is freed.
impl AsRef<[u8]> for Block {
    fn as_ref(&self) -> &[u8] {
        self.payload()
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: the block came from rist_receiver_data_read2 and is freed exactly once
            // (librist crashes on a null block, hence the check).
            unsafe { self.lib.rist_receiver_data_block_free2(&mut self.ptr) }
        }
    }
}

// SAFETY: a block is plain memory owned by us until freed. It can be freed from any thread and
// after its context is destroyed: rist_receiver_data_block_free2 only drops an atomic reference
// count and frees the block's own allocations (payload, reference, block; `free_data_block` in
// rist-common.c), never touching the context.
unsafe impl Send for Block {}
