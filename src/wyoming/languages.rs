//! MMS's language codes (ISO 639-3, sometimes with a script: `uzb-script_latin`) as Home Assistant
//! names languages (ISO 639-1 where one exists, region variants such as `en_US`, `pt_BR`).
//!
//! Home Assistant compares a pipeline's language with the server's list as an exact string, so the
//! configured languages are advertised under its codes: the ISO 639-1 code and the common region
//! variants, all mapped to the one adapter (MMS has no regional adapters); MMS's own code when the
//! language has no ISO 639-1 code. Requests may name a language either way (`en`, `en_GB`, `en-GB`,
//! `eng`), and any region (`en_ZA`) falls back to its language.

/// Every ISO 639-1 code with its ISO 639-3 code (for a macrolanguage, the macrolanguage's code).
#[rustfmt::skip]
const ISO_639_1: &[(&str, &str)] = &[
    ("aa", "aar"), ("ab", "abk"), ("ae", "ave"), ("af", "afr"), ("ak", "aka"), ("am", "amh"),
    ("an", "arg"), ("ar", "ara"), ("as", "asm"), ("av", "ava"), ("ay", "aym"), ("az", "aze"),
    ("ba", "bak"), ("be", "bel"), ("bg", "bul"), ("bi", "bis"), ("bm", "bam"), ("bn", "ben"),
    ("bo", "bod"), ("br", "bre"), ("bs", "bos"), ("ca", "cat"), ("ce", "che"), ("ch", "cha"),
    ("co", "cos"), ("cr", "cre"), ("cs", "ces"), ("cu", "chu"), ("cv", "chv"), ("cy", "cym"),
    ("da", "dan"), ("de", "deu"), ("dv", "div"), ("dz", "dzo"), ("ee", "ewe"), ("el", "ell"),
    ("en", "eng"), ("eo", "epo"), ("es", "spa"), ("et", "est"), ("eu", "eus"), ("fa", "fas"),
    ("ff", "ful"), ("fi", "fin"), ("fj", "fij"), ("fo", "fao"), ("fr", "fra"), ("fy", "fry"),
    ("ga", "gle"), ("gd", "gla"), ("gl", "glg"), ("gn", "grn"), ("gu", "guj"), ("gv", "glv"),
    ("ha", "hau"), ("he", "heb"), ("hi", "hin"), ("ho", "hmo"), ("hr", "hrv"), ("ht", "hat"),
    ("hu", "hun"), ("hy", "hye"), ("hz", "her"), ("ia", "ina"), ("id", "ind"), ("ie", "ile"),
    ("ig", "ibo"), ("ii", "iii"), ("ik", "ipk"), ("io", "ido"), ("is", "isl"), ("it", "ita"),
    ("iu", "iku"), ("ja", "jpn"), ("jv", "jav"), ("ka", "kat"), ("kg", "kon"), ("ki", "kik"),
    ("kj", "kua"), ("kk", "kaz"), ("kl", "kal"), ("km", "khm"), ("kn", "kan"), ("ko", "kor"),
    ("kr", "kau"), ("ks", "kas"), ("ku", "kur"), ("kv", "kom"), ("kw", "cor"), ("ky", "kir"),
    ("la", "lat"), ("lb", "ltz"), ("lg", "lug"), ("li", "lim"), ("ln", "lin"), ("lo", "lao"),
    ("lt", "lit"), ("lu", "lub"), ("lv", "lav"), ("mg", "mlg"), ("mh", "mah"), ("mi", "mri"),
    ("mk", "mkd"), ("ml", "mal"), ("mn", "mon"), ("mr", "mar"), ("ms", "msa"), ("mt", "mlt"),
    ("my", "mya"), ("na", "nau"), ("nb", "nob"), ("nd", "nde"), ("ne", "nep"), ("ng", "ndo"),
    ("nl", "nld"), ("nn", "nno"), ("no", "nor"), ("nr", "nbl"), ("nv", "nav"), ("ny", "nya"),
    ("oc", "oci"), ("oj", "oji"), ("om", "orm"), ("or", "ori"), ("os", "oss"), ("pa", "pan"),
    ("pi", "pli"), ("pl", "pol"), ("ps", "pus"), ("pt", "por"), ("qu", "que"), ("rm", "roh"),
    ("rn", "run"), ("ro", "ron"), ("ru", "rus"), ("rw", "kin"), ("sa", "san"), ("sc", "srd"),
    ("sd", "snd"), ("se", "sme"), ("sg", "sag"), ("si", "sin"), ("sk", "slk"), ("sl", "slv"),
    ("sm", "smo"), ("sn", "sna"), ("so", "som"), ("sq", "sqi"), ("sr", "srp"), ("ss", "ssw"),
    ("st", "sot"), ("su", "sun"), ("sv", "swe"), ("sw", "swa"), ("ta", "tam"), ("te", "tel"),
    ("tg", "tgk"), ("th", "tha"), ("ti", "tir"), ("tk", "tuk"), ("tl", "tgl"), ("tn", "tsn"),
    ("to", "ton"), ("tr", "tur"), ("ts", "tso"), ("tt", "tat"), ("tw", "twi"), ("ty", "tah"),
    ("ug", "uig"), ("uk", "ukr"), ("ur", "urd"), ("uz", "uzb"), ("ve", "ven"), ("vi", "vie"),
    ("vo", "vol"), ("wa", "wln"), ("wo", "wol"), ("xh", "xho"), ("yi", "yid"), ("yo", "yor"),
    ("za", "zha"), ("zh", "zho"), ("zu", "zul"),
];

