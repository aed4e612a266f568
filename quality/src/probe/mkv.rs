//! Matroska / WebM: an EBML reader and the stream fields FFmpeg's matroska demuxer derives from
//! Info, Tracks, Tags and the first blocks of the first clusters.
//!
//! Limits: each metadata element (Info, Tracks, Tags) at most [`MAX_ELEMENT_BYTES`]; clusters are
//! read only until every track's first block is seen, at most [`MAX_CLUSTERS_READ`] of them and
//! [`MAX_CLUSTER_BYTES`] each; nesting at most [`MAX_DEPTH`]; at most [`MAX_STREAMS`] tracks.

use super::bytes::{FormatError, Input, Result, MAX_STREAMS};
use super::codecs;
use super::model::{fourcc, rescale, Format, MediaType, Rational, Stream};

pub const MAX_ELEMENT_BYTES: u64 = 16 << 20;
pub const MAX_CLUSTER_BYTES: u64 = 8 << 20;
pub const MAX_CLUSTERS_READ: usize = 16;
pub const MAX_DEPTH: usize = 16;
/// Most top-level elements walked (a two-hour file has a few thousand clusters).
pub const MAX_TOP_LEVEL: usize = 1_000_000;

pub fn is_mkv(head: &[u8]) -> bool {
    head.starts_with(&[0x1a, 0x45, 0xdf, 0xa3])
}

struct El<'a> {
    id: u32,
    body: &'a [u8],
    offset: u64,
}

/// Reads an element header: (id, size or None when unknown, header length).
fn header(d: &[u8], at: u64) -> Result<(u32, Option<u64>, usize)> {
    let bad = |r: &str| FormatError::invalid("EBML element header", at, r.to_string());
    let first = *d.first().ok_or_else(|| bad("empty"))?;
    let idlen = first.leading_zeros() as usize + 1;
    if idlen > 4 {
        return Err(bad("invalid element ID"));
    }
    let idb = d.get(..idlen).ok_or_else(|| bad("truncated ID"))?;
    let id = idb.iter().fold(0u32, |a, b| (a << 8) | u32::from(*b));
    let s0 = *d.get(idlen).ok_or_else(|| bad("truncated size"))?;
    let slen = s0.leading_zeros() as usize + 1;
    if slen > 8 {
        return Err(bad("invalid element size"));
    }
    let sb = d
        .get(idlen..idlen + slen)
        .ok_or_else(|| bad("truncated size"))?;
    let mut v = u64::from(s0 & (0xffu16 >> slen) as u8);
    for b in &sb[1..] {
        v = (v << 8) | u64::from(*b);
    }
    let unknown = v == (1u64 << (7 * slen)) - 1;
    Ok((id, if unknown { None } else { Some(v) }, idlen + slen))
}

fn elements<'a>(d: &'a [u8], base: u64, parent: &str) -> Result<Vec<El<'a>>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < d.len() {
        let at = base + pos as u64;
        let (id, size, h) = header(&d[pos..], at)?;
        let left = d.len() - pos - h;
        let size = match size {
            Some(s) if s as usize <= left && s <= left as u64 => s as usize,
            // Unknown or overlong sizes inside a buffer: take what is there (a cut-off cluster).
            _ if id == 0x1f43b675 || id == 0x18538067 => left,
            Some(s) => {
                return Err(FormatError::Truncated {
                    what: format!("element 0x{id:X} in {parent}"),
                    offset: at,
                    needed: s,
                    available: left as u64,
                })
            }
            None => left,
        };
        out.push(El {
            id,
            body: &d[pos + h..pos + h + size],
            offset: at + h as u64,
        });
        pos += h + size;
    }
    Ok(out)
}

fn uint(b: &[u8]) -> u64 {
    b.iter().take(8).fold(0u64, |a, x| (a << 8) | u64::from(*x))
}

fn float(b: &[u8]) -> f64 {
    match b.len() {
        4 => f64::from(f32::from_bits(uint(b) as u32)),
        8 => f64::from_bits(uint(b)),
        _ => 0.0,
    }
}

fn text(b: &[u8]) -> String {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).to_string()
}

