//! The local backend's "look" for a prompt: pattern, colours, motion and tone, all derived from a
//! SHA-256 of prompt + seed so the same request always renders the same footage; and the caption,
//! wrapped and escaped for Pango markup. Pure functions, no GStreamer.

use sha2::{Digest, Sha256};

/// videotestsrc patterns that are deterministic (no `snow`, which draws random numbers) and
/// that scroll visibly with `horizontal-speed`.
const PATTERNS: &[&str] = &[
    "smpte",
    "checkers-8",
    "circular",
    "zone-plate",
    "ball",
    "bar",
    "pinwheel",
    "spokes",
    "gradient",
    "colors",
    "chroma-zone-plate",
    "smpte-rp-219",
];

/// Tone level: -18 dBFS peak, the usual line-up level, leaves headroom for any later mix.
pub const TONE_VOLUME: f64 = 0.125;
/// Caption line length in characters before wrapping; textoverlay's auto-resize scales the font
/// with the frame width, so a fixed count gives similar lines at every size.
const CAPTION_LINE_CHARS: usize = 32;
/// Lines of caption drawn; the rest is cut with "…" so a long prompt never covers the frame.
const CAPTION_MAX_LINES: usize = 4;

#[derive(Debug, Clone, PartialEq)]
pub struct Look {
    /// videotestsrc `pattern` nick.
    pub pattern: &'static str,
    /// ARGB, opaque.
    pub foreground_argb: u32,
    pub background_argb: u32,
    /// Pixels per frame, signed (videotestsrc `horizontal-speed`).
    pub horizontal_speed: i32,
    pub tone_hz: f64,
    /// The caption as Pango markup (escaped, wrapped).
    pub caption_markup: String,
}

impl Look {
    pub fn for_prompt(prompt: &str, seed: u64) -> Look {
        let mut h = Sha256::new();
        h.update((prompt.len() as u64).to_le_bytes());
        h.update(prompt.as_bytes());
        h.update(seed.to_le_bytes());
        let d: [u8; 32] = h.finalize().into();
        let word = |i: usize| u32::from_le_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]]);
        let pattern = PATTERNS[usize::from(d[0]) % PATTERNS.len()];
        let foreground_argb = 0xff00_0000 | (word(4) & 0x00ff_ffff);
        let background_argb = 0xff00_0000 | (word(8) & 0x00ff_ffff);
        let magnitude = 1 + i32::from(d[12] % 6);
        let horizontal_speed = if d[13] & 1 == 0 {
            magnitude
        } else {
            -magnitude
        };
        // Two octaves of equal-tempered semitones from A3 (220 Hz).
        let semitone = f64::from(d[14] % 25);
        let tone_hz = 220.0 * (semitone / 12.0).exp2();
        Look {
            pattern,
            foreground_argb,
            background_argb,
            horizontal_speed,
            tone_hz,
            caption_markup: caption_markup(prompt),
        }
    }
}

/// Escapes text for Pango markup (textoverlay parses its `text` as markup).
pub fn escape_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Greedy word wrap at `width` characters; words longer than a line are split.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut line_len = 0;
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        while word.len() > width {
            if line_len > 0 {
                lines.push(std::mem::take(&mut line));
                line_len = 0;
            }
            let rest = word.split_off(width);
            lines.push(word.into_iter().collect());
            word = rest;
        }
        let needed = if line_len == 0 {
            word.len()
        } else {
            line_len + 1 + word.len()
        };
        if needed > width && line_len > 0 {
            lines.push(std::mem::take(&mut line));
            line_len = 0;
        }
        if line_len > 0 {
            line.push(' ');
            line_len += 1;
        }
        line_len += word.len();
        line.extend(word);
    }
    if line_len > 0 {
        lines.push(line);
    }
    lines
}

/// The caption: wrapped, at most [`CAPTION_MAX_LINES`] lines, then escaped.
pub fn caption_markup(prompt: &str) -> String {
    let mut lines = wrap(prompt, CAPTION_LINE_CHARS);
    if lines.len() > CAPTION_MAX_LINES {
        lines.truncate(CAPTION_MAX_LINES);
        if let Some(last) = lines.last_mut() {
            last.push('…');
        }
    }
    lines
        .iter()
        .map(|l| escape_markup(l))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_prompt_and_seed_same_look() {
        assert_eq!(
            Look::for_prompt("a red fox", 7),
            Look::for_prompt("a red fox", 7)
        );
    }

    #[test]
    fn seed_and_prompt_change_the_look() {
        let a = Look::for_prompt("a red fox", 7);
        let b = Look::for_prompt("a red fox", 8);
        let c = Look::for_prompt("a red fix", 7);
        assert_ne!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn look_values_stay_in_range() {
        for seed in 0..200 {
            let l = Look::for_prompt("x", seed);
            assert!((220.0..=880.0).contains(&l.tone_hz), "{}", l.tone_hz);
            assert!((1..=6).contains(&l.horizontal_speed.abs()));
            assert_eq!(l.foreground_argb >> 24, 0xff);
            assert!(PATTERNS.contains(&l.pattern));
        }
    }

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            escape_markup("<b>Tom & \"Jerry's\"</b>\u{7}"),
            "&lt;b&gt;Tom &amp; &quot;Jerry&apos;s&quot;&lt;/b&gt; "
        );
    }

    #[test]
    fn wraps_on_words_and_splits_long_words() {
        assert_eq!(
            wrap("the quick brown fox", 10),
            vec!["the quick", "brown fox"]
        );
        assert_eq!(
            wrap("abcdefghijklm xy", 5),
            vec!["abcde", "fghij", "klm", "xy"]
        );
        assert_eq!(wrap("  ", 5), Vec::<String>::new());
    }

    #[test]
    fn long_captions_are_cut() {
        let prompt = "word ".repeat(200);
        let caption = caption_markup(&prompt);
        assert_eq!(caption.lines().count(), CAPTION_MAX_LINES);
        assert!(caption.ends_with('…'));
    }
}
