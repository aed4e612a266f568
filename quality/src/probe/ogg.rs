//! Ogg: pages, the header packets of each logical stream (Vorbis, Opus, FLAC, Theora) and the
//! last page's granule position, with the stream fields FFmpeg's ogg demuxer derives from them.
//! Reads at most [`MAX_HEADER_BYTES`] from the start and [`TAIL_BYTES`] from the end.

use super::bytes::{FormatError, Input, Result, MAX_STREAMS};
use super::codecs;
use super::model::{rescale, Format, MediaType, Rational, Stream};

pub const MAX_HEADER_BYTES: u64 = 1 << 20;
pub const TAIL_BYTES: u64 = 256 << 10;

pub fn is_ogg(head: &[u8]) -> bool {
    head.starts_with(b"OggS")
}

struct Page<'a> {
    header_type: u8,
    granule: i64,
    serial: u32,
    /// (packet bytes, packet complete)
    segments: Vec<(&'a [u8], bool)>,
    len: usize,
}

fn page(d: &[u8]) -> Option<Page<'_>> {
    if !d.starts_with(b"OggS") || d.len() < 27 {
        return None;
    }
    let n = usize::from(d[26]);
    let lacing = d.get(27..27 + n)?;
    let mut pos = 27 + n;
    let mut segments = Vec::new();
    let mut start = pos;
    for (i, l) in lacing.iter().enumerate() {
        pos += usize::from(*l);
        if *l < 255 || i == n - 1 {
            segments.push((d.get(start..pos)?, *l < 255));
            start = pos;
        }
    }
    Some(Page {
        header_type: d[5],
        granule: i64::from_le_bytes(d[6..14].try_into().ok()?),
        serial: u32::from_le_bytes(d[14..18].try_into().ok()?),
        segments,
        len: pos,
    })
}

#[derive(Default)]
struct Logical {
    serial: u32,
    packets: Vec<Vec<u8>>,
    partial: Vec<u8>,
    last_granule: i64,
}