#[derive(Default)]
struct Track {
    number: u64,
    uid: u64,
    kind: u64,
    default: bool,
    forced: bool,
    hearing_impaired: bool,
    visual_impaired: bool,
    original: bool,
    comment: bool,
    descriptions: bool,
    name: Option<String>,
    language: String,
    codec_id: String,
    private: Vec<u8>,
    codec_delay_ns: u64,
    default_duration_ns: u64,
    width: u32,
    height: u32,
    display: Option<(u64, u64)>,
    display_unit: u64,
    interlaced: u64,
    field_order: Option<u64>,
    colour: Colour,
    rate: f64,
    channels: u32,
    bit_depth: u32,
    first_block: Option<(i64, Vec<u8>)>,
    packets: u64,
}

#[derive(Default)]
struct Colour {
    matrix: Option<u64>,
    range: Option<u64>,
    transfer: Option<u64>,
    primaries: Option<u64>,
    siting: (Option<u64>, Option<u64>),
}

pub fn parse(input: &Input, filename: &str) -> Result<(Format, Vec<Stream>)> {
    parse_counting(input, filename, false)
}

/// [`parse`], and with `count_packets` every cluster is read to count each track's packets
/// (laced frames each count), like ffprobe's `-count_packets`. Time is linear in the file size;
/// memory stays bounded by [`MAX_CLUSTER_BYTES`].
pub fn parse_counting(
    input: &Input,
    filename: &str,
    count_packets: bool,
) -> Result<(Format, Vec<Stream>)> {
    let len = input.len();
    let head = input.read_upto(0, 64, "EBML header")?;
    let (id, size, h) = header(&head, 0)?;
    if id != 0x1a45dfa3 {
        return Err(FormatError::Unrecognized("no EBML header".into()));
    }
    let ebml_size = size.ok_or_else(|| FormatError::invalid("EBML header", 0, "unknown size"))?;
    let ebml = input.read(h as u64, ebml_size.min(4096), "EBML header")?;
    let mut doctype = String::from("matroska");
    for e in elements(&ebml, h as u64, "EBML header")? {
        if e.id == 0x4282 {
            doctype = text(e.body);
        }
    }
    if doctype != "matroska" && doctype != "webm" {
        return Err(FormatError::Unrecognized(format!(
            "EBML document type '{doctype}'"
        )));
    }
    let mut offset = h as u64 + ebml_size;
    // Find the Segment.
    let seg = input.read_upto(offset, 16, "Segment header")?;
    let (sid, ssize, sh) = header(&seg, offset)?;
    if sid != 0x18538067 {
        return Err(FormatError::invalid(
            "Segment",
            offset,
            format!("expected Segment, found element 0x{sid:X}"),
        ));
    }
    let seg_start = offset + sh as u64;
    let seg_end = ssize.map_or(len, |s| seg_start.saturating_add(s).min(len));
    offset = seg_start;

    let mut timescale_ns = 1_000_000u64;
    let mut duration = None;
    let mut title = None;
    let mut tracks: Vec<Track> = Vec::new();
    let mut tags_seen = false;
    let mut tag_list: Vec<(Option<u64>, String, String)> = Vec::new();
    let mut seek_tags = None;
    let mut clusters_read = 0;
    let mut count = 0;
    while offset + 2 <= seg_end {
        count += 1;
        if count > MAX_TOP_LEVEL {
            return Err(FormatError::limit(
                "Segment",
                offset,
                "too many top-level elements",
                MAX_TOP_LEVEL as u64,
            ));
        }
        let hb = input.read_upto(offset, 12, "element header")?;
        let (id, size, h) = match header(&hb, offset) {
            Ok(x) => x,
            Err(_) if offset > seg_start => break,
            Err(e) => return Err(e),
        };
        let body_off = offset + h as u64;
        let avail = seg_end.saturating_sub(body_off);
        let want = size.unwrap_or(avail);
        let read_el = |limit: u64, what: &str| -> Result<Vec<u8>> {
            if want > limit {
                return Err(FormatError::limit(
                    what,
                    offset,
                    format!("element of {want} bytes"),
                    limit,
                ));
            }
            input.read(body_off, want.min(avail), what)
        };
        match id {
            0x1549a966 => {
                let d = read_el(MAX_ELEMENT_BYTES, "Info")?;
                for e in elements(&d, body_off, "Info")? {
                    match e.id {
                        0x2ad7b1 => timescale_ns = uint(e.body).max(1),
                        0x4489 => duration = Some(float(e.body)),
                        0x7ba9 => title = Some(text(e.body)),
                        _ => {}
                    }
                }
            }
            0x1654ae6b => {
                let d = read_el(MAX_ELEMENT_BYTES, "Tracks")?;
                for e in elements(&d, body_off, "Tracks")? {
                    if e.id == 0xae {
                        if tracks.len() >= MAX_STREAMS {
                            return Err(FormatError::limit(
                                "Tracks",
                                e.offset,
                                "too many tracks",
                                MAX_STREAMS as u64,
                            ));
                        }
                        tracks.push(parse_track(&e)?);
                    }
                }
            }
            0x1254c367 => {
                let d = read_el(MAX_ELEMENT_BYTES, "Tags")?;
                parse_tags(&d, body_off, &mut tag_list)?;
                tags_seen = true;
            }
            0x114d9b74 => {
                let d = read_el(MAX_ELEMENT_BYTES, "SeekHead")?;
                for seek in elements(&d, body_off, "SeekHead")?
                    .iter()
                    .filter(|e| e.id == 0x4dbb)
                {
                    let kids = elements(seek.body, seek.offset, "Seek")?;
                    let sid = kids.iter().find(|k| k.id == 0x53ab).map(|k| uint(k.body));
                    let pos = kids.iter().find(|k| k.id == 0x53ac).map(|k| uint(k.body));
                    if let (Some(0x1254c367), Some(p)) = (sid, pos) {
                        seek_tags = Some(seg_start.saturating_add(p));
                    }
                }
            }
            0x1f43b675 => {
                let need = tracks.iter().any(|t| t.first_block.is_none());
                if (need && clusters_read < MAX_CLUSTERS_READ) || count_packets {
                    clusters_read += 1;
                    let d = input.read_transient(
                        body_off,
                        want.min(avail).min(MAX_CLUSTER_BYTES),
                        "Cluster",
                    )?;
                    read_cluster(&d, body_off, &mut tracks);
                }
                if size.is_none() {
                    break;
                }
                if !count_packets && (!need || clusters_read >= MAX_CLUSTERS_READ) {
                    // The rest is media; the Tags (if any) are reached through the SeekHead.
                    if seek_tags.is_some() && !tags_seen {
                        break;
                    }
                }
            }
            _ => {}
        }
        match size {
            Some(s) => offset = body_off.saturating_add(s),
            None => break,
        }
    }
    if !tags_seen {
        if let Some(pos) = seek_tags.filter(|p| *p + 2 < len) {
            let hb = input.read_upto(pos, 12, "Tags header")?;
            if let Ok((0x1254c367, Some(size), h)) = header(&hb, pos) {
                if size <= MAX_ELEMENT_BYTES {
                    let d = input.read(pos + h as u64, size.min(len - pos - h as u64), "Tags")?;
                    parse_tags(&d, pos + h as u64, &mut tag_list)?;
                }
            }
        }
    }
    if tracks.is_empty() {
        return Err(FormatError::invalid("Segment", seg_start, "no tracks"));
    }

    let tb = Rational::reduced(timescale_ns as i64, 1_000_000_000, i32::MAX as i64);
    let mut format = Format {
        filename: filename.to_string(),
        format_name: "matroska,webm",
        format_long_name: "Matroska / WebM",
        size: len,
        probe_score: 100,
        ..Format::default()
    };
    if let Some(t) = title {
        format.tags.push(("title".into(), t));
    }
    for (target, k, v) in &tag_list {
        if target.is_none() {
            format.tags.push((k.clone(), v.clone()));
        }
    }
    let mut streams = Vec::new();
    for t in &tracks {
        let Some(mut st) = build_stream(t) else {
            continue;
        };
        if count_packets {
            st.nb_read_packets = Some(t.packets);
        }
        st.time_base = tb;
        if let Some((ts, _)) = &t.first_block {
            let delay = rescale(t.codec_delay_ns as i64, tb.den, tb.num * 1_000_000_000);
            st.start_pts = Some(ts - delay);
        }
        if st.media_type == MediaType::Video && t.default_duration_ns > 0 {
            let r = Rational::reduced(1_000_000_000, t.default_duration_ns as i64, 30000);
            st.avg_frame_rate = r;
            st.r_frame_rate = r;
        }
        if t.language != "und" && !t.language.is_empty() {
            st.tag("language", t.language.clone());
        }
        if let Some(n) = &t.name {
            st.tags.insert(0, ("title".into(), n.clone()));
        }
        for (target, k, v) in &tag_list {
            if *target == Some(t.uid) {
                st.tag(k, v.clone());
            }
        }
        streams.push(st);
    }
    if let Some(d) = duration {
        format.duration_us = Some((d * timescale_ns as f64 / 1000.0) as i64);
    }
    format.start_time_us = streams
        .iter()
        .filter_map(|s| {
            s.start_pts
                .map(|p| rescale(p, 1_000_000 * s.time_base.num, s.time_base.den))
        })
        .min();
    if let Some(d) = format.duration_us.filter(|d| *d > 0) {
        format.bit_rate = Some((len as f64 * 8.0 * 1e6 / d as f64) as i64);
    }
    Ok((format, streams))
}

