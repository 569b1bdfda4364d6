//! The shipped unit: `systemd-analyze verify` has nothing to say, and the hardening keeps
//! `systemd-analyze security` at 2.0 or below. (The example configuration is checked by the
//! `config` unit tests and `input::check_config_and_print_default_config`.)

use std::path::{Path, PathBuf};
use std::process::Command;

/// The unit in a directory of its own for `test` (the tests run in parallel).
fn unit_for_test(test: &str) -> (PathBuf, String) {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/edgescribe.service");
    let text = std::fs::read_to_string(shipped).unwrap();
    assert!(
        text.contains("ExecStart=/usr/bin/edgescribe run --config /etc/edgescribe/edgescribe.toml")
    );
    // verify checks that ExecStart is executable: point it at the binary under test.
    let text = text.replace("/usr/bin/edgescribe", env!("CARGO_BIN_EXE_edgescribe"));
    let dir = std::env::temp_dir().join(format!("es-unit-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unit = dir.join("edgescribe.service");
    std::fs::write(&unit, &text).unwrap();
    (unit, text)
}

fn analyze(args: &[&str], unit: &Path) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(args)
        .arg(unit)
        .output()
        .expect("systemd-analyze not installed (Debian package `systemd`)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_unit_verifies_cleanly() {
    let (unit, text) = unit_for_test("verify");
    for key in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "StateDirectory=edgescribe",
        "SupplementaryGroups=audio",
    ] {
        assert!(text.contains(key), "{key} missing");
    }
    let (ok, out) = analyze(&["verify"], &unit);
    assert!(
        ok && out.trim().is_empty(),
        "systemd-analyze verify:\n{out}"
    );
}

#[test]
fn the_unit_is_hardened() {
    let (unit, _) = unit_for_test("security");
    let (ok, out) = analyze(&["security", "--offline=true"], &unit);
    assert!(ok, "{out}");
    let score: f64 = out
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for edgescribe.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no score in:\n{out}"));
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{out}");
}
