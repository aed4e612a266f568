//! FLV: the file header, the onMetaData script tag (AMF0) and the first audio/video tags, with the
//! stream fields FFmpeg's flv demuxer derives from them. Reads at most [`MAX_SCAN_BYTES`].

use super::bytes::{FormatError, Input, Result};
use super::codecs;
use super::model::{rescale, Format, MediaType, Rational, Stream};

/// Bytes of tags read to find each stream's first packets.
pub const MAX_SCAN_BYTES: u64 = 4 << 20;
/// AMF nesting accepted in onMetaData.
const MAX_AMF_DEPTH: usize = 16;

pub fn is_flv(head: &[u8]) -> bool {
    head.starts_with(b"FLV\x01")
}

#[derive(Debug, Clone)]
enum Amf {
    Num(f64),
    Bool,
    Str(String),
    Other,
}

fn amf_value(d: &[u8], pos: &mut usize, depth: usize, out: &mut Vec<(String, Amf)>) -> Option<Amf> {
    if depth > MAX_AMF_DEPTH {
        return None;
    }
    let t = *d.get(*pos)?;
    *pos += 1;
    let v = match t {
        0 => {
            let b = d.get(*pos..*pos + 8)?;
            *pos += 8;
            Amf::Num(f64::from_be_bytes(b.try_into().ok()?))
        }
        1 => {
            let b = *d.get(*pos)?;
            *pos += 1;
            let _ = b;
            Amf::Bool
        }
        2 => {
            let n = usize::from(u16::from_be_bytes([*d.get(*pos)?, *d.get(*pos + 1)?]));
            let s = d.get(*pos + 2..*pos + 2 + n)?;
            *pos += 2 + n;
            Amf::Str(String::from_utf8_lossy(s).to_string())
        }
        3 | 8 => {
            if t == 8 {
                *pos += 4;
            }
            loop {
                let n = usize::from(u16::from_be_bytes([*d.get(*pos)?, *d.get(*pos + 1)?]));
                let k = String::from_utf8_lossy(d.get(*pos + 2..*pos + 2 + n)?).to_string();
                *pos += 2 + n;
                if n == 0 && *d.get(*pos)? == 9 {
                    *pos += 1;
                    break;
                }
                let v = amf_value(d, pos, depth + 1, out)?;
                if depth == 0 {
                    out.push((k, v));
                }
            }
            Amf::Other
        }
        10 => {
            let n = u32::from_be_bytes(d.get(*pos..*pos + 4)?.try_into().ok()?) as usize;
            *pos += 4;
            for _ in 0..n.min(d.len()) {
                amf_value(d, pos, depth + 1, out)?;
            }
            Amf::Other
        }
        11 => {
            *pos += 10;
            Amf::Other
        }
        5 | 6 => Amf::Other,
        _ => return None,
    };
    Some(v)
}

struct FlvStream {
    media: MediaType,
    first_ts: Option<i64>,
    header: Option<Vec<u8>>,
    first_frame: Option<Vec<u8>>,
    codec_id: u8,
    audio_flags: u8,
}

