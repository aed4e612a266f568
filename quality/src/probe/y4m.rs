//! YUV4MPEG2: a text header line, then "FRAME" lines each followed by one raw picture.

use super::bytes::{FormatError, Input, Result};
use super::model::{fourcc, Format, MediaType, Rational, Stream};

pub fn is_y4m(head: &[u8]) -> bool {
    head.starts_with(b"YUV4MPEG2 ")
}

/// Longest header line accepted.
const MAX_HEADER: u64 = 4096;

pub fn parse(input: &Input, filename: &str) -> Result<(Format, Vec<Stream>)> {
    let head = input.read_upto(0, MAX_HEADER, "YUV4MPEG2 header")?;
    let end = head.iter().position(|b| *b == b'\n').ok_or_else(|| {
        FormatError::invalid(
            "YUV4MPEG2 header",
            0,
            format!("no end of line in the first {MAX_HEADER} bytes"),
        )
    })?;
    let line = String::from_utf8_lossy(&head[10..end]).to_string();
    let (mut w, mut h, mut fps, mut sar) = (0u32, 0u32, (25i64, 1i64), None);
    let mut interlace = None;
    let mut colorspace = "420jpeg".to_string();
    let mut range = None;
    for tok in line.split(' ').filter(|t| !t.is_empty()) {
        let mut chars = tok.chars();
        let k = chars.next().map(String::from).unwrap_or_default();
        let v = chars.as_str();
        let ratio = |v: &str| -> Option<(i64, i64)> {
            let (a, b) = v.split_once(':')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        };
        match k.as_str() {
            "W" => w = v.parse().unwrap_or(0),
            "H" => h = v.parse().unwrap_or(0),
            "F" => fps = ratio(v).unwrap_or(fps),
            "A" => sar = ratio(v),
            "I" => interlace = v.chars().next(),
            "C" => colorspace = v.to_string(),
            "X" if v.starts_with("COLORRANGE=") => {
                range = Some(v["COLORRANGE=".len()..].to_string())
            }
            _ => {}
        }
    }
    if w == 0 || h == 0 || fps.0 <= 0 || fps.1 <= 0 {
        return Err(FormatError::invalid(
            "YUV4MPEG2 header",
            0,
            format!("bad size or rate in '{line}'"),
        ));
    }
    let (pix, loc, tag): (&str, Option<&str>, [u8; 4]) = match colorspace.as_str() {
        "420jpeg" | "420" => ("yuv420p", Some("center"), *b"I420"),
        "420mpeg2" => ("yuv420p", Some("left"), *b"I420"),
        "420paldv" => ("yuv420p", Some("topleft"), *b"I420"),
        "422" => ("yuv422p", None, *b"Y42B"),
        "444" => ("yuv444p", None, *b"Y444"),
        "mono" => ("gray", None, *b"Y800"),
        "420p10" => ("yuv420p10le", None, [b'Y', b'3', 11, 10]),
        "422p10" => ("yuv422p10le", None, [b'Y', b'3', 10, 10]),
        "444p10" => ("yuv444p10le", None, [b'Y', b'3', 0, 10]),
        other => {
            return Err(FormatError::invalid(
                "YUV4MPEG2 header",
                0,
                format!("unsupported colour space '{other}'"),
            ))
        }
    };
    let (cw, ch, bytes) = match pix {
        "yuv420p" | "yuv420p10le" => (2, 2, if pix.ends_with("le") { 2 } else { 1 }),
        "yuv422p" | "yuv422p10le" => (2, 1, if pix.ends_with("le") { 2 } else { 1 }),
        "gray" => (0, 0, 1),
        _ => (1, 1, if pix.ends_with("le") { 2 } else { 1 }),
    };
    let luma = u64::from(w) * u64::from(h);
    let chroma = if cw == 0 {
        0
    } else {
        2 * u64::from(w.div_ceil(cw)) * u64::from(h.div_ceil(ch))
    };
    let frame = (luma + chroma) * bytes;
    let data = input.len() - (end as u64 + 1);
    let frames = data / (frame + 6);

    let mut st = Stream::new(MediaType::Video);
    st.set_codec("rawvideo");
    st.codec_tag = fourcc(&tag);
    let v = &mut st.video;
    v.width = w;
    v.height = h;
    v.coded_width = w;
    v.coded_height = h;
    v.container_sar = sar.map(|(n, d)| Rational::new(n, d));
    v.pix_fmt = Some(pix.into());
    v.chroma_location = loc;
    v.color_range = match range.as_deref() {
        Some("LIMITED") => Some("tv"),
        Some("FULL") => Some("pc"),
        _ => None,
    };
    v.field_order = match interlace {
        Some('p') => Some("progressive"),
        Some('t') => Some("tt"),
        Some('b') => Some("bb"),
        _ => None,
    };
    let rate = Rational::reduced(fps.0, fps.1, i32::MAX as i64);
    st.r_frame_rate = rate;
    st.avg_frame_rate = rate;
    st.time_base = Rational::new(rate.den, rate.num);
    st.start_pts = Some(0);
    st.duration_ts = Some(frames as i64);
    let duration_us = super::model::rescale(frames as i64, 1_000_000 * rate.den, rate.num);
    let format = Format {
        filename: filename.to_string(),
        format_name: "yuv4mpegpipe",
        format_long_name: "YUV4MPEG pipe",
        start_time_us: Some(0),
        duration_us: Some(duration_us),
        size: input.len(),
        bit_rate: (duration_us > 0)
            .then(|| (input.len() as f64 * 8.0 * 1e6 / duration_us as f64) as i64),
        probe_score: 100,
        ..Format::default()
    };
    Ok((format, vec![st]))
}