/// MMS adapters named after an individual language of a macrolanguage that has an ISO 639-1
/// code: Home Assistant's `zh` is MMS's `cmn` (Mandarin), its `ar` MMS's `arb` (Standard Arabic).
#[rustfmt::skip]
const INDIVIDUAL: &[(&str, &str)] = &[
    ("als", "sq"), ("arb", "ar"), ("azj", "az"), ("cmn", "zh"), ("ekk", "et"), ("gaz", "om"),
    ("khk", "mn"), ("kmr", "ku"), ("lvs", "lv"), ("npi", "ne"), ("ory", "or"), ("pbt", "ps"),
    ("pes", "fa"), ("plt", "mg"), ("swh", "sw"), ("uzn", "uz"), ("ydd", "yi"), ("zsm", "ms"),
];

/// Region variants advertised beside a language's ISO 639-1 code (any other region is accepted
/// in a request, just not listed).
#[rustfmt::skip]
const REGIONS: &[(&str, &[&str])] = &[
    ("de", &["de_DE", "de_AT", "de_CH"]),
    ("en", &["en_US", "en_GB", "en_AU", "en_CA", "en_IE", "en_IN", "en_NZ"]),
    ("es", &["es_ES", "es_MX", "es_AR", "es_US"]),
    ("fr", &["fr_FR", "fr_BE", "fr_CA", "fr_CH"]),
    ("it", &["it_IT", "it_CH"]),
    ("nl", &["nl_NL", "nl_BE"]),
    ("pt", &["pt_PT", "pt_BR"]),
    ("sv", &["sv_SE", "sv_FI"]),
    ("zh", &["zh_CN", "zh_HK", "zh_TW"]),
];

/// The ISO 639-1 code of an MMS language code, if its language has one.
pub fn iso_639_1(mms: &str) -> Option<&'static str> {
    // `uzb-script_latin` → `uzb`: the script does not change the language's name.
    let base = mms.split('-').next().unwrap_or(mms);
    ISO_639_1
        .iter()
        .find(|(_, three)| *three == base)
        .or_else(|| INDIVIDUAL.iter().find(|(three, _)| *three == base))
        .map(|&(a, b)| if a.len() == 2 { a } else { b })
}

/// The configured languages and the codes they are advertised and accepted under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanguageMap {
    /// `(MMS code, its primary advertised code)`, in the configured order.
    languages: Vec<(String, String)>,
}

