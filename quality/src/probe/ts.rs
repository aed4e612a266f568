//! MPEG transport stream: PAT/PMT, the first PES of each elementary stream (codec headers, start
//! PTS) and the PES timestamps near the end of the file (durations, as FFmpeg estimates them).
//! Reads at most [`HEAD_BYTES`] from the start and [`TAIL_BYTES`] from the end.

use super::bytes::{FormatError, Input, Result, MAX_STREAMS};
use super::codecs;
use super::model::{fourcc, rescale, Format, MediaType, Rational, Stream};

pub const HEAD_BYTES: u64 = 5 << 20;
pub const TAIL_BYTES: u64 = 1 << 20;
const PACKET: usize = 188;

pub fn is_ts(head: &[u8]) -> bool {
    head.len() > 2 * PACKET && head[0] == 0x47 && head[PACKET] == 0x47 && head[2 * PACKET] == 0x47
}

struct Es {
    pid: u16,
    stream_type: u8,
    registration: Option<[u8; 4]>,
    language: Option<String>,
    ac3_descriptor: bool,
    first_pes: Vec<u8>,
    first_pts: Option<i64>,
    pes_done: bool,
    max_pts: Option<i64>,
}

/// Payload of one TS packet (after the adaptation field), with its PID and start flag.
fn payload(p: &[u8]) -> Option<(u16, bool, &[u8])> {
    if p.len() < PACKET || p[0] != 0x47 {
        return None;
    }
    let pid = u16::from(p[1] & 0x1f) << 8 | u16::from(p[2]);
    let pusi = p[1] & 0x40 != 0;
    let afc = (p[3] >> 4) & 3;
    let mut off = 4;
    if afc & 2 != 0 {
        off += 1 + usize::from(p[4]);
    }
    if afc & 1 == 0 || off > PACKET {
        return None;
    }
    Some((pid, pusi, &p[off..PACKET]))
}

fn pes_pts(pes: &[u8]) -> Option<i64> {
    if pes.get(..3)? != [0, 0, 1] || pes.get(7)? & 0x80 == 0 {
        return None;
    }
    let b = pes.get(9..14)?;
    Some(
        (i64::from(b[0] >> 1 & 7) << 30)
            | (i64::from(b[1]) << 22)
            | (i64::from(b[2] >> 1) << 15)
            | (i64::from(b[3]) << 7)
            | i64::from(b[4] >> 1),
    )
}

fn pes_es(pes: &[u8]) -> &[u8] {
    let hl = pes.get(8).map_or(0, |h| usize::from(*h));
    pes.get(9 + hl..).unwrap_or_default()
}

/// Section payload (after pointer_field) of a PSI packet.
fn section(pl: &[u8]) -> Option<&[u8]> {
    let ptr = usize::from(*pl.first()?);
    let s = pl.get(1 + ptr..)?;
    let len = usize::from(u16::from_be_bytes([*s.get(1)?, *s.get(2)?]) & 0xfff);
    s.get(..3 + len)
}

/// Extradata FFmpeg's extract_extradata filter takes from a keyframe: every parameter set NAL
/// (SPS/PPS, and VPS for HEVC) with a 3-byte start code. A NAL's raw bytes run to the next
/// 3-byte start code, so they keep the zero that begins a following 4-byte one.
fn param_sets_len(es: &[u8], hevc: bool) -> usize {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= es.len() {
        if es[i..i + 3] == [0, 0, 1] {
            starts.push(i);
            i += 3;
        } else {
            i += 1;
        }
    }
    let is_ps = |t: u8| {
        if hevc {
            (32..=34).contains(&t)
        } else {
            t == 7 || t == 8
        }
    };
    let mut total = 0;
    for (k, &s) in starts.iter().enumerate() {
        let Some(&h) = es.get(s + 3) else { continue };
        let t = if hevc { (h >> 1) & 0x3f } else { h & 0x1f };
        if is_ps(t) {
            let end = starts.get(k + 1).copied().unwrap_or(es.len());
            total += 3 + (end - (s + 3));
        }
    }
    total
}

