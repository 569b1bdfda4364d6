//! Where the model is when neither `--model` nor `[model] dir` says: `$EDGESCRIBE_MODEL`, the
//! system-wide install, and the model bundled in the source tree only for a binary run from it.
//!
//! The source-tree fallback keys on where the *running executable* is, not on the build profile:
//! `cargo run`, `cargo test` and `cargo run --release` (benchmarks) all run a binary under the
//! tree's `target/` (or `target/aarch64/`, cross/test-aarch64's), and should find the bundled
//! model; a binary installed from a package (`/usr/bin/edgescribe`) or copied to a board, debug or
//! release, must never look into a directory of the machine it was built on, which on the board is
//! at best absent and at worst someone else's. A `CARGO_TARGET_DIR` outside the tree is not the
//! tree: such a build finds the model through `$EDGESCRIBE_MODEL` or `--model`.

use std::path::{Path, PathBuf};

/// The system-wide model, where the Debian package installs the bundled one.
pub const SYSTEM_MODEL_DIR: &str = "/usr/share/edgescribe/model";

/// What the lookup can see of the process: kept apart so the order is testable without touching
/// the process's environment (tests run in parallel) or the file system.
pub(super) struct Lookup<'a> {
    /// `$EDGESCRIBE_MODEL`, if set.
    pub env: Option<PathBuf>,
    /// The running executable, if the OS says.
    pub exe: Option<PathBuf>,
    /// The source tree this binary was built from (`CARGO_MANIFEST_DIR`).
    pub source_tree: &'a Path,
    /// Whether a directory holds an export (a `manifest.json`).
    pub has_model: &'a dyn Fn(&Path) -> bool,
}

impl Lookup<'static> {
    /// This process: its environment, executable and build tree, and the real file system.
    pub fn this_process() -> Self {
        Lookup {
            env: std::env::var_os("EDGESCRIBE_MODEL").map(PathBuf::from),
            exe: std::env::current_exe().ok(),
            source_tree: Path::new(env!("CARGO_MANIFEST_DIR")),
            has_model: &|dir: &Path| dir.join("manifest.json").is_file(),
        }
    }
}

/// `source_tree/models/bundled` if `exe` lies inside `source_tree` (both compared canonicalised
/// when they exist, so a symlinked checkout still matches).
pub(super) fn source_tree_model(exe: &Path, source_tree: &Path) -> Option<PathBuf> {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    canonical(exe)
        .starts_with(canonical(source_tree))
        .then(|| source_tree.join("models/bundled"))
}

impl Lookup<'_> {
    /// The first candidate that holds an export; otherwise an error listing every candidate and
    /// why it was not taken.
    pub fn resolve(&self) -> anyhow::Result<PathBuf> {
        // In search order: Ok(a candidate) or Err(why a place was not even looked at).
        let mut places: Vec<Result<(&str, PathBuf), String>> = Vec::new();
        places.push(match &self.env {
            Some(dir) => Ok(("$EDGESCRIBE_MODEL", dir.clone())),
            None => Err("$EDGESCRIBE_MODEL: not set".to_string()),
        });
        places.push(Ok(("system-wide", PathBuf::from(SYSTEM_MODEL_DIR))));
        let bundled = self.source_tree.join("models/bundled");
        places.push(match self.exe.as_deref() {
            Some(exe) => source_tree_model(exe, self.source_tree)
                .map(|dir| ("source tree", dir))
                .ok_or_else(|| {
                    format!(
                        "source tree {}: not used, {} does not run from it",
                        bundled.display(),
                        exe.display()
                    )
                }),
            None => Err(format!(
                "source tree {}: not used, the executable's path is unknown",
                bundled.display()
            )),
        });
        let mut tried = Vec::new();
        for place in places {
            match place {
                Ok((_, dir)) if (self.has_model)(&dir) => return Ok(dir),
                Ok((what, dir)) => {
                    tried.push(format!("{what} {}: no manifest.json", dir.display()))
                }
                Err(skipped) => tried.push(skipped),
            }
        }
        anyhow::bail!(
            "no model found; pass --model DIR or set model.dir (tried: {})",
            tried.join("; ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TREE: &str = "/build/edgescribe";

    fn lookup<'a>(env: Option<&str>, exe: &str, has: &'a dyn Fn(&Path) -> bool) -> Lookup<'a> {
        Lookup {
            env: env.map(PathBuf::from),
            exe: Some(PathBuf::from(exe)),
            source_tree: Path::new(TREE),
            has_model: has,
        }
    }

    #[test]
    fn binaries_under_the_tree_use_its_bundled_model() {
        for exe in [
            "/build/edgescribe/target/debug/edgescribe",
            "/build/edgescribe/target/release/edgescribe",
            "/build/edgescribe/target/aarch64/aarch64-unknown-linux-gnu/debug/deps/asr-1234",
        ] {
            assert_eq!(
                source_tree_model(Path::new(exe), Path::new(TREE)),
                Some(PathBuf::from("/build/edgescribe/models/bundled")),
                "{exe}"
            );
        }
    }

    #[test]
    fn binaries_elsewhere_never_use_the_build_machines_tree() {
        for exe in [
            "/usr/bin/edgescribe",
            "/home/pi/edgescribe",
            // A sibling whose name merely starts like the tree's.
            "/build/edgescribe-old/target/debug/edgescribe",
        ] {
            assert_eq!(
                source_tree_model(Path::new(exe), Path::new(TREE)),
                None,
                "{exe}"
            );
        }
    }

    #[test]
    fn order_is_environment_then_system_then_source_tree() {
        let everywhere = |_: &Path| true;
        let exe = "/build/edgescribe/target/debug/edgescribe";
        assert_eq!(
            lookup(Some("/models/mine"), exe, &everywhere)
                .resolve()
                .unwrap(),
            PathBuf::from("/models/mine")
        );
        assert_eq!(
            lookup(None, exe, &everywhere).resolve().unwrap(),
            PathBuf::from(SYSTEM_MODEL_DIR)
        );
        let only_tree = |d: &Path| d.starts_with(TREE);
        assert_eq!(
            lookup(Some("/models/empty"), exe, &only_tree)
                .resolve()
                .unwrap(),
            PathBuf::from("/build/edgescribe/models/bundled")
        );
    }

    #[test]
    fn an_installed_binary_without_a_model_says_everything_it_tried() {
        let only_tree = |d: &Path| d.starts_with(TREE);
        let err = lookup(Some("/models/gone"), "/usr/bin/edgescribe", &only_tree)
            .resolve()
            .unwrap_err()
            .to_string();
        for part in [
            "--model DIR",
            "$EDGESCRIBE_MODEL /models/gone: no manifest.json",
            "system-wide /usr/share/edgescribe/model: no manifest.json",
            "source tree /build/edgescribe/models/bundled: not used, /usr/bin/edgescribe does not run from it",
        ] {
            assert!(err.contains(part), "{part:?} missing from {err:?}");
        }
        let err = lookup(None, "/usr/bin/edgescribe", &|_: &Path| false)
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(err.contains("$EDGESCRIBE_MODEL: not set"), "{err}");
    }
}
