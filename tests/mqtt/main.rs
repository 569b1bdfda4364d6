//! The MQTT node (`edgescribe::mqtt`) against a real Mosquitto and its embedded broker: delivery
//! through broker outages (`delivery`), the embedded broker (`embedded`), Home Assistant discovery,
//! commands and Hermes (`home_assistant`), the broker's and the node's packet limits and retained
//! commands (`limits`), TLS and passwords (`tls`), and a property test of the
//! command parser (`fuzz`). One test binary: linking tract once is what costs.
//!
//! Not here: `tests/mqtt_crash.rs` re-executes itself as the node to kill, so it needs its own `main`
//! (`harness = false`).

#[path = "../common/mod.rs"]
mod common;

mod delivery;
mod embedded;
mod fuzz;
mod home_assistant;
mod limits;
mod tls;
