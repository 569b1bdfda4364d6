//! Living under a service manager: systemd's notify protocol and watchdog, signals, and a journal
//! kept readable under floods (`log_limit`).
//!
//! The daemon never forks and never daemonises itself: systemd (`Type=notify`) starts it in the
//! foreground, learns it is ready from `READY=1`, and collects stderr into the journal.

pub mod log_limit;
pub mod notify;
pub mod signals;

pub use log_limit::{LogLimit, Verdict};
pub use notify::{Notifier, Watchdog};
pub use signals::{Signal, Signals};
