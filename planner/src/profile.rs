//! Resolution profiles (SOCIAL, WEB, BROADCAST, ...) and choosing one for a use case.
//!
//! Profiles are data (`profiles/*.toml`), compiled in with `include_str!`. Selection matches the
//! use-case text against every profile's `use_cases` phrases on word boundaries, case-insensitively;
//! the longest matching phrase wins (so "youtube shorts" picks SOCIAL over WEB's "youtube"), ties
//! go to the profile listed first. Nothing matching means WEB.

use serde::{Deserialize, Serialize};

use crate::PlannerError;

/// The profile used when neither a profile nor a recognisable use case is given.
pub const DEFAULT_PROFILE: &str = "WEB";

/// Largest frame side a profile may declare; larger is a data error (8K is 7680).
const MAX_PROFILE_SIDE: u32 = 8192;

/// The profiles shipped with aiprod: (file name, TOML text).
const EMBEDDED_PROFILES: [(&str, &str); 4] = [
    (
        "profiles/social.toml",
        include_str!("../../profiles/social.toml"),
    ),
    ("profiles/web.toml", include_str!("../../profiles/web.toml")),
    (
        "profiles/broadcast.toml",
        include_str!("../../profiles/broadcast.toml"),
    ),
    (
        "profiles/broadcast_uhd.toml",
        include_str!("../../profiles/broadcast_uhd.toml"),
    ),
];

/// The audio track a profile delivers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioSpec {
    /// `"aac"` or `"pcm_s24le"`.
    pub codec: String,
    pub sample_rate_hz: u32,
    pub channels: u32,
    /// Encoder bitrate; only for compressed codecs (AAC). PCM's rate follows from its format.
    #[serde(default)]
    pub bitrate_bps: Option<u64>,
    /// Integrated loudness target (EBU R128: -23 for broadcast; -14 for streaming platforms).
    pub loudness_lufs: f64,
}

impl AudioSpec {
    /// Bits per second of the encoded audio: the AAC bitrate, or rate × channels × bits for PCM.
    pub fn effective_bitrate_bps(&self) -> u64 {
        match pcm_bits(&self.codec) {
            Some(bits) => u64::from(self.sample_rate_hz) * u64::from(self.channels) * bits,
            None => self.bitrate_bps.unwrap_or(0),
        }
    }
}

/// Bits per sample of a PCM codec name (`pcm_s16le`, `pcm_s24le`, `pcm_s32le`, ...), or None.
fn pcm_bits(codec: &str) -> Option<u64> {
    let rest = codec.strip_prefix("pcm_")?;
    let digits: String = rest
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// One delivery format: frame size and rate, codecs, bitrates, loudness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolutionProfile {
    /// Upper-case name, e.g. `"SOCIAL"`.
    pub name: String,
    pub description: String,
    pub width: u32,
    pub height: u32,
    pub fps_num: u32,
    pub fps_den: u32,
    /// `"mp4"` or `"mov"`.
    pub container: String,
    /// `"h264"`.
    pub video_codec: String,
    /// `"yuv420p"`, `"yuv422p10le"`, ...
    pub pixel_format: String,
    pub bit_depth: u32,
    pub video_bitrate_bps: u64,
    /// Levels kept inside the legal broadcast range (e.g. EBU R103).
    pub broadcast_safe: bool,
    /// Phrases `select` matches use cases against, lower case.
    pub use_cases: Vec<String>,
    pub audio: AudioSpec,
}

impl ResolutionProfile {
    /// Frames per second as a float.
    pub fn fps(&self) -> f64 {
        f64::from(self.fps_num) / f64::from(self.fps_den)
    }

    /// Megapixels per frame.
    pub fn megapixels(&self) -> f64 {
        f64::from(self.width) * f64::from(self.height) / 1e6
    }

    /// Video plus audio bits per second of the delivered file (container overhead ignored).
    pub fn total_bitrate_bps(&self) -> u64 {
        self.video_bitrate_bps
            .saturating_add(self.audio.effective_bitrate_bps())
    }