fn parse_track(e: &El) -> Result<Track> {
    let mut t = Track {
        default: true,
        language: "eng".into(),
        ..Track::default()
    };
    for k in elements(e.body, e.offset, "TrackEntry")? {
        match k.id {
            0xd7 => t.number = uint(k.body),
            0x73c5 => t.uid = uint(k.body),
            0x83 => t.kind = uint(k.body),
            0x88 => t.default = uint(k.body) != 0,
            0x55aa => t.forced = uint(k.body) != 0,
            0x55ab => t.hearing_impaired = uint(k.body) != 0,
            0x55ac => t.visual_impaired = uint(k.body) != 0,
            0x55ad => t.descriptions = uint(k.body) != 0,
            0x55ae => t.original = uint(k.body) != 0,
            0x55af => t.comment = uint(k.body) != 0,
            0x536e => t.name = Some(text(k.body)),
            0x22b59c => t.language = text(k.body),
            0x86 => t.codec_id = text(k.body),
            0x63a2 => t.private = k.body.to_vec(),
            0x56aa => t.codec_delay_ns = uint(k.body),
            0x23e383 => t.default_duration_ns = uint(k.body),
            0xe0 => {
                for v in elements(k.body, k.offset, "Video")? {
                    match v.id {
                        0xb0 => t.width = uint(v.body) as u32,
                        0xba => t.height = uint(v.body) as u32,
                        0x54b0 => t.display = Some((uint(v.body), t.display.map_or(0, |d| d.1))),
                        0x54ba => t.display = Some((t.display.map_or(0, |d| d.0), uint(v.body))),
                        0x54b2 => t.display_unit = uint(v.body),
                        0x9a => t.interlaced = uint(v.body),
                        0x9d => t.field_order = Some(uint(v.body)),
                        0x55b0 => {
                            for c in elements(v.body, v.offset, "Colour")? {
                                match c.id {
                                    0x55b1 => t.colour.matrix = Some(uint(c.body)),
                                    0x55b9 => t.colour.range = Some(uint(c.body)),
                                    0x55ba => t.colour.transfer = Some(uint(c.body)),
                                    0x55bb => t.colour.primaries = Some(uint(c.body)),
                                    0x55b7 => t.colour.siting.0 = Some(uint(c.body)),
                                    0x55b8 => t.colour.siting.1 = Some(uint(c.body)),
                                    _ => {}
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            0xe1 => {
                for a in elements(k.body, k.offset, "Audio")? {
                    match a.id {
                        0xb5 => t.rate = float(a.body),
                        0x9f => t.channels = uint(a.body) as u32,
                        0x6264 => t.bit_depth = uint(a.body) as u32,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(t)
}

fn parse_tags(d: &[u8], base: u64, out: &mut Vec<(Option<u64>, String, String)>) -> Result<()> {
    for tag in elements(d, base, "Tags")?.iter().filter(|e| e.id == 0x7373) {
        let kids = elements(tag.body, tag.offset, "Tag")?;
        let mut target = None;
        if let Some(t) = kids.iter().find(|k| k.id == 0x63c0) {
            for x in elements(t.body, t.offset, "Targets")? {
                if x.id == 0x63c5 {
                    target = Some(uint(x.body));
                }
            }
        }
        for s in kids.iter().filter(|k| k.id == 0x67c8) {
            simple_tag(s, target, "", out, 0)?;
        }
    }
    Ok(())
}

fn simple_tag(
    s: &El,
    target: Option<u64>,
    prefix: &str,
    out: &mut Vec<(Option<u64>, String, String)>,
    depth: usize,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(FormatError::limit(
            "SimpleTag",
            s.offset,
            "nested too deep",
            MAX_DEPTH as u64,
        ));
    }
    let kids = elements(s.body, s.offset, "SimpleTag")?;
    let name = kids
        .iter()
        .find(|k| k.id == 0x45a3)
        .map(|k| text(k.body))
        .unwrap_or_default();
    let key = if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    };
    if let Some(v) = kids.iter().find(|k| k.id == 0x4487) {
        out.push((target, key.clone(), text(v.body)));
    }
    for k in kids.iter().filter(|k| k.id == 0x67c8) {
        simple_tag(k, target, &key, out, depth + 1)?;
    }
    Ok(())
}

fn read_cluster(d: &[u8], base: u64, tracks: &mut [Track]) {
    let Ok(els) = elements(d, base, "Cluster") else {
        return;
    };
    let mut cluster_ts = 0i64;
    for e in els {
        let block = match e.id {
            0xe7 => {
                cluster_ts = uint(e.body) as i64;
                continue;
            }
            0xa3 => e.body,
            0xa0 => match elements(e.body, e.offset, "BlockGroup") {
                Ok(k) => match k.into_iter().find(|b| b.id == 0xa1) {
                    Some(b) => b.body,
                    None => continue,
                },
                Err(_) => continue,
            },
            _ => continue,
        };
        let Some(&b0) = block.first() else { continue };
        let n = b0.leading_zeros() as usize + 1;
        if n > 8 || block.len() < n + 3 {
            continue;
        }
        let mut num = u64::from(b0 & (0xffu16 >> n) as u8);
        for b in &block[1..n] {
            num = (num << 8) | u64::from(*b);
        }
        let rel = i64::from(i16::from_be_bytes([block[n], block[n + 1]]));
        let flags = block[n + 2];
        // Laced blocks hold (lace count + 1) frames; each is a packet to FFmpeg.
        let frames = if flags & 0x06 != 0 {
            u64::from(block.get(n + 3).copied().unwrap_or(0)) + 1
        } else {
            1
        };
        if let Some(t) = tracks.iter_mut().find(|t| t.number == num) {
            t.packets += frames;
        }
        if let Some(t) = tracks
            .iter_mut()
            .find(|t| t.number == num && t.first_block.is_none())
        {
            // Laced blocks carry several frames; the first frame's bytes suffice for headers
            // only without lacing.
            let data = if flags & 0x06 == 0 {
                block[n + 3..].to_vec()
            } else {
                Vec::new()
            };
            t.first_block = Some((cluster_ts + rel, data));
        }
    }
}

fn build_stream(t: &Track) -> Option<Stream> {
    let media = match t.kind {
        1 => MediaType::Video,
        2 => MediaType::Audio,
        17 => MediaType::Subtitle,
        _ => return None,
    };
    let mut st = Stream::new(media);
    st.disposition[0] = t.default;
    st.disposition[2] = t.original;
    st.disposition[3] = t.comment;
    st.disposition[6] = t.forced;
    st.disposition[7] = t.hearing_impaired;
    st.disposition[8] = t.visual_impaired;
    st.disposition[13] = t.descriptions;
    let first = t
        .first_block
        .as_ref()
        .map(|(_, d)| d.as_slice())
        .filter(|d| !d.is_empty());
    let id = t.codec_id.as_str();
    match media {
        MediaType::Video => {
            let v = &mut st.video;
            v.width = t.width;
            v.height = t.height;
            v.coded_width = t.width;
            v.coded_height = t.height;
            // Matroska's DisplayWidth/Height default to the pixel size.
            let display = t.display.unwrap_or((0, 0));
            let display = (
                if display.0 == 0 {
                    u64::from(t.width)
                } else {
                    display.0
                },
                if display.1 == 0 {
                    u64::from(t.height)
                } else {
                    display.1
                },
            );
            if let Some((dw, dh)) =
                Some(display).filter(|d| d.0 > 0 && d.1 > 0 && t.display_unit == 0)
            {
                let (n, d) = super::model::av_reduce(
                    i64::from(t.height) * dw as i64,
                    i64::from(t.width) * dh as i64,
                    255,
                );
                v.container_sar = Some(Rational::new(n, d));
            }
            let codec = match id {
                "V_MPEG4/ISO/AVC" => "h264",
                "V_MPEGH/ISO/HEVC" => "hevc",
                "V_AV1" => "av1",
                "V_VP8" => "vp8",
                "V_VP9" => "vp9",
                "V_MPEG2" => "mpeg2video",
                "V_MPEG1" => "mpeg1video",
                "V_MPEG4/ISO/ASP" | "V_MPEG4/ISO/SP" | "V_MPEG4/ISO/AP" => "mpeg4",
                "V_PRORES" => "prores",
                "V_MJPEG" => "mjpeg",
                "V_THEORA" => "theora",
                "V_FFV1" => "ffv1",
                "V_UNCOMPRESSED" => "rawvideo",
                "V_MS/VFW/FOURCC" => match t.private.get(16..20) {
                    Some(b"FFV1") => "ffv1",
                    Some(b"MJPG") => "mjpeg",
                    Some(b"FMP4") | Some(b"XVID") | Some(b"DIVX") | Some(b"DX50") => "mpeg4",
                    _ => "rawvideo",
                },
                _ => "none",
            };
            st.set_codec(codec);
            match codec {
                "h264" => codecs::apply_avcc(&mut st, &t.private),
                "hevc" => codecs::apply_hvcc(&mut st, &t.private),
                "av1" => codecs::apply_av1c(&mut st, &t.private),
                "vp9" => {
                    if let Some(f) = first {
                        let _ = codecs::apply_vp9_frame(&mut st, f);
                    }
                }
                "vp8" => {
                    if let Some(f) = first {
                        let _ = codecs::apply_vp8_frame(&mut st, f);
                    }
                }
                "mpeg2video" | "mpeg1video" => {
                    st.extradata_size = t.private.len();
                    if t.private.is_empty() {
                        st.extradata_size =
                            first.and_then(codecs::mpeg2_extradata_len).unwrap_or(0);
                    }
                    let mut all = t.private.clone();
                    if let Some(f) = first {
                        all.extend_from_slice(&f[..f.len().min(4096)]);
                    }
                    codecs::apply_mpeg2_headers(&mut st, &all);
                    st.video.coded_width = 0;
                    st.video.coded_height = 0;
                }
                "mpeg4" => {
                    st.extradata_size = t.private.len();
                    codecs::apply_mpeg4_config(&mut st, &t.private);
                }
                "mjpeg" => {
                    if let Some(f) = first {
                        let _ = codecs::apply_mjpeg_frame(&mut st, f);
                    }
                }
                "ffv1" => {
                    st.video.color_range = Some("tv");
                    st.video.field_order = Some("progressive");
                    if let Some(f) = first {
                        let _ = codecs::apply_ffv1_frame(&mut st, f);
                    }
                }
                _ => {}
            }
            if id == "V_MS/VFW/FOURCC" && t.private.len() >= 40 {
                let tag = [t.private[16], t.private[17], t.private[18], t.private[19]];
                st.codec_tag = fourcc(&tag);
                st.extradata_size = t.private.len() - 40;
            }
            let c = &t.colour;
            if let Some(r) = c.range {
                st.video.color_range = match r {
                    1 => Some("tv"),
                    2 => Some("pc"),
                    _ => st.video.color_range,
                };
            }
            if let Some(m) = c.matrix.filter(|m| *m != 2) {
                st.video.color_space = codecs::color_space(m as u32);
            }
            if let Some(m) = c.transfer.filter(|m| *m != 2) {
                st.video.color_transfer = codecs::color_transfer(m as u32);
            }
            if let Some(m) = c.primaries.filter(|m| *m != 2) {
                st.video.color_primaries = codecs::color_primaries(m as u32);
            }
            if t.interlaced == 2 {
                st.video.field_order = Some("progressive");
            } else if t.interlaced == 1 {
                st.video.field_order = match t.field_order {
                    Some(0) => Some("progressive"),
                    Some(1) => Some("tt"),
                    Some(6) => Some("bb"),
                    Some(9) => Some("tb"),
                    Some(14) => Some("bt"),
                    _ => st.video.field_order,
                };
            }
        }
        MediaType::Audio => {
            st.audio.sample_rate = t.rate as u32;
            st.audio.channels = t.channels.max(1);
            let codec = match id {
                "A_AAC" => "aac",
                "A_MPEG/L3" => "mp3",
                "A_MPEG/L2" => "mp2",
                "A_AC3" => "ac3",
                "A_EAC3" => "eac3",
                "A_OPUS" => "opus",
                "A_VORBIS" => "vorbis",
                "A_FLAC" => "flac",
                "A_PCM/INT/LIT" => match t.bit_depth {
                    8 => "pcm_u8",
                    24 => "pcm_s24le",
                    32 => "pcm_s32le",
                    _ => "pcm_s16le",
                },
                "A_PCM/INT/BIG" => match t.bit_depth {
                    24 => "pcm_s24be",
                    32 => "pcm_s32be",
                    _ => "pcm_s16be",
                },
                "A_PCM/FLOAT/IEEE" => "pcm_f32le",
                s if s.starts_with("A_AAC/") => "aac",
                _ => "none",
            };
            st.set_codec(codec);
            match codec {
                "aac" => {
                    let _ = codecs::apply_aac_asc(&mut st, &t.private);
                }
                "opus" => {
                    let _ = codecs::apply_opus_head(&mut st, &t.private);
                }
                "vorbis" => {
                    st.extradata_size = t.private.len();
                    if let Some(id) = xiph_first_packet(&t.private) {
                        let _ = codecs::apply_vorbis_id(&mut st, id);
                    }
                    st.bit_rate = None;
                }
                "flac" if t.private.starts_with(b"fLaC") => {
                    let _ = codecs::apply_flac_streaminfo(
                        &mut st,
                        t.private.get(8..).unwrap_or_default(),
                    );
                }
                "ac3" | "eac3" => {
                    if let Some(f) = first {
                        let _ = codecs::apply_ac3_frame(&mut st, f);
                    }
                }
                "mp3" | "mp2" => {
                    if let Some(f) = first {
                        let _ = codecs::apply_mpa_header(&mut st, f);
                    }
                }
                c if c.starts_with("pcm_") => codecs::apply_pcm(&mut st),
                _ => {}
            }
        }
        MediaType::Subtitle => {
            let codec = match id {
                "S_TEXT/UTF8" => "subrip",
                "S_TEXT/ASS" | "S_ASS" | "S_TEXT/SSA" | "S_SSA" => "ass",
                "S_TEXT/WEBVTT" => "webvtt",
                _ => "none",
            };
            st.set_codec(codec);
            st.extradata_size = t.private.len();
        }
        MediaType::Data => {}
    }
    Some(st)
}

/// The first packet of Xiph-laced codec private data (Vorbis, Theora headers).
fn xiph_first_packet(p: &[u8]) -> Option<&[u8]> {
    let count = usize::from(*p.first()?) + 1;
    if count < 2 {
        return None;
    }
    let mut pos = 1;
    let mut first = 0usize;
    loop {
        let b = *p.get(pos)?;
        pos += 1;
        first += usize::from(b);
        if b != 255 {
            break;
        }
    }
    // Skip the remaining lace sizes (count - 2 more).
    for _ in 0..count - 2 {
        loop {
            let b = *p.get(pos)?;
            pos += 1;
            if b != 255 {
                break;
            }
        }
    }
    p.get(pos..pos + first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ebml_headers() {
        assert_eq!(
            header(&[0x1a, 0x45, 0xdf, 0xa3, 0x9f], 0).unwrap(),
            (0x1a45dfa3, Some(31), 5)
        );
        assert_eq!(
            header(
                &[0x1f, 0x43, 0xb6, 0x75, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                0
            )
            .unwrap()
            .1,
            None
        );
        assert!(header(&[0x00, 0x81], 0).is_err());
    }
}
