use super::*;

/// `#key = value` (no space after `#`) is an option; `# text` is prose.
fn option_lines(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            l.strip_prefix('#')
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_lowercase()))
        })
        .map(|(i, _)| i)
        .collect()
}

fn uncomment(text: &str, which: &[usize]) -> String {
    text.lines()
        .enumerate()
        .map(|(i, l)| if which.contains(&i) { &l[1..] } else { l })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_shipped_example_parses_and_is_the_default() {
    let parsed = Config::parse(EXAMPLE).unwrap();
    assert_eq!(parsed, Config::default());
}

#[test]
fn the_example_with_every_option_uncommented_parses() {
    let lines = option_lines(EXAMPLE);
    assert!(lines.len() > 50, "only {} options found", lines.len());
    let all = uncomment(EXAMPLE, &lines);
    let config: Config = toml::from_str(&all).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.languages, ["eng", "fra"]);
    assert_eq!(
        config.mqtt.broker.as_deref(),
        Some("mqtt://homeassistant.local:1883")
    );
}

/// Each option alone: it must parse, and it must show the code's default unless it is one of the
/// options that have no default (shown with an example value). A default changed in the code but
/// not in the example fails here.
#[test]
fn every_documented_default_is_the_real_default() {
    let examples = [
        "languages",
        "model.dir",
        "adapters.cache_dir",
        "mqtt.broker",
        "mqtt.device_id",
        "mqtt.client_id",
        "mqtt.ca_file",
        "mqtt.cert_file",
        "mqtt.key_file",
        "mqtt.username",
        "mqtt.password_file",
        "mqtt.password_env",
        "mqtt.spool_dir",
        "record.dir",
        "wyoming.listen",
        "decoder.per_language",
    ];
    let mut seen = Vec::new();
    for line in option_lines(EXAMPLE) {
        let text = uncomment(EXAMPLE, &[line]);
        let key = locate::position(&text, text.lines().take(line).map(|l| l.len() + 1).sum())
            .key
            .unwrap();
        let config: Config = toml::from_str(&text).unwrap_or_else(|e| panic!("{key}: {e}"));
        let is_default = config == Config::default();
        let is_example = examples.contains(&key.as_str());
        assert!(
            is_default != is_example,
            "{key}: {}",
            if is_example {
                "listed as an example but shows the default"
            } else {
                "the example shows a value that is not the default"
            }
        );
        seen.push(key);
    }
    for key in examples {
        assert!(seen.iter().any(|k| k == key), "{key} not in the example");
    }
}

#[test]
fn parse_errors_name_the_line_and_key() {
    let e = Config::parse("[mqtt]\nprefix = \"x\"\nbrokr = \"mqtt://b\"\n").unwrap_err();
    assert_eq!(e.line, Some(3), "{e}");
    assert_eq!(e.key.as_deref(), Some("mqtt.brokr"), "{e}");
    assert!(e.reason.contains("unknown field"), "{e}");

    let e = Config::parse("[vad]\nhangover_ms = \"long\"\n").unwrap_err();
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(2), Some("vad.hangover_ms")),
        "{e}"
    );

    let e = Config::parse("languages = [\"eng\"\n").unwrap_err();
    assert_eq!(e.line, Some(1), "{e}");
}

#[test]
fn validation_errors_name_the_key_and_its_line() {
    let check = |text: &str, key: &str, line: Option<usize>| {
        let e = Config::parse(text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some(key), "{e}");
        assert_eq!(e.line, line, "{e}");
        assert!(e.to_string().contains(&format!("{key}: ")), "{e}");
    };
    check(
        "\n[vad]\nonset_db = 1.0\noffset_db = 3.0\n",
        "vad.offset_db",
        Some(4),
    );
    check("[mqtt]\nkeep_alive_s = 1\n", "mqtt.keep_alive_s", Some(2));
    // The key at fault is not in the file: no line, still the key.
    check("[mqtt]\nbroker = \"mqtts://b\"\n", "mqtt.ca_file", None);
    check("languages = [\"eng\", \"eng\"]\n", "languages", Some(1));
    check("languages = [\"English\"]\n", "languages", Some(1));
    check("[audio]\nperiod_ms = 1\n", "audio.period_ms", Some(2));
    check(
        "[recognizer]\nqueue_utterances = 0\n",
        "recognizer.queue_utterances",
        Some(2),
    );
    check("[record]\nmax_mb = 0\n", "record.max_mb", Some(2));
    check("[adapters]\nattempts = 0\n", "adapters.attempts", Some(2));
    check("[model]\nthreads = 1000\n", "model.threads", Some(2));
}

