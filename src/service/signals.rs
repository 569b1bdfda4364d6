//! SIGTERM, SIGINT and SIGHUP, delivered as values to the daemon's control loop.
//!
//! signal-hook's self-pipe runs the async-signal-unsafe part on an ordinary thread (`signals`), so
//! nothing but a write happens inside the handler.

use std::thread::JoinHandle;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals as HookSignals};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM (systemd stop) or SIGINT (Ctrl-C): finish what is in flight and exit.
    Stop,
    /// SIGHUP (`systemctl reload`): read the configuration again.
    Reload,
}

pub struct Signals {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl Signals {
    /// Installs the handlers and calls `deliver` on the `signals` thread for each signal.
    pub fn spawn(deliver: impl Fn(Signal) + Send + 'static) -> std::io::Result<Signals> {
        let mut signals = HookSignals::new([SIGTERM, SIGINT, SIGHUP])?;
        let handle = signals.handle();
        let thread = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    let what = if sig == SIGHUP {
                        Signal::Reload
                    } else {
                        Signal::Stop
                    };
                    deliver(what);
                }
            })?;
        Ok(Signals {
            handle,
            thread: Some(thread),
        })
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