impl LanguageMap {
    /// Two MMS languages with the same ISO 639-1 code (`zho` and `cmn`): the first listed takes the
    /// short code, the other is advertised under its MMS code.
    pub fn new<'a>(mms_codes: impl IntoIterator<Item = &'a str>) -> LanguageMap {
        let mut languages: Vec<(String, String)> = Vec::new();
        for mms in mms_codes {
            let short = iso_639_1(mms).filter(|s| languages.iter().all(|(_, a)| a != s));
            languages.push((mms.to_string(), short.unwrap_or(mms).to_string()));
        }
        LanguageMap { languages }
    }

    /// What `info` lists: each language's primary code, then its region variants.
    pub fn advertised(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (_, primary) in &self.languages {
            out.push(primary.clone());
            if let Some((_, variants)) = REGIONS.iter().find(|(l, _)| l == primary) {
                out.extend(variants.iter().map(|v| v.to_string()));
            }
        }
        out
    }

    /// The code a language is advertised under (for a transcript's `language`).
    pub fn primary(&self, mms: &str) -> String {
        self.languages
            .iter()
            .find(|(m, _)| m == mms)
            .map_or_else(|| mms.to_string(), |(_, p)| p.clone())
    }

    /// The MMS code of a requested language: `en`, `en_GB`, `en-gb`, `eng` → `eng`. `None`: not
    /// configured here.
    pub fn resolve(&self, requested: &str) -> Option<&str> {
        let wanted = requested.trim().to_ascii_lowercase().replace('-', "_");
        if let Some((mms, _)) = self.languages.iter().find(|(m, p)| {
            m.eq_ignore_ascii_case(requested.trim()) || p.to_ascii_lowercase() == wanted
        }) {
            return Some(mms);
        }
        // A region or script we do not list: `en_ZA` → `en`, `eng_Latn` → `eng`.
        let base = wanted.split('_').next().unwrap_or(&wanted);
        self.languages
            .iter()
            .find(|(m, p)| *p == base || *m == base || iso_639_1(m) == Some(base))
            .map(|(m, _)| m.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_every_iso_639_1_code_once() {
        assert_eq!(ISO_639_1.len(), 183);
        let mut two: Vec<&str> = ISO_639_1.iter().map(|p| p.0).collect();
        let mut three: Vec<&str> = ISO_639_1.iter().map(|p| p.1).collect();
        two.dedup();
        three.sort();
        three.dedup();
        assert_eq!((two.len(), three.len()), (183, 183));
        assert!(ISO_639_1.windows(2).all(|w| w[0].0 < w[1].0), "sorted");
        assert!(ISO_639_1.iter().all(|(a, b)| a.len() == 2 && b.len() == 3));
    }

    #[test]
    fn mms_codes_map_to_home_assistant_codes() {
        for (mms, ha) in [
            ("eng", Some("en")),
            ("deu", Some("de")),
            ("fra", Some("fr")),
            ("spa", Some("es")),
            ("cmn-script_simplified", Some("zh")),
            ("uzb-script_latin", Some("uz")),
            ("swh", Some("sw")),
            ("yue", None),
            ("xyz", None),
        ] {
            assert_eq!(iso_639_1(mms), ha, "{mms}");
        }
    }

    #[test]
    fn advertised_codes_are_home_assistants_with_regions() {
        let map = LanguageMap::new(["eng", "fra", "tzm", "por"]);
        let ad = map.advertised();
        assert_eq!(ad[0], "en");
        for code in [
            "en_US", "en_GB", "fr", "fr_CA", "tzm", "pt", "pt_PT", "pt_BR",
        ] {
            assert!(ad.iter().any(|a| a == code), "{code} in {ad:?}");
        }
        assert!(!ad.iter().any(|a| a == "eng" || a == "de"), "{ad:?}");
        assert_eq!(map.primary("fra"), "fr");
        assert_eq!(map.primary("tzm"), "tzm");
    }

    #[test]
    fn requests_resolve_in_every_spelling() {
        let map = LanguageMap::new(["eng", "deu", "tzm", "por"]);
        for (asked, mms) in [
            ("en", Some("eng")),
            ("eng", Some("eng")),
            ("EN", Some("eng")),
            ("en_GB", Some("eng")),
            ("en-gb", Some("eng")),
            ("en_ZA", Some("eng")),
            ("de", Some("deu")),
            ("pt_BR", Some("por")),
            ("tzm", Some("tzm")),
            ("fr", None),
            ("fra", None),
            ("", None),
            ("e", None),
        ] {
            assert_eq!(map.resolve(asked), mms, "{asked:?}");
        }
    }

    #[test]
    fn two_languages_with_one_short_code_stay_apart() {
        let map = LanguageMap::new(["zho", "cmn-script_simplified"]);
        assert_eq!(map.advertised()[0], "zh");
        assert!(map
            .advertised()
            .contains(&"cmn-script_simplified".to_string()));
        assert_eq!(map.resolve("zh"), Some("zho"));
        assert_eq!(
            map.resolve("cmn-script_simplified"),
            Some("cmn-script_simplified")
        );
    }
}