#[test]
fn errors_render_on_one_line_with_the_file() {
    let dir = std::env::temp_dir().join(format!("es-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("edgescribe.toml");
    std::fs::write(&path, "[audio]\nchannel = \"left\"\n").unwrap();
    let e = Config::load(&path).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}:2: audio.channel: ", path.display())),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
    let e = Config::load(&dir.join("absent.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("absent.toml: cannot read"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn channel_is_mix_or_a_number() {
    let c = Config::parse("[audio]\nchannel = 1\n").unwrap();
    assert_eq!(c.audio.channel, crate::audio::capture::ChannelMode::Pick(1));
    let c = Config::parse("[audio]\nchannel = \"mix\"\n").unwrap();
    assert_eq!(c.audio.channel, crate::audio::capture::ChannelMode::Mix);
}

/// Every number in the example states its range (`#key = value  # LO to HI`), and the code holds
/// to it: a value past a literal bound is refused with an error naming the key and the bound.
#[test]
fn every_number_has_a_documented_range_the_code_enforces() {
    let mut checked = 0;
    for line in option_lines(EXAMPLE) {
        let text = EXAMPLE.lines().nth(line).unwrap();
        let (option, range) = text[1..].split_once("  # ").unwrap_or((&text[1..], ""));
        let (key, value) = option.split_once(" = ").unwrap();
        if value.parse::<f64>().is_err() {
            continue;
        }
        let (lo, hi) = range
            .split_once(" to ")
            .unwrap_or_else(|| panic!("{key}: a number without `# LO to HI`"));
        let section = EXAMPLE
            .lines()
            .take(line)
            .filter_map(|l| l.strip_prefix('[').and_then(|l| l.strip_suffix(']')))
            .last()
            .unwrap();
        let float = value.contains('.');
        let refused = |bad: f64, bound: &str| {
            let bad = if float {
                format!("{bad:.1}")
            } else {
                format!("{bad}")
            };
            let e = Config::parse(&format!("[{section}]\n{key} = {bad}\n"))
                .expect_err(&format!("{section}.{key} = {bad} accepted"));
            assert_eq!(e.key.as_deref(), Some(&*format!("{section}.{key}")), "{e}");
            assert!(e.reason.contains(bound), "{section}.{key} = {bad}: {e}");
        };
        if let Ok(hi_value) = hi.parse::<f64>() {
            refused(hi_value + 1.0, hi);
            checked += 1;
        }
        if let Ok(lo_value) = lo.parse::<f64>() {
            // Below 0 an unsigned key fails to parse at all (still naming the key).
            if float || lo_value > 0.0 {
                refused(lo_value - 1.0, lo);
                checked += 1;
            }
        }
    }
    assert!(checked > 40, "only {checked} bounds checked");
}

/// Found by trying: these passed `check-config` and then panicked or wrapped in `run`.
#[test]
fn huge_numbers_are_refused_up_front() {
    for (section, key) in [
        ("mqtt", "stats_interval_s"),
        ("mqtt", "reconnect_max_ms"),
        ("record", "max_mb"),
        ("adapters", "retry_max_ms"),
        ("audio", "reopen_max_ms"),
    ] {
        let e = Config::parse(&format!("[{section}]\n{key} = 9223372036854775807\n")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some(&*format!("{section}.{key}")), "{e}");
    }
    let long = "x".repeat(70_000);
    for key in ["prefix", "device_id", "ha_discovery_prefix"] {
        let e = Config::parse(&format!("[mqtt]\n{key} = \"{long}\"\n")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some(&*format!("mqtt.{key}")), "{e}");
        assert!(!e.reason.contains(&long[..100]), "the value is echoed: {e}");
    }
}

#[test]
fn long_language_lists_are_checked_in_linear_time_and_bounded() {
    let codes: Vec<String> = (0..2000).map(|i| format!("\"l{i:04}\"")).collect();
    let t0 = std::time::Instant::now();
    Config::parse(&format!("languages = [{}]\n", codes.join(", "))).unwrap();
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        t0.elapsed()
    );
    let codes: Vec<String> = (0..2001).map(|i| format!("\"l{i:04}\"")).collect();
    let e = Config::parse(&format!("languages = [{}]\n", codes.join(", "))).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("languages"), "{e}");
    assert!(e.reason.contains("2000"), "{e}");
}