pub fn parse(input: &Input, filename: &str) -> Result<(Format, Vec<Stream>)> {
    let len = input.len();
    let head = input.read_upto(0, HEAD_BYTES, "transport stream")?;
    let mut pmt_pid = None;
    let mut es: Vec<Es> = Vec::new();
    let mut have_pmt = false;
    for p in head.chunks_exact(PACKET) {
        let Some((pid, pusi, pl)) = payload(p) else {
            continue;
        };
        if pid == 0 && pusi && pmt_pid.is_none() {
            if let Some(s) = section(pl) {
                let body = s.get(8..s.len().saturating_sub(4)).unwrap_or_default();
                for e in body.chunks_exact(4) {
                    let program = u16::from_be_bytes([e[0], e[1]]);
                    if program != 0 {
                        pmt_pid = Some(u16::from(e[2] & 0x1f) << 8 | u16::from(e[3]));
                        break;
                    }
                }
            }
            continue;
        }
        if Some(pid) == pmt_pid && pusi && !have_pmt {
            have_pmt = true;
            let Some(s) = section(pl) else { continue };
            if s.len() < 16 {
                continue;
            }
            let end = s.len().saturating_sub(4);
            let info_len = usize::from(u16::from_be_bytes([s[10], s[11]]) & 0xfff);
            let mut i = 12 + info_len;
            while i + 5 <= end {
                if es.len() >= MAX_STREAMS {
                    return Err(FormatError::limit(
                        "PMT",
                        0,
                        "too many streams",
                        MAX_STREAMS as u64,
                    ));
                }
                let stream_type = s[i];
                let epid = u16::from(s[i + 1] & 0x1f) << 8 | u16::from(s[i + 2]);
                let dlen = usize::from(u16::from_be_bytes([s[i + 3], s[i + 4]]) & 0xfff);
                let mut e = Es {
                    pid: epid,
                    stream_type,
                    registration: None,
                    language: None,
                    ac3_descriptor: false,
                    first_pes: Vec::new(),
                    first_pts: None,
                    pes_done: false,
                    max_pts: None,
                };
                let mut d = i + 5;
                let dend = (i + 5 + dlen).min(end);
                while d + 2 <= dend {
                    let (tag, l) = (s[d], usize::from(s[d + 1]));
                    let body = s.get(d + 2..(d + 2 + l).min(dend)).unwrap_or_default();
                    match tag {
                        0x05 if body.len() >= 4 => {
                            e.registration = Some([body[0], body[1], body[2], body[3]])
                        }
                        0x0a if body.len() >= 3 => {
                            e.language = Some(String::from_utf8_lossy(&body[..3]).to_string())
                        }
                        0x6a => e.ac3_descriptor = true,
                        _ => {}
                    }
                    d += 2 + l;
                }
                es.push(e);
                i += 5 + dlen;
            }
            continue;
        }
        if let Some(e) = es.iter_mut().find(|e| e.pid == pid) {
            if pusi {
                if e.first_pts.is_none() {
                    e.first_pts = pes_pts(pl);
                    e.first_pes.extend_from_slice(pl);
                } else {
                    e.pes_done = true;
                }
            } else if e.first_pts.is_some() && !e.pes_done && e.first_pes.len() < (1 << 20) {
                e.first_pes.extend_from_slice(pl);
            }
        }
    }
    if es.is_empty() {
        return Err(FormatError::invalid(
            "transport stream",
            0,
            "no PMT with elementary streams",
        ));
    }
    // Durations: the largest PTS of each stream near the end of the file.
    let tail_start = len.saturating_sub(TAIL_BYTES);
    let tail = input.read_upto(tail_start, TAIL_BYTES, "transport stream tail")?;
    let skip = tail
        .iter()
        .take(PACKET)
        .position(|b| *b == 0x47)
        .unwrap_or(0);
    for p in tail[skip..].chunks_exact(PACKET) {
        let Some((pid, true, pl)) = payload(p) else {
            continue;
        };
        if let (Some(e), Some(pts)) = (es.iter_mut().find(|e| e.pid == pid), pes_pts(pl)) {
            e.max_pts = Some(e.max_pts.map_or(pts, |m: i64| m.max(pts)));
        }
    }
    let mut out = Vec::new();
    let mut ends = Vec::new();
    for e in &es {
        let data = pes_es(&e.first_pes);
        let reg = e.registration;
        let (media, codec) = match (e.stream_type, reg.as_ref().map(|r| &r[..])) {
            (0x1b, _) => (MediaType::Video, "h264"),
            (0x24, _) | (_, Some(b"HEVC")) => (MediaType::Video, "hevc"),
            (0x01, _) => (MediaType::Video, "mpeg1video"),
            (0x02, _) => (MediaType::Video, "mpeg2video"),
            (0x10, _) => (MediaType::Video, "mpeg4"),
            (0x03 | 0x04, _) => (MediaType::Audio, "mp2"),
            (0x0f, _) => (MediaType::Audio, "aac"),
            (0x81, _) | (_, Some(b"AC-3")) => (MediaType::Audio, "ac3"),
            (0x06, _) if e.ac3_descriptor => (MediaType::Audio, "ac3"),
            (0x87, _) => (MediaType::Audio, "eac3"),
            _ => continue,
        };
        let mut st = Stream::new(media);
        st.set_codec(codec);
        st.id = Some(u32::from(e.pid));
        st.codec_tag = match reg {
            Some(r) if matches!(&r, b"HEVC" | b"AC-3") => fourcc(&r),
            _ => u32::from(e.stream_type),
        };
        st.time_base = Rational::new(1, 90000);
        st.start_pts = e.first_pts;
        let mut frame_ticks = 0i64;
        match codec {
            "h264" | "hevc" => {
                let hevc = codec == "hevc";
                for nal in codecs::annexb_nals(data) {
                    let t = if hevc {
                        nal.first().map(|b| (b >> 1) & 0x3f)
                    } else {
                        nal.first().map(|b| b & 0x1f)
                    };
                    match (hevc, t) {
                        (false, Some(7)) => {
                            let _ = codecs::apply_h264_sps(&mut st, nal);
                            break;
                        }
                        (true, Some(33)) => {
                            let _ = codecs::apply_hevc_sps(&mut st, nal);
                            break;
                        }
                        _ => {}
                    }
                }
                st.extradata_size = param_sets_len(data, hevc);
                if hevc {
                    st.video.field_order = None;
                } else {
                    st.private = vec![("is_avc", "false".into()), ("nal_length_size", "0".into())];
                }
            }
            "mpeg2video" | "mpeg1video" => {
                codecs::apply_mpeg2_headers(&mut st, data);
                st.extradata_size = codecs::mpeg2_extradata_len(data).unwrap_or(0);
                st.video.coded_width = 0;
                st.video.coded_height = 0;
            }
            "aac" => {
                // ADTS header.
                if data.len() >= 7 && data[0] == 0xff && data[1] & 0xf0 == 0xf0 {
                    let profile = data[2] >> 6;
                    let sf = (data[2] >> 2) & 0xf;
                    let ch = ((data[2] & 1) << 2) | (data[3] >> 6);
                    let asc = [(profile + 1) << 3 | sf >> 1, (sf & 1) << 7 | ch << 3];
                    let _ = codecs::apply_aac_asc(&mut st, &asc);
                    st.extradata_size = 0;
                }
                frame_ticks = 1024;
            }
            "mp2" => {
                let _ = codecs::apply_mpa_header(&mut st, data);
                frame_ticks = if st.codec_name == "mp1" { 384 } else { 1152 };
            }
            "ac3" | "eac3" => {
                let _ = codecs::apply_ac3_frame(&mut st, data);
                frame_ticks = 1536;
            }
            _ => {}
        }
        if media == MediaType::Audio && st.audio.sample_rate > 0 {
            frame_ticks = rescale(frame_ticks, 90000, i64::from(st.audio.sample_rate));
        }
        if media == MediaType::Video {
            if let Some(r) = st.video_rate.take() {
                st.r_frame_rate = r;
                st.avg_frame_rate = r;
                frame_ticks = rescale(90000, r.den, r.num);
            }
        }
        if let (Some(s), Some(m)) = (e.first_pts, e.max_pts) {
            st.duration_ts = Some(m + frame_ticks - s);
            ends.push((s, m + frame_ticks));
        }
        if let Some(l) = &e.language {
            st.tag("language", l.clone());
        }
        out.push(st);
    }
    let start = ends.iter().map(|e| e.0).min();
    let end = ends.iter().map(|e| e.1).max();
    let mut format = Format {
        filename: filename.to_string(),
        nb_programs: 1,
        format_name: "mpegts",
        format_long_name: "MPEG-TS (MPEG-2 Transport Stream)",
        size: len,
        probe_score: 50,
        ..Format::default()
    };
    format.start_time_us = start.map(|s| rescale(s, 1_000_000, 90000));
    if let (Some(s), Some(e)) = (start, end) {
        let d = rescale(e, 1_000_000, 90000) - rescale(s, 1_000_000, 90000);
        format.duration_us = Some(d);
        if d > 0 {
            format.bit_rate = Some((len as f64 * 8.0 * 1e6 / d as f64) as i64);
        }
    }
    Ok((format, out))
}
