//! The daemon end to end (`edgescribe run` as a child process): recordings, the ALSA microphone
//! path, real Mosquitto, sd_notify, signals, reloads, MQTT commands, the trained model's words, and
//! the shipped systemd unit; `edgescribe listen` (capture → VAD); and real ALSA capture in this
//! process from `type file` PCMs (`alsa_file_pcm`); the fuzzers' corpus replayed (`fuzz_corpus`). One test binary: linking tract once is what costs.
//!
//! `alsa_file_pcm` sets `ALSA_CONFIG_PATH` for this whole process, once, before any of its tests
//! opens a device. It is the only module that opens ALSA devices in this process; the daemons the
//! other modules start inherit the variable but never read it, or are given their own
//! `ALSA_CONFIG_PATH` (`service`, `trained`), which replaces it.

#[path = "../common/mod.rs"]
mod common;

mod alsa_file_pcm;
mod decoder;
mod fuzz_corpus;
mod hostile;
mod input;
mod listen;
mod service;
mod systemd_unit;
mod trained;
