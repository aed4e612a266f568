//! What a probe found, in ffprobe's terms, and its rendering as ffprobe's JSON: the same keys in
//! the same order, strings where ffprobe prints strings ("bit_rate": "128000"), numbers where it
//! prints numbers, and fields ffprobe leaves out when unknown left out here too.

use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    Video,
    Audio,
    Subtitle,
    Data,
}

impl MediaType {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::Video => "video",
            MediaType::Audio => "audio",
            MediaType::Subtitle => "subtitle",
            MediaType::Data => "data",
        }
    }
}

/// A rational as ffprobe prints it ("30000/1001", "16:15").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rational {
    pub num: i64,
    pub den: i64,
}

impl Rational {
    pub const fn new(num: i64, den: i64) -> Rational {
        Rational { num, den }
    }
    pub const ZERO: Rational = Rational { num: 0, den: 0 };
    /// Reduced like FFmpeg's av_reduce with the given bound on numerator and denominator.
    pub fn reduced(num: i64, den: i64, max: i64) -> Rational {
        let (n, d) = av_reduce(num, den, max);
        Rational { num: n, den: d }
    }
    pub fn as_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    let (mut a, mut b) = (a.unsigned_abs(), b.unsigned_abs());
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a as i64
}

/// FFmpeg's av_reduce: exact when the reduced fraction fits in `max`, else the best continued-
/// fraction approximation within it.
pub fn av_reduce(num: i64, den: i64, max: i64) -> (i64, i64) {
    if den == 0 {
        return (num.signum(), 0);
    }
    let sign = (num < 0) != (den < 0);
    let (mut nu, mut de) = (num.unsigned_abs() as i128, den.unsigned_abs() as i128);
    let g = gcd(nu as i64, de as i64) as i128;
    if g != 0 {
        nu /= g;
        de /= g;
    }
    let max = max as i128;
    let (mut a0n, mut a0d, mut a1n, mut a1d) = (0i128, 1i128, 1i128, 0i128);
    if nu <= max && de <= max {
        a1n = nu;
        a1d = de;
        de = 0;
    }
    while de != 0 {
        let x = nu / de;
        let next_den = nu - de * x;
        let a2n = x * a1n + a0n;
        let a2d = x * a1d + a0d;
        if a2n > max || a2d > max {
            let mut xx = x;
            if a1n != 0 {
                xx = (max - a0n) / a1n;
            }
            if a1d != 0 {
                xx = xx.min((max - a0d) / a1d);
            }
            if de * (2 * xx * a1d + a0d) > nu * a1d {
                a1n = xx * a1n + a0n;
                a1d = xx * a1d + a0d;
            }
            break;
        }
        a0n = a1n;
        a0d = a1d;
        a1n = a2n;
        a1d = a2d;
        nu = de;
        de = next_den;
    }
    let n = if sign { -(a1n as i64) } else { a1n as i64 };
    (n, a1d as i64)
}

/// av_rescale_rnd(a, b, c, AV_ROUND_NEAR_INF): a·b/c rounded half away from zero, in 128 bits.
pub fn rescale(a: i64, b: i64, c: i64) -> i64 {
    if c == 0 {
        return 0;
    }
    let p = i128::from(a) * i128::from(b);
    let c = i128::from(c);
    let r = if (p < 0) != (c < 0) {
        -((p.abs() + c.abs() / 2) / c.abs())
    } else {
        (p.abs() + c.abs() / 2) / c.abs()
    };
    r.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// ffprobe's codec_tag_string: printable characters as is, others as "[n]".
pub fn fourcc_string(tag: u32) -> String {
    let mut s = String::new();
    for b in tag.to_le_bytes() {
        if b.is_ascii_alphanumeric() || b" .-_".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("[{b}]"));
        }
    }
    s
}

pub fn fourcc(s: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*s)
}

#[derive(Debug, Clone, Default)]
pub struct VideoParams {
    pub width: u32,
    pub height: u32,
    pub coded_width: u32,
    pub coded_height: u32,
    pub has_b_frames: u32,
    /// The container's sample aspect ratio (pasp, DisplayWidth, A in y4m), preferred by ffprobe.
    pub container_sar: Option<Rational>,
    /// The codec's (SPS VUI, VOL): used when the container has none.
    pub codec_sar: Option<Rational>,
    pub pix_fmt: Option<String>,
    pub level: i32,
    pub color_range: Option<&'static str>,
    pub color_space: Option<&'static str>,
    pub color_transfer: Option<&'static str>,
    pub color_primaries: Option<&'static str>,
    pub chroma_location: Option<&'static str>,
    pub field_order: Option<&'static str>,
}

