//! Secrets (SRT passphrases, RIST secrets, passwords) must never reach a log line, an error
//! message or a metric label. URIs are printed through their redacting `Display`; this module
//! is the last line of defence for text we do not format ourselves (library log messages).

use std::borrow::Cow;
use std::sync::RwLock;

pub const MASK: &str = "***";

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Remembers a secret so `scrub` can blank it wherever it shows up.
pub fn register_secret(secret: &str) {
    if secret.len() < 4 {
        // Too short to scrub without mangling ordinary text; such values are refused anyway.
        return;
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|p| p.into_inner());
    if !secrets.iter().any(|s| s == secret) {
        secrets.push(secret.to_owned());
    }
}

/// Replaces every registered secret in `text` with `***`.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let secrets = SECRETS.read().unwrap_or_else(|p| p.into_inner());
    let mut out = Cow::Borrowed(text);
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), MASK));
        }
    }
    out
}

/// A secret value: its `Debug` and `Display` print `***`, so deriving `Debug` on a struct that
/// holds one cannot leak it. Only `expose` gives the value, for the FFI call that needs it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(MASK)
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(MASK)
    }
}

/// Query keys whose values are secrets, whatever the scheme.
pub fn is_secret_key(key: &str) -> bool {
    matches!(
        key.to_ascii_lowercase().as_str(),
        "passphrase" | "secret" | "password" | "pass" | "srp-password" | "srppassword"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_registered_secrets_only() {
        register_secret("hunter2-very-secret");
        assert_eq!(scrub("key hunter2-very-secret failed"), "key *** failed");
        assert_eq!(scrub("nothing here"), "nothing here");
        assert!(is_secret_key("Passphrase"));
        assert!(!is_secret_key("latency"));
    }
}
