//! The configured languages: pulled (only those), verified, loaded for the recogniser.

use std::sync::Arc;

use crate::asr::store::{AdapterStore, Availability, LanguageStatus, LogObserver, Problem};
use crate::asr::{AsrError, Engine, LanguagePack};

/// The outcome for a list of languages: every status (for `…/languages` and the log) and the
/// packs of those that are ready, in the order asked.
pub struct Loaded {
    pub statuses: Vec<LanguageStatus>,
    pub packs: Vec<LanguagePack>,
}

/// Makes sure each language's adapter is here (fetching only missing ones) and loads it. Errors
/// only for a code the model does not know; a language that cannot be had is reported missing.
pub fn load(
    engine: &Arc<Engine>,
    store: &AdapterStore,
    langs: &[String],
) -> Result<Loaded, AsrError> {
    let mut statuses = store.ensure(langs, &mut LogObserver)?;
    let mut packs = Vec::new();
    for status in &mut statuses {
        let Some(path) = status.path().map(|p| p.to_path_buf()) else {
            continue;
        };
        match engine.language_from(&status.lang, &path) {
            Ok(pack) => packs.push(pack),
            Err(e) => {
                log::error!("{}: adapter verified but not loadable: {e}", status.lang);
                status.availability = Availability::Missing {
                    problem: Problem::Rejected,
                    detail: e.to_string(),
                };
            }
        }
    }
    Ok(Loaded { statuses, packs })
}
