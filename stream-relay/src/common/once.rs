//! A value set once by a fallible initialisation (std's `OnceLock::get_or_try_init` is not
//! stable), as opening libsrt or librist: the initialisation runs at most once at a time, and a
//! failure is not remembered, so the next call tries again.

use std::sync::{Mutex, OnceLock};

pub struct OnceTry<T> {
    value: OnceLock<T>,
    /// Serialises first initialisations: two callers racing run it once, not twice.
    initialising: Mutex<()>,
}

impl<T: Copy> OnceTry<T> {
    pub const fn new() -> OnceTry<T> {
        OnceTry {
            value: OnceLock::new(),
            initialising: Mutex::new(()),
        }
    }

    pub fn get(&self) -> Option<T> {
        self.value.get().copied()
    }

    /// The value, or the result of `init` if none is set yet (then kept when it succeeded).
    pub fn get_or_try_init<E>(&self, init: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        if let Some(v) = self.get() {
            return Ok(v);
        }
        let _one_at_a_time = self.initialising.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = self.get() {
            return Ok(v);
        }
        let v = init()?;
        Ok(*self.value.get_or_init(|| v))
    }
}

impl<T: Copy> Default for OnceTry<T> {
    fn default() -> OnceTry<T> {
        OnceTry::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_retried_and_a_success_kept() {
        let cell: OnceTry<u32> = OnceTry::new();
        assert_eq!(cell.get_or_try_init(|| Err::<u32, _>("no")), Err("no"));
        assert_eq!(cell.get(), None);
        assert_eq!(cell.get_or_try_init(|| Ok::<_, ()>(7)), Ok(7));
        assert_eq!(cell.get_or_try_init(|| Ok::<_, ()>(8)), Ok(7));
        assert_eq!(cell.get(), Some(7));
    }
}