    fn validate(&self, what: &str) -> Result<(), PlannerError> {
        let bad = |reason: String| Err(PlannerError::data(what, reason));
        if self.name.trim().is_empty() {
            return bad("name is empty".into());
        }
        for (side, v) in [("width", self.width), ("height", self.height)] {
            if v == 0 || v > MAX_PROFILE_SIDE || v % 2 != 0 {
                return bad(format!(
                    "{side} {v} must be even and in 2..={MAX_PROFILE_SIDE}"
                ));
            }
        }
        if self.fps_num == 0 || self.fps_den == 0 {
            return bad(format!(
                "frame rate {}/{} must be positive",
                self.fps_num, self.fps_den
            ));
        }
        if !matches!(self.container.as_str(), "mp4" | "mov") {
            return bad(format!("container {:?} is not mp4 or mov", self.container));
        }
        if self.video_bitrate_bps == 0 {
            return bad("video_bitrate_bps must be positive".into());
        }
        if self.audio.sample_rate_hz == 0 || self.audio.channels == 0 {
            return bad("audio sample_rate_hz and channels must be positive".into());
        }
        if pcm_bits(&self.audio.codec).is_none() && self.audio.bitrate_bps.unwrap_or(0) == 0 {
            return bad(format!(
                "audio codec {:?} needs a positive bitrate_bps",
                self.audio.codec
            ));
        }
        if !self.audio.loudness_lufs.is_finite() || self.audio.loudness_lufs > 0.0 {
            return bad(format!(
                "audio loudness_lufs {} must be a finite negative number",
                self.audio.loudness_lufs
            ));
        }
        Ok(())
    }
}

/// The profile chosen for a request, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileSelection {
    pub profile: ResolutionProfile,
    /// Plain-language reason, e.g. `use case "Instagram Reel" matches SOCIAL ("instagram reel")`.
    pub reason: String,
    /// The use-case phrase that matched, when one did.
    pub matched_phrase: Option<String>,
}

/// A set of profiles with unique (case-insensitive) names; never empty.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileCatalog {
    profiles: Vec<ResolutionProfile>,
}

impl ProfileCatalog {
    /// The profiles compiled into the binary (SOCIAL, WEB, BROADCAST, BROADCAST_UHD).
    ///
    /// Returns `Result` rather than panicking; a unit test proves the embedded data parses.
    pub fn embedded() -> Result<ProfileCatalog, PlannerError> {
        ProfileCatalog::from_toml_strs(&EMBEDDED_PROFILES)
    }

    /// Parses profiles from `(name, toml text)` pairs; `name` is only used in error messages.
    pub fn from_toml_strs(files: &[(&str, &str)]) -> Result<ProfileCatalog, PlannerError> {
        let mut profiles: Vec<ResolutionProfile> = Vec::with_capacity(files.len());
        for (what, text) in files {
            let mut p: ResolutionProfile =
                toml::from_str(text).map_err(|e| PlannerError::data(*what, e.to_string()))?;
            p.validate(what)?;
            p.name = p.name.trim().to_ascii_uppercase();
            p.use_cases = p
                .use_cases
                .iter()
                .map(|u| normalise_words(u))
                .filter(|u| !u.is_empty())
                .collect();
            if profiles.iter().any(|q| q.name == p.name) {
                return Err(PlannerError::data(
                    *what,
                    format!("duplicate profile name {}", p.name),
                ));
            }
            profiles.push(p);
        }
        if profiles.is_empty() {
            return Err(PlannerError::data("profiles", "no profiles given"));
        }
        Ok(ProfileCatalog { profiles })
    }

