//! AVI (RIFF): hdrl (avih, strl: strh/strf/vprp), INFO tags, movi and idx1, with the stream
//! fields FFmpeg's avi demuxer derives from them.
//!
//! Limits: the header list at most [`MAX_HEADER_BYTES`], idx1 at most [`MAX_INDEX_BYTES`];
//! at most [`MAX_STREAMS`] streams.

use super::bytes::{Cursor, FormatError, Input, Result, MAX_STREAMS};
use super::codecs;
use super::model::{av_reduce, fourcc, Format, MediaType, Rational, Stream};

pub const MAX_HEADER_BYTES: u64 = 4 << 20;
pub const MAX_INDEX_BYTES: u64 = 32 << 20;

pub fn is_avi(head: &[u8]) -> bool {
    head.starts_with(b"RIFF") && head.get(8..12) == Some(b"AVI ")
}

#[derive(Default)]
struct AviStream {
    kind: [u8; 4],
    handler: [u8; 4],
    scale: u32,
    rate: u32,
    start: u32,
    length: u32,
    sample_size: u32,
    strf: Vec<u8>,
    vprp_aspect: Option<(u32, u32)>,
    name: Option<String>,
    /// (total bytes, entries, position of the last chunk, timestamp of the last entry)
    index_bytes: u64,
    index_entries: u64,
    index_last_pos: u64,
    index_last_ts: u64,
    first_chunk: Option<(u64, u32)>,
}

fn chunks(d: &[u8], base: u64, what: &str) -> Result<Vec<([u8; 4], usize, usize)>> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 8 <= d.len() {
        let mut c = Cursor::new(&d[pos..], base + pos as u64, what);
        let mut id = [0u8; 4];
        id.copy_from_slice(c.bytes(4)?);
        let size = c.u32le()? as usize;
        let body = pos + 8;
        let end = body
            .checked_add(size)
            .filter(|e| *e <= d.len())
            .ok_or_else(|| FormatError::Truncated {
                what: format!("chunk '{}' in {what}", String::from_utf8_lossy(&id)),
                offset: base + pos as u64,
                needed: size as u64,
                available: (d.len() - body) as u64,
            })?;
        out.push((id, body, end));
        pos = end + (size & 1);
    }
    Ok(out)
}

