//! When the process gives freed memory back to the system: hooks the binary's allocator installs.
//!
//! The allocator is the binary's choice (`src/alloc.rs`: jemalloc, with decay times tuned for a
//! model load and for inference), not the library's: tests and other users of the library keep the
//! system allocator, where these calls do nothing.

use std::sync::OnceLock;

/// What the library tells the allocator about the phase it is in.
pub trait MemoryHooks: Send + Sync {
    /// A model is about to load: freed pages may be reused for a short while only.
    fn loading(&self);
    /// The model has loaded: give its freed unpacked weights back, then keep freed pages longer.
    fn inference(&self);
    /// The recogniser went idle: give a run's freed activations back now. Returns whether it did.
    fn release_freed(&self) -> bool;
}

static HOOKS: OnceLock<&'static dyn MemoryHooks> = OnceLock::new();

/// Installs the process's hooks; the first call wins (returns false for a later one).
pub fn install(hooks: &'static dyn MemoryHooks) -> bool {
    HOOKS.set(hooks).is_ok()
}

pub fn loading() {
    if let Some(h) = HOOKS.get() {
        h.loading();
    }
}

pub fn inference() {
    if let Some(h) = HOOKS.get() {
        h.inference();
    }
}

/// Returns freed memory to the system now, where the allocator can; false where it cannot (or no
/// hooks are installed): the memory then goes back on the allocator's own schedule.
pub fn release_freed() -> bool {
    HOOKS.get().is_some_and(|h| h.release_freed())
}