    /// The profile with this name, case-insensitively.
    pub fn get(&self, name: &str) -> Option<&ResolutionProfile> {
        let name = name.trim();
        self.profiles
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// Profile names in catalog order.
    pub fn names(&self) -> Vec<&str> {
        self.profiles.iter().map(|p| p.name.as_str()).collect()
    }

    /// All profiles in catalog order.
    pub fn profiles(&self) -> &[ResolutionProfile] {
        &self.profiles
    }

    /// The default profile: WEB, or the first one when a custom catalog has no WEB.
    fn default_profile(&self) -> &ResolutionProfile {
        self.get(DEFAULT_PROFILE)
            .unwrap_or_else(|| &self.profiles[0])
    }

    /// Picks a profile for a free-text use case ("instagram reel", "TV spot", ...).
    pub fn select(&self, use_case: &str) -> ProfileSelection {
        let text = normalise_words(use_case);
        let mut best: Option<(&ResolutionProfile, &str)> = None;
        if !text.is_empty() {
            for p in &self.profiles {
                for phrase in &p.use_cases {
                    let longer = best.is_none_or(|(_, b)| phrase.len() > b.len());
                    if longer && contains_words(&text, phrase) {
                        best = Some((p, phrase));
                    }
                }
            }
        }
        match best {
            Some((p, phrase)) => ProfileSelection {
                profile: p.clone(),
                reason: format!(
                    "use case {:?} matches {} ({:?})",
                    use_case.trim(),
                    p.name,
                    phrase
                ),
                matched_phrase: Some(phrase.to_string()),
            },
            None => {
                let p = self.default_profile();
                let reason = if text.is_empty() {
                    format!("no profile or use case given; defaulted to {}", p.name)
                } else {
                    format!(
                        "use case {:?} matches no profile; defaulted to {}",
                        use_case.trim(),
                        p.name
                    )
                };
                ProfileSelection {
                    profile: p.clone(),
                    reason,
                    matched_phrase: None,
                }
            }
        }
    }

    /// An explicit profile name wins; otherwise the use case decides; otherwise WEB.
    ///
    /// An unknown explicit name is an error on field `"profile"`, not a silent fallback.
    pub fn resolve(&self, profile: &str, use_case: &str) -> Result<ProfileSelection, PlannerError> {
        let name = profile.trim();
        if name.is_empty() {
            return Ok(self.select(use_case));
        }
        match self.get(name) {
            Some(p) => Ok(ProfileSelection {
                profile: p.clone(),
                reason: format!("profile {} requested explicitly", p.name),
                matched_phrase: None,
            }),
            None => Err(PlannerError::field(
                "profile",
                format!(
                    "unknown profile {name:?}; known profiles: {}",
                    self.names().join(", ")
                ),
            )),
        }
    }
}

/// Lower case, every non-alphanumeric run except ':' collapsed to one space ("Instagram-Reel!" →
/// "instagram reel"; "9:16" stays).
fn normalise_words(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s
        .split(|c: char| !(c.is_alphanumeric() || c == ':'))
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    out
}

/// Whether normalised `phrase` occurs in normalised `text` as whole words.
fn contains_words(text: &str, phrase: &str) -> bool {
    let padded_text = format!(" {text} ");
    let padded_phrase = format!(" {phrase} ");
    padded_text.contains(&padded_phrase)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> ProfileCatalog {
        match ProfileCatalog::embedded() {
            Ok(c) => c,
            Err(e) => panic!("embedded profiles must parse: {e}"),
        }
    }

    #[test]
    fn embedded_profiles_parse_with_expected_values() {
        let c = catalog();
        assert_eq!(c.names(), ["SOCIAL", "WEB", "BROADCAST", "BROADCAST_UHD"]);

        let s = c.get("social").cloned().unwrap_or_else(|| panic!("SOCIAL"));
        assert_eq!(
            (s.width, s.height, s.fps_num, s.fps_den),
            (1080, 1920, 30, 1)
        );
        assert_eq!(
            (s.container.as_str(), s.pixel_format.as_str()),
            ("mp4", "yuv420p")
        );
        assert_eq!(s.audio.codec, "aac");
        assert_eq!(s.audio.bitrate_bps, Some(192_000));
        assert_eq!(s.audio.loudness_lufs, -14.0);
        assert_eq!(s.total_bitrate_bps(), 8_192_000);

        let w = c.get("Web").cloned().unwrap_or_else(|| panic!("WEB"));
        assert_eq!((w.width, w.height, w.fps()), (1920, 1080, 30.0));
        assert!(!w.broadcast_safe);

        let b = c
            .get("BROADCAST")
            .cloned()
            .unwrap_or_else(|| panic!("BROADCAST"));
        assert_eq!((b.width, b.height, b.fps()), (1920, 1080, 25.0));
        assert_eq!(b.container, "mov");
        assert_eq!((b.pixel_format.as_str(), b.bit_depth), ("yuv422p10le", 10));
        assert_eq!(b.video_bitrate_bps, 50_000_000);
        assert_eq!(b.audio.codec, "pcm_s24le");
        assert_eq!(b.audio.loudness_lufs, -23.0);
        // 48000 Hz × 2 ch × 24 bit
        assert_eq!(b.audio.effective_bitrate_bps(), 2_304_000);
        assert!(b.broadcast_safe);

        let u = c
            .get("broadcast_uhd")
            .cloned()
            .unwrap_or_else(|| panic!("UHD"));
        assert_eq!((u.width, u.height), (3840, 2160));
        assert!(c.get("nope").is_none());
    }

    #[test]
    fn selects_profile_for_each_documented_use_case() {
        let c = catalog();
        let cases = [
            ("tiktok", "SOCIAL"),
            ("TikTok video for our launch", "SOCIAL"),
            ("instagram reel", "SOCIAL"),
            ("Instagram Reel", "SOCIAL"),
            ("reels", "SOCIAL"),
            ("shorts", "SOCIAL"),
            ("YouTube Shorts", "SOCIAL"),
            ("youtube", "WEB"),
            ("a YouTube pre-roll", "WEB"),
            ("website hero", "WEB"),
            ("landing page", "WEB"),
            ("tv spot", "BROADCAST"),
            ("TV Spot, 30 seconds", "BROADCAST"),
            ("broadcast", "BROADCAST"),
            ("commercial", "BROADCAST"),
            ("4K broadcast", "BROADCAST_UHD"),
        ];
        for (use_case, want) in cases {
            let sel = c.select(use_case);
            assert_eq!(
                sel.profile.name, want,
                "use case {use_case:?}: {}",
                sel.reason
            );
            assert!(sel.matched_phrase.is_some(), "{use_case:?}");
        }
        let sel = c.select("instagram reel");
        assert_eq!(
            sel.reason,
            "use case \"instagram reel\" matches SOCIAL (\"instagram reel\")"
        );
    }

    #[test]
    fn unknown_or_empty_use_case_defaults_to_web() {
        let c = catalog();
        let sel = c.select("holographic opera");
        assert_eq!(sel.profile.name, "WEB");
        assert_eq!(
            sel.reason,
            "use case \"holographic opera\" matches no profile; defaulted to WEB"
        );
        assert_eq!(sel.matched_phrase, None);
        // Word boundaries: "website" must not match inside "websites2", "tv" not inside "tvx".
        assert_eq!(c.select("tvx").profile.name, "WEB");
        let empty = c.select("  ");
        assert_eq!(empty.profile.name, "WEB");
        assert_eq!(
            empty.reason,
            "no profile or use case given; defaulted to WEB"
        );
    }

    #[test]
    fn explicit_profile_wins_and_unknown_is_an_error() {
        let c = catalog();
        let sel = c
            .resolve("broadcast", "tiktok")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sel.profile.name, "BROADCAST");
        assert_eq!(sel.reason, "profile BROADCAST requested explicitly");

        let sel = c.resolve("", "tiktok").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sel.profile.name, "SOCIAL");
        let sel = c.resolve(" ", "").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sel.profile.name, "WEB");

        match c.resolve("CINEMA", "tiktok") {
            Err(PlannerError::InvalidField { field, reason }) => {
                assert_eq!(field, "profile");
                assert!(reason.contains("CINEMA"), "{reason}");
                assert!(reason.contains("SOCIAL, WEB, BROADCAST"), "{reason}");
            }
            other => panic!("expected InvalidField(profile), got {other:?}"),
        }
    }

    #[test]
    fn bad_profile_data_is_a_data_error() {
        let web = EMBEDDED_PROFILES[1].1;
        let odd = web.replace("width = 1920", "width = 1921");
        let err = ProfileCatalog::from_toml_strs(&[("odd.toml", &odd)]);
        assert!(matches!(err, Err(PlannerError::Data { ref what, .. }) if what == "odd.toml"));

        let err = ProfileCatalog::from_toml_strs(&[("broken.toml", "name = ")]);
        assert!(matches!(err, Err(PlannerError::Data { .. })));

        let dup = ProfileCatalog::from_toml_strs(&[("a.toml", web), ("b.toml", web)]);
        assert!(
            matches!(dup, Err(PlannerError::Data { ref reason, .. }) if reason.contains("duplicate"))
        );

        assert!(matches!(
            ProfileCatalog::from_toml_strs(&[]),
            Err(PlannerError::Data { .. })
        ));
    }

    #[test]
    fn custom_catalog_without_web_defaults_to_first() {
        let social = EMBEDDED_PROFILES[0].1;
        let c = ProfileCatalog::from_toml_strs(&[("social.toml", social)])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.select("opera").profile.name, "SOCIAL");
    }
}