#[derive(Debug, Clone, Default)]
pub struct AudioParams {
    pub sample_fmt: Option<&'static str>,
    pub sample_rate: u32,
    pub channels: u32,
    pub channel_layout: Option<String>,
    pub bits_per_sample: u32,
}

#[derive(Debug, Clone)]
pub enum SideData {
    DisplayMatrix { matrix: [i32; 9], rotation: i32 },
    CpbProperties { buffer_size: i64 },
    AudioServiceType(u32),
}

/// Disposition flags in ffprobe's order.
pub const DISPOSITIONS: [&str; 17] = [
    "default",
    "dub",
    "original",
    "comment",
    "lyrics",
    "karaoke",
    "forced",
    "hearing_impaired",
    "visual_impaired",
    "clean_effects",
    "attached_pic",
    "timed_thumbnails",
    "captions",
    "descriptions",
    "metadata",
    "dependent",
    "still_image",
];

#[derive(Debug, Clone)]
pub struct Stream {
    pub codec_name: String,
    pub codec_long_name: String,
    pub profile: Option<String>,
    pub media_type: MediaType,
    pub codec_tag: u32,
    pub video: VideoParams,
    pub audio: AudioParams,
    pub subtitle_size: (u32, u32),
    /// Decoder options ffprobe prints (is_avc, nal_length_size, quarter_sample, …), in order.
    pub private: Vec<(&'static str, String)>,
    pub id: Option<u32>,
    pub r_frame_rate: Rational,
    pub avg_frame_rate: Rational,
    pub time_base: Rational,
    pub start_pts: Option<i64>,
    pub duration_ts: Option<i64>,
    pub bit_rate: Option<i64>,
    pub bits_per_raw_sample: Option<u32>,
    pub nb_frames: Option<u64>,
    pub nb_read_frames: Option<u64>,
    pub nb_read_packets: Option<u64>,
    pub extradata_size: usize,
    /// Indexes into [`DISPOSITIONS`] that are set.
    pub disposition: [bool; 17],
    pub tags: Vec<(String, String)>,
    pub side_data: Vec<SideData>,
    /// Frame rate the codec header declares (VUI timing, MPEG-2 frame_rate_code), for
    /// containers without their own timing; not printed.
    pub video_rate: Option<Rational>,
    /// Packets a decoder consumes without output at the start (AAC priming cut by an edit
    /// list); for nb_read_frames, not printed.
    pub priming_packets: u64,
}

impl Stream {
    pub fn new(media_type: MediaType) -> Stream {
        Stream {
            codec_name: String::new(),
            codec_long_name: String::new(),
            profile: None,
            media_type,
            codec_tag: 0,
            video: VideoParams {
                level: -99,
                ..VideoParams::default()
            },
            audio: AudioParams::default(),
            subtitle_size: (0, 0),
            private: Vec::new(),
            id: None,
            r_frame_rate: Rational::ZERO,
            avg_frame_rate: Rational::ZERO,
            time_base: Rational::new(1, 1),
            start_pts: None,
            duration_ts: None,
            bit_rate: None,
            bits_per_raw_sample: None,
            nb_frames: None,
            nb_read_frames: None,
            nb_read_packets: None,
            extradata_size: 0,
            disposition: [false; 17],
            tags: Vec::new(),
            side_data: Vec::new(),
            video_rate: None,
            priming_packets: 0,
        }
    }
    pub fn set_codec(&mut self, name: &str) {
        let d = super::codecs::descriptor(name);
        self.codec_name = name.to_string();
        self.codec_long_name = d.map_or("unknown", |d| d.1).to_string();
        if let Some((_, _, t)) = d {
            self.media_type = t;
        }
    }
    pub fn tag(&mut self, k: &str, v: impl Into<String>) {
        self.tags.push((k.to_string(), v.into()));
    }
}

#[derive(Debug, Clone, Default)]
pub struct Format {
    pub filename: String,
    pub nb_programs: u32,
    pub format_name: &'static str,
    pub format_long_name: &'static str,
    /// In microseconds (AV_TIME_BASE).
    pub start_time_us: Option<i64>,
    pub duration_us: Option<i64>,
    pub size: u64,
    pub bit_rate: Option<i64>,
    pub probe_score: u32,
    pub tags: Vec<(String, String)>,
}

/// ffprobe's print_time: seconds as "%f".
pub fn time_string(ts: i64, tb: Rational) -> String {
    format!("{:.6}", ts as f64 * (tb.num as f64 / tb.den as f64))
}

fn q(r: Rational, sep: char) -> Value {
    Value::String(format!("{}{sep}{}", r.num, r.den))
}

fn tags_value(tags: &[(String, String)]) -> Value {
    let mut m = Map::new();
    for (k, v) in tags {
        // FFmpeg's dictionaries keep the first key on duplicates only when told to; ffprobe
        // prints the last value set, in the position of the first.
        m.insert(k.clone(), Value::String(v.clone()));
    }
    Value::Object(m)
}

impl Stream {
    pub fn to_json(&self, index: usize) -> Value {
        let mut m = Map::new();
        let s = |v: &str| Value::String(v.to_string());
        m.insert("index".into(), index.into());
        m.insert("codec_name".into(), s(&self.codec_name));
        m.insert("codec_long_name".into(), s(&self.codec_long_name));
        if let Some(p) = &self.profile {
            m.insert("profile".into(), s(p));
        }
        m.insert("codec_type".into(), s(self.media_type.as_str()));
        m.insert(
            "codec_tag_string".into(),
            Value::String(fourcc_string(self.codec_tag)),
        );
        m.insert(
            "codec_tag".into(),
            Value::String(format!("0x{:04x}", self.codec_tag)),
        );
        match self.media_type {
            MediaType::Video => {
                let v = &self.video;
                m.insert("width".into(), v.width.into());
                m.insert("height".into(), v.height.into());
                m.insert("coded_width".into(), v.coded_width.into());
                m.insert("coded_height".into(), v.coded_height.into());
                m.insert("closed_captions".into(), 0.into());
                m.insert("film_grain".into(), 0.into());
                m.insert("has_b_frames".into(), v.has_b_frames.into());
                let sar = v
                    .container_sar
                    .filter(|r| r.num > 0 && r.den > 0)
                    .or(v.codec_sar.filter(|r| r.num > 0 && r.den > 0));
                if let Some(sar) = sar {
                    let sar = Rational::reduced(sar.num, sar.den, i32::MAX as i64);
                    m.insert("sample_aspect_ratio".into(), q(sar, ':'));
                    let dar = Rational::reduced(
                        i64::from(v.width) * sar.num,
                        i64::from(v.height) * sar.den,
                        1024 * 1024,
                    );
                    m.insert("display_aspect_ratio".into(), q(dar, ':'));
                }
                if let Some(p) = &v.pix_fmt {
                    m.insert("pix_fmt".into(), s(p));
                }
                m.insert("level".into(), v.level.into());
                for (k, val) in [
                    ("color_range", v.color_range),
                    ("color_space", v.color_space),
                    ("color_transfer", v.color_transfer),
                    ("color_primaries", v.color_primaries),
                    ("chroma_location", v.chroma_location),
                    ("field_order", v.field_order),
                ] {
                    if let Some(val) = val {
                        m.insert(k.into(), s(val));
                    }
                }
                m.insert("refs".into(), 1.into());
            }
            MediaType::Audio => {
                let a = &self.audio;
                if let Some(f) = a.sample_fmt {
                    m.insert("sample_fmt".into(), s(f));
                }
                m.insert(
                    "sample_rate".into(),
                    Value::String(a.sample_rate.to_string()),
                );
                m.insert("channels".into(), a.channels.into());
                if let Some(l) = &a.channel_layout {
                    m.insert("channel_layout".into(), s(l));
                }
                m.insert("bits_per_sample".into(), a.bits_per_sample.into());
            }
            MediaType::Subtitle => {
                if self.subtitle_size.0 > 0 {
                    m.insert("width".into(), self.subtitle_size.0.into());
                }
                if self.subtitle_size.1 > 0 {
                    m.insert("height".into(), self.subtitle_size.1.into());
                }
            }
            MediaType::Data => {}
        }
        for (k, v) in &self.private {
            m.insert((*k).into(), s(v));
        }
        if let Some(id) = self.id {
            m.insert("id".into(), Value::String(format!("0x{id:x}")));
        }
        m.insert("r_frame_rate".into(), q(self.r_frame_rate, '/'));
        m.insert("avg_frame_rate".into(), q(self.avg_frame_rate, '/'));
        m.insert("time_base".into(), q(self.time_base, '/'));
        if let Some(pts) = self.start_pts {
            m.insert("start_pts".into(), pts.into());
            m.insert(
                "start_time".into(),
                Value::String(time_string(pts, self.time_base)),
            );
        }
        if let Some(d) = self.duration_ts {
            m.insert("duration_ts".into(), d.into());
            m.insert(
                "duration".into(),
                Value::String(time_string(d, self.time_base)),
            );
        }
        if let Some(b) = self.bit_rate.filter(|b| *b > 0) {
            m.insert("bit_rate".into(), Value::String(b.to_string()));
        }
        if let Some(b) = self.bits_per_raw_sample.filter(|b| *b > 0) {
            m.insert("bits_per_raw_sample".into(), Value::String(b.to_string()));
        }
        if let Some(n) = self.nb_frames.filter(|n| *n > 0) {
            m.insert("nb_frames".into(), Value::String(n.to_string()));
        }
        if let Some(n) = self.nb_read_frames.filter(|n| *n > 0) {
            m.insert("nb_read_frames".into(), Value::String(n.to_string()));
        }
        if let Some(n) = self.nb_read_packets.filter(|n| *n > 0) {
            m.insert("nb_read_packets".into(), Value::String(n.to_string()));
        }
        if self.extradata_size > 0 {
            m.insert("extradata_size".into(), self.extradata_size.into());
        }
        let mut d = Map::new();
        for (i, name) in DISPOSITIONS.iter().enumerate() {
            d.insert((*name).into(), u8::from(self.disposition[i]).into());
        }
        m.insert("disposition".into(), Value::Object(d));
        if !self.tags.is_empty() {
            m.insert("tags".into(), tags_value(&self.tags));
        }
        if !self.side_data.is_empty() {
            let list = self.side_data.iter().map(side_data_json).collect();
            m.insert("side_data_list".into(), Value::Array(list));
        }
        Value::Object(m)
    }
}

fn side_data_json(sd: &SideData) -> Value {
    let mut m = Map::new();
    match sd {
        SideData::DisplayMatrix { matrix, rotation } => {
            m.insert("side_data_type".into(), "Display Matrix".into());
            let mut text = String::from("\n");
            for (row, chunk) in matrix.chunks(3).enumerate() {
                text.push_str(&format!(
                    "{row:08x}:  {:11} {:11} {:11}\n",
                    chunk[0], chunk[1], chunk[2]
                ));
            }
            m.insert("displaymatrix".into(), text.into());
            m.insert("rotation".into(), (*rotation).into());
        }
        SideData::CpbProperties { buffer_size } => {
            m.insert("side_data_type".into(), "CPB properties".into());
            m.insert("max_bitrate".into(), 0.into());
            m.insert("min_bitrate".into(), 0.into());
            m.insert("avg_bitrate".into(), 0.into());
            m.insert("buffer_size".into(), (*buffer_size).into());
            m.insert("vbv_delay".into(), (-1).into());
        }
        SideData::AudioServiceType(t) => {
            m.insert("side_data_type".into(), "Audio Service Type".into());
            m.insert("service_type".into(), (*t).into());
        }
    }
    Value::Object(m)
}

impl Format {
    pub fn to_json(&self, nb_streams: usize) -> Value {
        let mut m = Map::new();
        m.insert("filename".into(), self.filename.clone().into());
        m.insert("nb_streams".into(), nb_streams.into());
        m.insert("nb_programs".into(), self.nb_programs.into());
        m.insert("format_name".into(), self.format_name.into());
        m.insert("format_long_name".into(), self.format_long_name.into());
        let us = Rational::new(1, 1_000_000);
        if let Some(t) = self.start_time_us {
            m.insert("start_time".into(), time_string(t, us).into());
        }
        if let Some(t) = self.duration_us {
            m.insert("duration".into(), time_string(t, us).into());
        }
        m.insert("size".into(), self.size.to_string().into());
        if let Some(b) = self.bit_rate.filter(|b| *b > 0) {
            m.insert("bit_rate".into(), b.to_string().into());
        }
        m.insert("probe_score".into(), self.probe_score.into());
        if !self.tags.is_empty() {
            m.insert("tags".into(), tags_value(&self.tags));
        }
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduce_like_ffmpeg() {
        assert_eq!(av_reduce(160, 120, 1 << 20), (4, 3));
        assert_eq!(av_reduce(720 * 16, 576 * 15, 1 << 20), (4, 3));
        assert_eq!(av_reduce(322, 182, 1 << 20), (23, 13));
        assert_eq!(av_reduce(24000, 1001, i32::MAX as i64), (24000, 1001));
    }

    #[test]
    fn fourcc_strings() {
        assert_eq!(fourcc_string(fourcc(b"avc1")), "avc1");
        assert_eq!(fourcc_string(0), "[0][0][0][0]");
        assert_eq!(fourcc_string(0x0a0a3359), "Y3[10][10]");
        assert_eq!(fourcc_string(0x001b), "[27][0][0][0]");
    }

    #[test]
    fn rescale_rounds_half_away() {
        assert_eq!(rescale(5, 1, 2), 3);
        assert_eq!(rescale(-5, 1, 2), -3);
        assert_eq!(rescale(6500000, 1000, 1_000_000_000), 7);
    }

    #[test]
    fn times_print_like_ffprobe() {
        assert_eq!(time_string(12800, Rational::new(1, 12800)), "1.000000");
        assert_eq!(time_string(-7, Rational::new(1, 1000)), "-0.007000");
        assert_eq!(time_string(24024, Rational::new(1, 24000)), "1.001000");
    }
}