fn comments(st: &mut Stream, packet: &[u8], skip: usize) {
    // Vorbis comment: vendor string, then count and KEY=value strings (little-endian lengths).
    let le = |d: &[u8], p: usize| {
        d.get(p..p + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let Some(vlen) = le(packet, skip) else { return };
    let mut p = skip + 4 + vlen;
    let Some(n) = le(packet, p) else { return };
    p += 4;
    for _ in 0..n.min(1024) {
        let Some(l) = le(packet, p) else { return };
        let Some(c) = packet.get(p + 4..p + 4 + l) else {
            return;
        };
        p += 4 + l;
        let c = String::from_utf8_lossy(c);
        if let Some((k, v)) = c.split_once('=') {
            st.tag(&k.to_ascii_lowercase(), v);
        }
    }
}

pub fn parse(input: &Input, filename: &str) -> Result<(Format, Vec<Stream>)> {
    let len = input.len();
    let head = input.read_upto(0, MAX_HEADER_BYTES, "Ogg pages")?;
    let mut streams: Vec<Logical> = Vec::new();
    let mut pos = 0;
    while let Some(p) = page(&head[pos..]) {
        if p.header_type & 2 != 0 && !streams.iter().any(|s| s.serial == p.serial) {
            if streams.len() >= MAX_STREAMS {
                return Err(FormatError::limit(
                    "Ogg",
                    pos as u64,
                    "too many logical streams",
                    MAX_STREAMS as u64,
                ));
            }
            streams.push(Logical {
                serial: p.serial,
                ..Logical::default()
            });
        }
        if let Some(s) = streams.iter_mut().find(|s| s.serial == p.serial) {
            for (seg, complete) in &p.segments {
                if s.packets.len() >= 3 {
                    break;
                }
                s.partial.extend_from_slice(seg);
                if *complete {
                    s.packets.push(std::mem::take(&mut s.partial));
                }
            }
        }
        pos += p.len;
        if streams.iter().all(|s| s.packets.len() >= 3) && !streams.is_empty() {
            break;
        }
    }
    if streams.is_empty() {
        return Err(FormatError::invalid(
            "Ogg",
            0,
            "no beginning-of-stream page",
        ));
    }
    // The last granule position of each stream, from the tail.
    let tail_start = len.saturating_sub(TAIL_BYTES);
    let tail = input.read_upto(tail_start, TAIL_BYTES, "Ogg tail")?;
    let mut i = 0;
    while i + 4 <= tail.len() {
        if &tail[i..i + 4] == b"OggS" {
            if let Some(p) = page(&tail[i..]) {
                if let Some(s) = streams.iter_mut().find(|s| s.serial == p.serial) {
                    if p.granule >= 0 {
                        s.last_granule = p.granule;
                    }
                }
                i += p.len.max(1);
                continue;
            }
        }
        i += 1;
    }
    let mut out = Vec::new();
    for s in &streams {
        let Some(id) = s.packets.first() else {
            continue;
        };
        let mut st;
        if id.starts_with(b"\x01vorbis") {
            st = Stream::new(MediaType::Audio);
            st.set_codec("vorbis");
            let _ = codecs::apply_vorbis_id(&mut st, id);
            let lace = |n: usize| n / 255 + 1;
            let mut sizes: Vec<usize> = s.packets.iter().map(Vec::len).collect();
            // FFmpeg keeps only the vendor string of the comment header in the extradata.
            if let Some(c) = s.packets.get(1).filter(|c| c.len() > 10) {
                let vendor = u32::from_le_bytes([c[7], c[8], c[9], c[10]]) as usize;
                let kept = vendor.saturating_add(16);
                if kept < c.len() {
                    sizes[1] = kept;
                }
            }
            if sizes.len() == 3 {
                st.extradata_size =
                    1 + lace(sizes[0]) + lace(sizes[1]) + sizes.iter().sum::<usize>();
            }
            st.time_base = Rational::new(1, i64::from(st.audio.sample_rate.max(1)));
            st.duration_ts = Some(s.last_granule);
            if let Some(c) = s.packets.get(1) {
                comments(&mut st, c, 7);
            }
        } else if id.starts_with(b"OpusHead") {
            st = Stream::new(MediaType::Audio);
            st.set_codec("opus");
            let _ = codecs::apply_opus_head(&mut st, id);
            st.time_base = Rational::new(1, 48000);
            st.duration_ts = Some(s.last_granule);
            if let Some(c) = s.packets.get(1) {
                comments(&mut st, c, 8);
            }
        } else if id.starts_with(b"\x7fFLAC") {
            st = Stream::new(MediaType::Audio);
            st.set_codec("flac");
            let _ = codecs::apply_flac_streaminfo(&mut st, id.get(17..).unwrap_or_default());
            st.time_base = Rational::new(1, i64::from(st.audio.sample_rate.max(1)));
            st.duration_ts = Some(s.last_granule);
            if let Some(c) = s.packets.get(1) {
                comments(&mut st, c, 4);
            }
        } else if id.starts_with(b"\x80theora") && id.len() >= 42 {
            st = Stream::new(MediaType::Video);
            st.set_codec("theora");
            let be24 = |p: usize| {
                u32::from(id[p]) << 16 | u32::from(id[p + 1]) << 8 | u32::from(id[p + 2])
            };
            let be32 = |p: usize| u32::from_be_bytes([id[p], id[p + 1], id[p + 2], id[p + 3]]);
            let (mbw, mbh) = (
                u32::from(u16::from_be_bytes([id[10], id[11]])),
                u32::from(u16::from_be_bytes([id[12], id[13]])),
            );
            let v = &mut st.video;
            v.coded_width = mbw * 16;
            v.coded_height = mbh * 16;
            v.width = be24(14);
            v.height = be24(17);
            let (frn, frd) = (be32(22), be32(26));
            let (parn, pard) = (be24(30), be24(33));
            if parn > 0 && pard > 0 {
                v.codec_sar = Some(Rational::new(i64::from(parn), i64::from(pard)));
            }
            let pf = (id[41] >> 3) & 3;
            let shift = u32::from(u16::from_be_bytes([id[40], id[41]]) >> 5 & 0x1f);
            v.pix_fmt = Some(
                match pf {
                    2 => "yuv422p",
                    3 => "yuv444p",
                    _ => "yuv420p",
                }
                .into(),
            );
            v.chroma_location = Some("center");
            st.extradata_size = s.packets.iter().map(|p| p.len() + 2).sum();
            if frn > 0 && frd > 0 {
                st.time_base = Rational::reduced(i64::from(frd), i64::from(frn), i32::MAX as i64);
                st.r_frame_rate =
                    Rational::reduced(i64::from(frn), i64::from(frd), i32::MAX as i64);
            }
            let g = s.last_granule;
            st.duration_ts = Some((g >> shift) + (g & ((1 << shift) - 1)));
            if let Some(c) = s.packets.get(1) {
                comments(&mut st, c, 7);
            }
        } else {
            continue;
        }
        st.start_pts = Some(0);
        out.push(st);
    }
    let duration_us = out
        .iter()
        .filter_map(|s| {
            s.duration_ts
                .map(|d| rescale(d, 1_000_000 * s.time_base.num, s.time_base.den))
        })
        .max();
    let format = Format {
        filename: filename.to_string(),
        format_name: "ogg",
        format_long_name: "Ogg",
        start_time_us: Some(0),
        duration_us,
        size: len,
        bit_rate: duration_us
            .filter(|d| *d > 0)
            .map(|d| (len as f64 * 8.0 * 1e6 / d as f64) as i64),
        probe_score: 100,
        ..Format::default()
    };
    Ok((format, out))
}
