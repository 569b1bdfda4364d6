//! `edgescribe devices`: the capture devices ALSA knows, with what each offers.

use anyhow::Result;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_: Args) -> Result<()> {
    let devices = crate::audio::alsa::list_devices();
    if devices.is_empty() {
        eprintln!("no capture devices found (is the user in the `audio` group?)");
    }
    for line in devices {
        println!("{line}");
    }
    Ok(())
}