pub fn parse(input: &Input, filename: &str) -> Result<(Format, Vec<Stream>)> {
    let len = input.len();
    let head = input.read(0, 9, "FLV header")?;
    let data_offset = u64::from(u32::from_be_bytes([head[5], head[6], head[7], head[8]]));
    let scan = input.read_upto(data_offset, MAX_SCAN_BYTES, "FLV tags")?;
    let mut pos = 4usize;
    let mut meta: Vec<(String, Amf)> = Vec::new();
    let mut streams: Vec<FlvStream> = Vec::new();
    while pos + 11 <= scan.len() {
        let t = scan[pos] & 0x1f;
        let size = usize::from(scan[pos + 1]) << 16
            | usize::from(scan[pos + 2]) << 8
            | usize::from(scan[pos + 3]);
        let ts = (i64::from(scan[pos + 7]) << 24)
            | (i64::from(scan[pos + 4]) << 16)
            | (i64::from(scan[pos + 5]) << 8)
            | i64::from(scan[pos + 6]);
        let body_start = pos + 11;
        let Some(body) = scan.get(body_start..body_start + size) else {
            break;
        };
        match t {
            18 => {
                let mut p = 0;
                if let Some(Amf::Str(name)) = amf_value(body, &mut p, 1, &mut Vec::new()) {
                    if name == "onMetaData" {
                        let _ = amf_value(body, &mut p, 0, &mut meta);
                    }
                }
            }
            8 | 9 => {
                let media = if t == 9 {
                    MediaType::Video
                } else {
                    MediaType::Audio
                };
                let idx = match streams.iter().position(|s| s.media == media) {
                    Some(i) => i,
                    None => {
                        streams.push(FlvStream {
                            media,
                            first_ts: None,
                            header: None,
                            first_frame: None,
                            codec_id: body
                                .first()
                                .map_or(0, |b| if t == 9 { b & 0xf } else { b >> 4 }),
                            audio_flags: body.first().copied().unwrap_or(0),
                        });
                        streams.len() - 1
                    }
                };
                let s = &mut streams[idx];
                if media == MediaType::Video && s.codec_id == 7 && body.len() >= 5 {
                    let cts =
                        ((i32::from(body[2]) << 16 | i32::from(body[3]) << 8 | i32::from(body[4]))
                            << 8)
                            >> 8;
                    if body[1] == 0 {
                        s.header.get_or_insert_with(|| body[5..].to_vec());
                    } else if s.first_ts.is_none() {
                        s.first_ts = Some(ts + i64::from(cts));
                        s.first_frame = Some(body[5..].to_vec());
                    }
                } else if media == MediaType::Audio && s.codec_id == 10 && body.len() >= 2 {
                    if body[1] == 0 {
                        s.header.get_or_insert_with(|| body[2..].to_vec());
                    } else if s.first_ts.is_none() {
                        s.first_ts = Some(ts);
                        s.first_frame = Some(body[2..].to_vec());
                    }
                } else if s.first_ts.is_none() {
                    s.first_ts = Some(ts);
                    s.first_frame = Some(body.get(1..).unwrap_or_default().to_vec());
                }
            }
            _ => {}
        }
        if streams.len() >= 2 && streams.iter().all(|s| s.first_ts.is_some()) {
            break;
        }
        pos = body_start + size + 4;
    }
    if streams.is_empty() {
        return Err(FormatError::invalid(
            "FLV",
            data_offset,
            "no audio or video tags",
        ));
    }
    let num = |k: &str| {
        meta.iter().find(|(n, _)| n == k).and_then(|(_, v)| {
            if let Amf::Num(x) = v {
                Some(*x)
            } else {
                None
            }
        })
    };
    let mut out = Vec::new();
    for s in &streams {
        let mut st = Stream::new(s.media);
        st.time_base = Rational::new(1, 1000);
        st.start_pts = s.first_ts;
        match s.media {
            MediaType::Video => {
                let codec = match s.codec_id {
                    7 => "h264",
                    12 => "hevc",
                    _ => "none",
                };
                st.set_codec(codec);
                if let (Some(h), "h264") = (&s.header, codec) {
                    codecs::apply_avcc(&mut st, h);
                }
                if let Some(fr) = num("framerate").filter(|f| *f > 0.0) {
                    let r = Rational::reduced((fr * 1001.0).round() as i64, 1001, i32::MAX as i64);
                    st.r_frame_rate = r;
                    st.avg_frame_rate = r;
                }
                if let Some(b) = num("videodatarate").filter(|b| *b > 0.0) {
                    st.bit_rate = Some((b * 1024.0) as i64);
                }
            }
            _ => {
                let codec = match s.codec_id {
                    10 => "aac",
                    2 | 14 => "mp3",
                    0 | 3 => {
                        if s.audio_flags & 2 != 0 {
                            "pcm_s16le"
                        } else {
                            "pcm_u8"
                        }
                    }
                    _ => "none",
                };
                st.set_codec(codec);
                match (codec, &s.header, &s.first_frame) {
                    ("aac", Some(h), _) => {
                        let _ = codecs::apply_aac_asc(&mut st, h);
                    }
                    ("mp3", _, Some(f)) => {
                        let _ = codecs::apply_mpa_header(&mut st, f);
                    }
                    _ => {}
                }
                if let Some(b) = num("audiodatarate").filter(|b| *b > 0.0) {
                    st.bit_rate = Some((b * 1024.0) as i64);
                }
            }
        }
        out.push(st);
    }
    let mut format = Format {
        filename: filename.to_string(),
        format_name: "flv",
        format_long_name: "FLV (Flash Video)",
        size: len,
        probe_score: 100,
        ..Format::default()
    };
    for (k, v) in &meta {
        if let Amf::Str(s) = v {
            if !matches!(k.as_str(), "") {
                format.tags.push((k.clone(), s.clone()));
            }
        }
    }
    format.duration_us = num("duration").map(|d| (d * 1e6) as i64);
    format.start_time_us = out
        .iter()
        .filter_map(|s| s.start_pts.map(|p| rescale(p, 1000, 1)))
        .min();
    if let Some(d) = format.duration_us.filter(|d| *d > 0) {
        format.bit_rate = Some((len as f64 * 8.0 * 1e6 / d as f64) as i64);
    }
    Ok((format, out))
}