pub fn parse(input: &Input, filename: &str) -> Result<(Format, Vec<Stream>)> {
    let len = input.len();
    let mut offset = 12u64;
    let mut hdrl = None;
    let mut info_tags = Vec::new();
    let mut movi: Option<(u64, u64)> = None;
    let mut idx1 = None;
    let mut count = 0;
    while offset + 8 <= len {
        count += 1;
        if count > 100_000 {
            return Err(FormatError::limit(
                "RIFF",
                offset,
                "too many chunks",
                100_000,
            ));
        }
        let h = input.read(offset, 12.min(len - offset), "RIFF chunk header")?;
        let size = u64::from(u32::from_le_bytes([h[4], h[5], h[6], h[7]]));
        let body = offset + 8;
        let avail = len - body;
        match (&h[0..4], h.get(8..12)) {
            (b"LIST", Some(b"hdrl")) => {
                if size > MAX_HEADER_BYTES {
                    return Err(FormatError::limit(
                        "LIST hdrl",
                        offset,
                        format!("{size} bytes"),
                        MAX_HEADER_BYTES,
                    ));
                }
                hdrl = Some((
                    body + 4,
                    input.read(
                        body + 4,
                        size.saturating_sub(4).min(avail.saturating_sub(4)),
                        "LIST hdrl",
                    )?,
                ));
            }
            (b"LIST", Some(b"INFO")) => {
                let d = input.read(
                    body + 4,
                    size.saturating_sub(4)
                        .min(avail.saturating_sub(4))
                        .min(1 << 20),
                    "LIST INFO",
                )?;
                for (id, s, e) in chunks(&d, body + 4, "INFO")? {
                    let key = match &id {
                        b"ISFT" => "software",
                        b"INAM" => "title",
                        b"IART" => "artist",
                        b"ICMT" => "comment",
                        b"ICOP" => "copyright",
                        b"ICRD" => "date",
                        b"IGNR" => "genre",
                        _ => continue,
                    };
                    let v = &d[s..e];
                    let v = &v[..v.iter().position(|b| *b == 0).unwrap_or(v.len())];
                    info_tags.push((key.to_string(), String::from_utf8_lossy(v).to_string()));
                }
            }
            (b"LIST", Some(b"movi")) => movi = Some((body + 4, size.saturating_sub(4))),
            (b"idx1", _) => {
                if size > MAX_INDEX_BYTES {
                    return Err(FormatError::limit(
                        "idx1",
                        offset,
                        format!("{size} bytes"),
                        MAX_INDEX_BYTES,
                    ));
                }
                idx1 = Some(input.read(body, size.min(avail), "idx1")?);
            }
            _ => {}
        }
        offset = body.saturating_add(size).saturating_add(size & 1);
    }
    let (hoff, hdrl) = hdrl.ok_or_else(|| FormatError::invalid("AVI", 12, "no LIST hdrl"))?;
    let mut streams: Vec<AviStream> = Vec::new();
    for (id, s, e) in chunks(&hdrl, hoff, "hdrl")? {
        if &id != b"LIST" || hdrl.get(s..s + 4) != Some(b"strl") {
            continue;
        }
        if streams.len() >= MAX_STREAMS {
            return Err(FormatError::limit(
                "hdrl",
                hoff + s as u64,
                "too many streams",
                MAX_STREAMS as u64,
            ));
        }
        let mut st = AviStream::default();
        let d = &hdrl[s + 4..e];
        for (id, s2, e2) in chunks(d, hoff + s as u64 + 4, "strl")? {
            let body = &d[s2..e2];
            let mut c = Cursor::new(body, hoff + (s + 4 + s2) as u64, "strh");
            match &id {
                b"strh" => {
                    st.kind.copy_from_slice(c.bytes(4)?);
                    st.handler.copy_from_slice(c.bytes(4)?);
                    c.skip(4 + 2 + 2 + 4)?;
                    st.scale = c.u32le()?;
                    st.rate = c.u32le()?;
                    st.start = c.u32le()?;
                    st.length = c.u32le()?;
                    c.skip(8)?;
                    st.sample_size = c.u32le()?;
                }
                b"strf" => st.strf = body.to_vec(),
                // VIDEO_PROP_HEADER: aspect (den, num as u16) at 20, active width/height at 24.
                b"vprp" if body.len() >= 36 => {
                    let le = |i: usize| {
                        u32::from_le_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]])
                    };
                    let aspect = le(20);
                    let (num, den) = (aspect >> 16, aspect & 0xffff);
                    let (w, h) = (le(24), le(28));
                    st.vprp_aspect = Some((num.saturating_mul(h), den.saturating_mul(w)));
                }
                b"strn" => {
                    let v = &body[..body.iter().position(|b| *b == 0).unwrap_or(body.len())];
                    st.name = Some(String::from_utf8_lossy(v).to_string());
                }
                _ => {}
            }
        }
        streams.push(st);
    }
    // idx1: per stream sizes, count, last position; and the first chunk of each stream.
    if let (Some(idx), Some((movi_off, _))) = (&idx1, movi) {
        let mut ts = vec![0u64; streams.len()];
        for e in idx.chunks_exact(16) {
            let n = match (e[0], e[1]) {
                (a @ b'0'..=b'9', b @ b'0'..=b'9') => {
                    usize::from(a - b'0') * 10 + usize::from(b - b'0')
                }
                _ => continue,
            };
            let Some(st) = streams.get_mut(n) else {
                continue;
            };
            let pos = u64::from(u32::from_le_bytes([e[8], e[9], e[10], e[11]]));
            let size = u32::from_le_bytes([e[12], e[13], e[14], e[15]]);
            // Offsets are relative to 'movi' (or absolute in some writers).
            let abs = if pos >= movi_off {
                pos
            } else {
                movi_off - 4 + pos
            };
            if st.first_chunk.is_none() {
                st.first_chunk = Some((abs + 8, size));
            }
            st.index_last_ts = ts[n];
            ts[n] += if st.sample_size > 0 {
                u64::from(size) / u64::from(st.sample_size.max(1))
            } else {
                1
            };
            st.index_bytes += u64::from(size);
            st.index_entries += 1;
            st.index_last_pos = abs;
        }
    }
    let mut out = Vec::new();
    for a in &streams {
        let media = match &a.kind {
            b"vids" => MediaType::Video,
            b"auds" => MediaType::Audio,
            b"txts" => MediaType::Subtitle,
            _ => MediaType::Data,
        };
        let mut st = Stream::new(media);
        let tb = Rational::reduced(
            i64::from(a.scale.max(1)),
            i64::from(a.rate.max(1)),
            i32::MAX as i64,
        );
        st.time_base = tb;
        st.start_pts = Some(i64::from(a.start));
        if a.length > 0 {
            st.nb_frames = Some(u64::from(a.length));
        }
        if a.sample_size == 0 {
            st.duration_ts = Some(i64::from(a.length));
        }
        let first = match a.first_chunk {
            Some((pos, size)) if size > 0 => input
                .read_upto(pos, u64::from(size).min(1 << 20), "first chunk")
                .ok(),
            _ => None,
        };
        match media {
            MediaType::Video => {
                let mut c = Cursor::new(&a.strf, 0, "strf");
                c.skip(4)?;
                let w = c.u32le()? as i32;
                let h = c.u32le()? as i32;
                c.skip(4)?;
                let mut comp = [0u8; 4];
                comp.copy_from_slice(c.bytes(4)?);
                let extradata = a.strf.get(40..).unwrap_or_default();
                st.codec_tag = fourcc(&comp);
                let (w, h) = (w.unsigned_abs(), h.unsigned_abs());
                st.video.width = w;
                st.video.height = h;
                st.video.coded_width = w;
                st.video.coded_height = h;
                let rate = Rational::reduced(
                    i64::from(a.rate),
                    i64::from(a.scale.max(1)),
                    i32::MAX as i64,
                );
                st.r_frame_rate = rate;
                st.avg_frame_rate = rate;
                let codec = match &comp.to_ascii_uppercase()[..] {
                    b"FMP4" | b"XVID" | b"DIVX" | b"DX50" | b"MP4V" => "mpeg4",
                    b"MJPG" | b"AVRN" => "mjpeg",
                    b"H264" | b"X264" | b"AVC1" => "h264",
                    b"FFV1" => "ffv1",
                    b"I420" | b"IYUV" | b"YV12" | b"\0\0\0\0" | b"Y42B" | b"UYVY" | b"YUY2" => {
                        "rawvideo"
                    }
                    b"MPG2" => "mpeg2video",
                    _ => "none",
                };
                st.set_codec(codec);
                st.extradata_size = extradata.len();
                match codec {
                    "mpeg4" => {
                        // Without global headers the VOL travels in the first frame, and
                        // FFmpeg's parser splits it off as extradata.
                        let config = match (extradata.is_empty(), &first) {
                            (true, Some(f)) => &f[..codecs::mpeg4_extradata_len(f).unwrap_or(0)],
                            _ => extradata,
                        };
                        codecs::apply_mpeg4_config(&mut st, config);
                        st.extradata_size = config.len();
                    }
                    "mjpeg" => {
                        if let Some(f) = &first {
                            let _ = codecs::apply_mjpeg_frame(&mut st, f);
                        }
                        st.video.field_order = None;
                    }
                    "ffv1" => {
                        if let Some(f) = &first {
                            let _ = codecs::apply_ffv1_frame(&mut st, f);
                        }
                    }
                    "rawvideo" => {
                        st.video.pix_fmt = Some(
                            match &comp {
                                b"UYVY" => "uyvy422",
                                b"YUY2" => "yuyv422",
                                b"Y42B" => "yuv422p",
                                _ => "yuv420p",
                            }
                            .into(),
                        );
                    }
                    _ => {}
                }
                if let Some((x, y)) = a.vprp_aspect.filter(|(x, y)| *x > 0 && *y > 0) {
                    let (n, d) = av_reduce(i64::from(x), i64::from(y), i32::MAX as i64);
                    st.video.container_sar = Some(Rational::new(n, d));
                }
            }
            MediaType::Audio => {
                let mut c = Cursor::new(&a.strf, 0, "strf");
                let tag = c.u16le()?;
                let ch = u32::from(c.u16le()?);
                let rate = c.u32le()?;
                let avg = c.u32le()?;
                c.skip(2)?;
                let bits = c.u16le().unwrap_or(0);
                st.codec_tag = u32::from(tag);
                st.audio.channels = ch;
                st.audio.sample_rate = rate;
                let extra = if a.strf.len() > 18 {
                    a.strf.len() - 18
                } else {
                    0
                };
                st.extradata_size = extra;
                let codec = match (tag, bits) {
                    (1, 8) => "pcm_u8",
                    (1, 24) => "pcm_s24le",
                    (1, 32) => "pcm_s32le",
                    (1, _) => "pcm_s16le",
                    (3, _) => "pcm_f32le",
                    (0x55, _) => "mp3",
                    (0x50, _) => "mp2",
                    (0x2000, _) => "ac3",
                    (0xff | 0x1610, _) => "aac",
                    _ => "none",
                };
                st.set_codec(codec);
                if codec.starts_with("pcm_") {
                    codecs::apply_pcm(&mut st);
                } else {
                    st.audio.sample_fmt = Some("fltp");
                    if let Some(f) = &first {
                        match codec {
                            "mp3" | "mp2" => {
                                let _ = codecs::apply_mpa_header(&mut st, f);
                            }
                            "ac3" => {
                                let _ = codecs::apply_ac3_frame(&mut st, f);
                            }
                            _ => {}
                        }
                    }
                    if avg > 0 {
                        st.bit_rate = Some(i64::from(avg) * 8);
                    }
                }
            }
            _ => {}
        }
        if let Some(n) = &a.name {
            st.tag("title", n.clone());
        }
        out.push(st);
    }
    // avidec's calculate_bitrate: only when the index covers the file densely.
    let lensum: u64 = streams.iter().map(|s| s.index_bytes).sum();
    let maxpos = streams.iter().map(|s| s.index_last_pos).max().unwrap_or(0);
    if maxpos >= len * 9 / 10 && lensum * 9 / 10 <= maxpos && lensum >= maxpos * 9 / 10 {
        for (a, st) in streams.iter().zip(out.iter_mut()) {
            if a.index_entries < 2 || st.bit_rate.is_some_and(|b| b > 0) {
                continue;
            }
            let duration = a.index_last_ts as i64;
            if duration > 0 {
                let br = super::model::rescale(
                    8 * a.index_bytes as i64,
                    st.time_base.den,
                    duration * st.time_base.num,
                );
                if br > 0 {
                    st.bit_rate = Some(br);
                }
            }
        }
    }
    let duration_us = out
        .iter()
        .filter_map(|s| {
            let d = s.duration_ts.or(s.nb_frames.map(|n| n as i64))?;
            Some(super::model::rescale(
                d,
                1_000_000 * s.time_base.num,
                s.time_base.den,
            ))
        })
        .max();
    let format = Format {
        filename: filename.to_string(),
        format_name: "avi",
        format_long_name: "AVI (Audio Video Interleaved)",
        start_time_us: Some(0),
        duration_us,
        size: len,
        bit_rate: duration_us
            .filter(|d| *d > 0)
            .map(|d| (len as f64 * 8.0 * 1e6 / d as f64) as i64),
        probe_score: 100,
        tags: info_tags,
        ..Format::default()
    };
    Ok((format, out))
}
