//! The daemon end to end (`edgescribe run` as a child process): recordings, the ALSA microphone
//! path, real Mosquitto, sd_notify, signals, reloads, MQTT commands, the trained model's words, and
//! the shipped systemd unit. One test binary: linking tract once is what costs.

#[path = "../common/mod.rs"]
mod common;

mod input;
mod service;
mod systemd_unit;
mod trained;
