//! ISO BMFF / QuickTime (mp4, mov, m4a): a box walker and the stream fields FFmpeg's mov demuxer
//! derives from moov (timing from mdhd/elst/stts/ctts, sizes from stsz, codec from stsd).
//!
//! Limits, checked before anything is allocated: moov at most [`MAX_MOOV_BYTES`], boxes nested at
//! most [`MAX_DEPTH`] deep, at most [`MAX_STREAMS`] tracks; every table's entry count is checked
//! against its box's size, so a box claiming 2^31 entries is refused by arithmetic, not memory.

use super::bytes::{Cursor, FormatError, Input, Result, MAX_STREAMS};
use super::codecs;
use super::model::{fourcc, rescale, Format, MediaType, Rational, SideData, Stream};

/// Largest moov box read into memory (a two-hour four-track movie's moov is a few MiB).
pub const MAX_MOOV_BYTES: u64 = 64 << 20;
/// Deepest box nesting accepted; real files nest about 8 deep.
pub const MAX_DEPTH: usize = 32;
/// Most top-level boxes walked; real files have a handful (fragmented ones a few thousand).
pub const MAX_TOP_LEVEL_BOXES: usize = 100_000;
/// Most bytes of a first sample read to parse a codec header (a JPEG's SOF is near its start).
const FIRST_SAMPLE_BYTES: u64 = 1 << 20;

pub fn is_mp4(head: &[u8]) -> bool {
    head.len() >= 8
        && matches!(
            &head[4..8],
            b"ftyp" | b"moov" | b"mdat" | b"free" | b"wide" | b"skip" | b"pnot"
        )
}

fn name(t: &[u8; 4]) -> String {
    t.iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

/// One box inside a parent's payload.
struct BoxRef<'a> {
    typ: [u8; 4],
    body: &'a [u8],
    /// File offset of the body.
    offset: u64,
}

/// Iterates the child boxes of `data` (which starts at file offset `base`).
fn children<'a>(data: &'a [u8], base: u64, parent: &str) -> Result<Vec<BoxRef<'a>>> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 8 <= data.len() {
        let mut c = Cursor::new(&data[pos..], base + pos as u64, parent);
        let size32 = c.u32()?;
        let mut typ = [0u8; 4];
        typ.copy_from_slice(c.bytes(4)?);
        let (size, header) = match size32 {
            1 => (c.u64()?, 16u64),
            0 => ((data.len() - pos) as u64, 8),
            s => (u64::from(s), 8),
        };
        let what = format!("box '{}' in {parent}", name(&typ));
        if size < header {
            return Err(FormatError::invalid(
                what,
                base + pos as u64,
                format!("size {size} is smaller than its header"),
            ));
        }
        let left = (data.len() - pos) as u64;
        if size > left {
            return Err(FormatError::Truncated {
                what,
                offset: base + pos as u64,
                needed: size,
                available: left,
            });
        }
        let (h, s) = (header as usize, size as usize);
        out.push(BoxRef {
            typ,
            body: &data[pos + h..pos + s],
            offset: base + (pos + h) as u64,
        });
        pos += s;
    }
    Ok(out)
}

fn find<'a, 'b>(boxes: &'b [BoxRef<'a>], t: &[u8; 4]) -> Option<&'b BoxRef<'a>> {
    boxes.iter().find(|b| &b.typ == t)
}

#[derive(Default)]
struct Track {
    id: u32,
    creation_time: u64,
    udta_tags: Vec<(String, String)>,
    enabled: bool,
    matrix: [i32; 9],
    width_fixed: u32,
    height_fixed: u32,
    timescale: u32,
    mdhd_duration: u64,
    language: Option<String>,
    handler: [u8; 4],
    handler_name: Option<String>,
    /// (segment duration in movie timescale, media time)
    edits: Vec<(u64, i64)>,
    stts: Vec<(u32, u32)>,
    first_ctts: Option<i64>,
    sample_count: u64,
    data_size: u64,
    first_sample_size: u64,
    first_chunk: Option<u64>,
    chunk_count: u64,
    /// stsc: (first chunk, samples per chunk).
    stsc: Vec<(u32, u32)>,
    stsd: Option<(u64, Vec<u8>)>,
}

pub fn parse(input: &Input, filename: &str) -> Result<(Format, Vec<Stream>)> {
    let len = input.len();
    let mut ftyp = None;
    let mut moov = None;
    let mut offset = 0u64;
    let mut count = 0usize;
    while offset + 8 <= len {
        count += 1;
        if count > MAX_TOP_LEVEL_BOXES {
            return Err(FormatError::limit(
                "top-level boxes",
                offset,
                "too many boxes",
                MAX_TOP_LEVEL_BOXES as u64,
            ));
        }
        let head = input.read(offset, 16.min(len - offset), "box header")?;
        let mut c = Cursor::new(&head, offset, "top-level box header");
        let size32 = c.u32()?;
        let mut typ = [0u8; 4];
        typ.copy_from_slice(c.bytes(4)?);
        let (size, header) = match size32 {
            1 => (c.u64()?, 16),
            0 => (len - offset, 8),
            s => (u64::from(s), 8),
        };
        let what = format!("top-level box '{}'", name(&typ));
        if size < header {
            return Err(FormatError::invalid(
                what,
                offset,
                format!("size {size} is smaller than its header"),
            ));
        }
        if count == 1
            && !matches!(
                &typ,
                b"ftyp" | b"moov" | b"mdat" | b"free" | b"wide" | b"skip" | b"pnot"
            )
        {
            return Err(FormatError::Unrecognized(format!(
                "first box is '{}', not ftyp/moov",
                name(&typ)
            )));
        }
        let end = offset.checked_add(size).filter(|e| *e <= len);
        match &typ {
            b"ftyp" => {
                let end = end.ok_or_else(|| truncated(&what, offset, size, len))?;
                ftyp =
                    Some(input.read(offset + header, (end - offset - header).min(4096), "ftyp")?);
            }
            b"moov" => {
                let end = end.ok_or_else(|| truncated(&what, offset, size, len))?;
                let body = end - offset - header;
                if body > MAX_MOOV_BYTES {
                    return Err(FormatError::limit(
                        what,
                        offset,
                        format!("moov of {body} bytes"),
                        MAX_MOOV_BYTES,
                    ));
                }
                moov = Some((offset + header, input.read(offset + header, body, "moov")?));
            }
            // A truncated mdat still lets the header be read, as with FFmpeg.
            _ => {}
        }
        offset = offset.saturating_add(size);
    }
    let (moov_off, moov) = moov.ok_or_else(|| {
        FormatError::invalid("moov", 0, "no moov box (not a complete MP4/MOV file)")
    })?;

    let mut format = Format {
        filename: filename.to_string(),
        format_name: "mov,mp4,m4a,3gp,3g2,mj2",
        format_long_name: "QuickTime / MOV",
        size: len,
        probe_score: 100,
        ..Format::default()
    };
    let mut is_qt = false;
    if let Some(f) = &ftyp {
        if f.len() >= 8 {
            let major = String::from_utf8_lossy(&f[0..4]).to_string();
            is_qt = &f[0..4] == b"qt  ";
            format.tags.push(("major_brand".into(), major));
            let minor = u32::from_be_bytes([f[4], f[5], f[6], f[7]]);
            format
                .tags
                .push(("minor_version".into(), minor.to_string()));
            let compat: String = f[8..]
                .chunks_exact(4)
                .map(|c| String::from_utf8_lossy(c).to_string())
                .collect();
            format.tags.push(("compatible_brands".into(), compat));
        }
    }
    let _ = is_qt;

    let top = children(&moov, moov_off, "moov")?;
    let mut movie_timescale = 1000u32;
    let mut movie_duration = 0u64;
    if let Some(mvhd) = find(&top, b"mvhd") {
        let mut c = Cursor::new(mvhd.body, mvhd.offset, "mvhd");
        let v = c.u8()?;
        c.skip(3)?;
        let created;
        if v == 1 {
            created = c.u64()?;
            c.skip(8)?;
            movie_timescale = c.u32()?;
            movie_duration = c.u64()?;
        } else {
            created = u64::from(c.u32()?);
            c.skip(4)?;
            movie_timescale = c.u32()?;
            movie_duration = u64::from(c.u32()?);
        }
        if let Some(t) = mov_time(created) {
            format.tags.push(("creation_time".into(), t));
        }
    }
    let mut tracks = Vec::new();
    for b in top.iter().filter(|b| &b.typ == b"trak") {
        if tracks.len() >= MAX_STREAMS {
            return Err(FormatError::limit(
                "moov",
                b.offset,
                "too many tracks",
                MAX_STREAMS as u64,
            ));
        }
        tracks.push(parse_trak(b, 1)?);
    }
    if let Some(udta) = find(&top, b"udta") {
        parse_udta(udta, &mut format.tags, 1)?;
    }
    if let Some(meta) = find(&top, b"meta") {
        parse_meta(meta, &mut format.tags, 1)?;
    }

    for t in &tracks {
        // FFmpeg files track-level iTunes items (x264's "encoder") under the format.
        for (k, v) in &t.udta_tags {
            if !v.is_empty() && !format.tags.iter().any(|(fk, _)| fk == k) {
                format.tags.push((k.clone(), v.clone()));
            }
        }
    }
    let mut streams = Vec::new();
    for t in &tracks {
        if let Some(st) = build_stream(input, t, movie_timescale)? {
            streams.push(st);
        }
    }
    if movie_timescale > 0 {
        format.duration_us = Some(rescale(
            movie_duration as i64,
            1_000_000,
            i64::from(movie_timescale),
        ));
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

fn truncated(what: &str, offset: u64, size: u64, len: u64) -> FormatError {
    FormatError::Truncated {
        what: what.to_string(),
        offset,
        needed: size,
        available: len - offset,
    }
}

fn check_depth(depth: usize, b: &BoxRef) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(FormatError::limit(
            format!("box '{}'", name(&b.typ)),
            b.offset,
            "boxes nested too deep",
            MAX_DEPTH as u64,
        ));
    }
    Ok(())
}

fn parse_trak(trak: &BoxRef, depth: usize) -> Result<Track> {
    check_depth(depth, trak)?;
    let mut t = Track {
        matrix: [65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30],
        ..Track::default()
    };
    let kids = children(trak.body, trak.offset, "trak")?;
    if let Some(tkhd) = find(&kids, b"tkhd") {
        let mut c = Cursor::new(tkhd.body, tkhd.offset, "tkhd");
        let v = c.u8()?;
        let flags = c.u24()?;
        t.enabled = flags & 1 != 0;
        c.skip(if v == 1 { 16 } else { 8 })?;
        t.id = c.u32()?;
        c.skip(4)?;
        c.skip(if v == 1 { 8 } else { 4 })?;
        c.skip(8 + 2 + 2 + 2 + 2)?;
        for m in t.matrix.iter_mut() {
            *m = c.u32()? as i32;
        }
        t.width_fixed = c.u32()?;
        t.height_fixed = c.u32()?;
    }
    if let Some(edts) = find(&kids, b"edts") {
        check_depth(depth + 1, edts)?;
        let e = children(edts.body, edts.offset, "edts")?;
        if let Some(elst) = find(&e, b"elst") {
            let mut c = Cursor::new(elst.body, elst.offset, "elst");
            let v = c.u8()?;
            c.skip(3)?;
            let n = c.u32()? as usize;
            let entry = if v == 1 { 20 } else { 12 };
            if n.saturating_mul(entry) > c.remaining() {
                return Err(FormatError::invalid(
                    "elst",
                    elst.offset,
                    format!("{n} entries do not fit in {} bytes", elst.body.len()),
                ));
            }
            for _ in 0..n {
                let (d, m) = if v == 1 {
                    (c.u64()?, c.u64()? as i64)
                } else {
                    (u64::from(c.u32()?), i64::from(c.u32()? as i32))
                };
                c.skip(4)?;
                t.edits.push((d, m));
            }
        }
    }
    if let Some(udta) = find(&kids, b"udta") {
        parse_udta(udta, &mut t.udta_tags, depth + 1)?;
    }
    let mdia = find(&kids, b"mdia")
        .ok_or_else(|| FormatError::invalid("trak", trak.offset, "no mdia box"))?;
    check_depth(depth + 1, mdia)?;
    let m = children(mdia.body, mdia.offset, "mdia")?;
    if let Some(mdhd) = find(&m, b"mdhd") {
        let mut c = Cursor::new(mdhd.body, mdhd.offset, "mdhd");
        let v = c.u8()?;
        c.skip(3)?;
        if v == 1 {
            t.creation_time = c.u64()?;
            c.skip(8)?;
            t.timescale = c.u32()?;
            t.mdhd_duration = c.u64()?;
        } else {
            t.creation_time = u64::from(c.u32()?);
            c.skip(4)?;
            t.timescale = c.u32()?;
            t.mdhd_duration = u64::from(c.u32()?);
        }
        t.language = mov_language(c.u16()?);
    }
    if let Some(hdlr) = find(&m, b"hdlr") {
        let mut c = Cursor::new(hdlr.body, hdlr.offset, "hdlr");
        c.skip(8)?;
        t.handler.copy_from_slice(c.bytes(4)?);
        c.skip(12)?;
        let rest = c.rest();
        t.handler_name = Some(handler_name(rest));
    }
    let minf = find(&m, b"minf")
        .ok_or_else(|| FormatError::invalid("mdia", mdia.offset, "no minf box"))?;
    check_depth(depth + 2, minf)?;
    let mi = children(minf.body, minf.offset, "minf")?;
    let stbl = find(&mi, b"stbl")
        .ok_or_else(|| FormatError::invalid("minf", minf.offset, "no stbl box"))?;
    check_depth(depth + 3, stbl)?;
    for b in children(stbl.body, stbl.offset, "stbl")? {
        let what = format!("box '{}'", name(&b.typ));
        let mut c = Cursor::new(b.body, b.offset, &what);
        match &b.typ {
            b"stsd" => t.stsd = Some((b.offset, b.body.to_vec())),
            b"stts" => {
                c.skip(4)?;
                let n = c.u32()? as usize;
                table_fits(&b, n, 8, c.remaining())?;
                t.stts.reserve(n);
                for _ in 0..n {
                    t.stts.push((c.u32()?, c.u32()?));
                }
            }
            b"ctts" => {
                c.skip(4)?;
                let n = c.u32()? as usize;
                table_fits(&b, n, 8, c.remaining())?;
                if n > 0 {
                    c.skip(4)?;
                    // Version 0 offsets are unsigned in the spec but written signed by every muxer.
                    let off = c.u32()?;
                    t.first_ctts = Some(i64::from(off as i32));
                }
            }
            b"stsz" => {
                c.skip(4)?;
                let size = c.u32()?;
                let n = c.u32()? as usize;
                t.sample_count = n as u64;
                if size == 0 {
                    table_fits(&b, n, 4, c.remaining())?;
                }
                if size != 0 {
                    t.data_size = u64::from(size) * n as u64;
                    t.first_sample_size = u64::from(size);
                } else {
                    for i in 0..n {
                        let s = u64::from(c.u32()?);
                        if i == 0 {
                            t.first_sample_size = s;
                        }
                        t.data_size += s;
                    }
                }
            }
            b"stz2" => {
                c.skip(7)?;
                let bits = usize::from(c.u8()?);
                let n = c.u32()? as usize;
                t.sample_count = n as u64;
                if ![4, 8, 16].contains(&bits) || n.saturating_mul(bits).div_ceil(8) > c.remaining()
                {
                    return Err(FormatError::invalid(
                        what,
                        b.offset,
                        format!("{n} entries of {bits} bits do not fit"),
                    ));
                }
                let raw = c.bytes(n * bits / 8 + usize::from(!(n * bits).is_multiple_of(8)))?;
                for i in 0..n {
                    let s = match bits {
                        4 => u64::from((raw[i / 2] >> if i % 2 == 0 { 4 } else { 0 }) & 0xf),
                        8 => u64::from(raw[i]),
                        _ => u64::from(u16::from_be_bytes([raw[2 * i], raw[2 * i + 1]])),
                    };
                    if i == 0 {
                        t.first_sample_size = s;
                    }
                    t.data_size += s;
                }
            }
            b"stsc" => {
                c.skip(4)?;
                let n = c.u32()? as usize;
                table_fits(&b, n, 12, c.remaining())?;
                t.stsc.reserve(n);
                for _ in 0..n {
                    let first = c.u32()?;
                    let samples = c.u32()?;
                    c.skip(4)?;
                    t.stsc.push((first, samples));
                }
            }
            b"stco" => {
                c.skip(4)?;
                let n = c.u32()? as usize;
                table_fits(&b, n, 4, c.remaining())?;
                t.chunk_count = n as u64;
                if n > 0 {
                    t.first_chunk = Some(u64::from(c.u32()?));
                }
            }
            b"co64" => {
                c.skip(4)?;
                let n = c.u32()? as usize;
                table_fits(&b, n, 8, c.remaining())?;
                t.chunk_count = n as u64;
                if n > 0 {
                    t.first_chunk = Some(c.u64()?);
                }
            }
            _ => {}
        }
    }
    Ok(t)
}

fn table_fits(b: &BoxRef, n: usize, entry: usize, room: usize) -> Result<()> {
    if n.saturating_mul(entry) > room {
        return Err(FormatError::invalid(
            format!("box '{}'", name(&b.typ)),
            b.offset,
            format!("claims {n} entries of {entry} bytes but holds {room} bytes"),
        ));
    }
    Ok(())
}

/// A QuickTime time (seconds since 1904) as FFmpeg's creation_time tag; 0 means unset.
fn mov_time(secs_1904: u64) -> Option<String> {
    const EPOCH_1904_TO_1970: u64 = 2_082_844_800;
    if secs_1904 == 0 {
        return None;
    }
    let unix = i64::try_from(secs_1904.checked_sub(EPOCH_1904_TO_1970)?).ok()?;
    let (days, rem) = (unix.div_euclid(86400), unix.rem_euclid(86400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    Some(format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000000Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    ))
}

/// The mdhd language: packed ISO 639-2, or a Macintosh language code; 0x7fff means none.
fn mov_language(code: u16) -> Option<String> {
    if code == 0x7fff {
        return None;
    }
    if code < 0x400 {
        const MAC: [&str; 24] = [
            "eng", "fra", "ger", "ita", "dut", "sve", "spa", "dan", "por", "nor", "heb", "jpn",
            "ara", "fin", "gre", "ice", "mlt", "tur", "hr ", "chi", "urd", "hin", "tha", "kor",
        ];
        return MAC.get(usize::from(code)).map(|s| s.to_string());
    }
    let s: String = [(code >> 10) & 31, (code >> 5) & 31, code & 31]
        .iter()
        .map(|c| (*c as u8 + 0x60) as char)
        .collect();
    if s.chars().all(|c| c.is_ascii_lowercase()) {
        Some(s)
    } else {
        None
    }
}

/// hdlr names are C strings in MP4 and Pascal strings in QuickTime.
fn handler_name(rest: &[u8]) -> String {
    if let Some(&n) = rest.first() {
        let n = usize::from(n);
        if n > 0
            && n < rest.len()
            && !rest[1..=n].contains(&0)
            && rest[n + 1..].iter().all(|b| *b == 0)
        {
            return String::from_utf8_lossy(&rest[1..=n]).to_string();
        }
    }
    let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end]).to_string()
}

fn udta_key(t: &[u8; 4]) -> Option<&'static str> {
    Some(match t {
        b"\xa9nam" => "title",
        b"\xa9too" | b"\xa9swr" => "encoder",
        b"\xa9ART" => "artist",
        b"\xa9alb" => "album",
        b"\xa9cmt" => "comment",
        b"\xa9day" => "date",
        b"\xa9gen" => "genre",
        b"\xa9wrt" => "composer",
        b"\xa9enc" => "encoder",
        b"cprt" | b"\xa9cpy" => "copyright",
        b"desc" => "description",
        b"ldes" => "synopsis",
        b"aART" => "album_artist",
        b"\xa9lyr" => "lyrics",
        _ => return None,
    })
}

fn parse_udta(udta: &BoxRef, tags: &mut Vec<(String, String)>, depth: usize) -> Result<()> {
    check_depth(depth, udta)?;
    for b in children(udta.body, udta.offset, "udta")? {
        if &b.typ == b"meta" {
            parse_meta(&b, tags, depth + 1)?;
        } else if let Some(key) = udta_key(&b.typ) {
            // QuickTime user data text: u16 length, u16 language, text.
            if b.body.len() >= 4 {
                let n = usize::from(u16::from_be_bytes([b.body[0], b.body[1]]));
                if let Some(text) = b.body.get(4..4 + n) {
                    tags.push((key.into(), String::from_utf8_lossy(text).to_string()));
                }
            }
        }
    }
    Ok(())
}

fn parse_meta(meta: &BoxRef, tags: &mut Vec<(String, String)>, depth: usize) -> Result<()> {
    check_depth(depth, meta)?;
    // ISO meta is a full box (4 bytes of version/flags); QuickTime's is not.
    let skip = if meta.body.get(4..8) == Some(b"hdlr") {
        0
    } else {
        4
    };
    let body = meta.body.get(skip..).unwrap_or_default();
    for b in children(body, meta.offset + skip as u64, "meta")? {
        if &b.typ != b"ilst" {
            continue;
        }
        for item in children(b.body, b.offset, "ilst")? {
            let Some(key) = udta_key(&item.typ) else {
                continue;
            };
            for d in children(item.body, item.offset, "ilst item")? {
                if &d.typ == b"data" && d.body.len() >= 8 {
                    tags.push((
                        key.into(),
                        String::from_utf8_lossy(&d.body[8..]).to_string(),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn build_stream(input: &Input, t: &Track, movie_timescale: u32) -> Result<Option<Stream>> {
    let Some((stsd_off, stsd)) = &t.stsd else {
        return Ok(None);
    };
    let mut c = Cursor::new(stsd, *stsd_off, "stsd");
    c.skip(4)?;
    let n = c.u32()?;
    if n == 0 {
        return Ok(None);
    }
    let entries = children(c.rest(), stsd_off + 8, "stsd")?;
    let Some(entry) = entries.first() else {
        return Ok(None);
    };
    let tag = entry.typ;
    let media = match &t.handler {
        b"vide" => MediaType::Video,
        b"soun" => MediaType::Audio,
        b"sbtl" | b"subt" => MediaType::Subtitle,
        b"text" if &tag == b"tx3g" => MediaType::Subtitle,
        _ => MediaType::Data,
    };
    let mut st = Stream::new(media);
    st.codec_tag = fourcc(&tag);
    st.id = Some(t.id);
    st.time_base = Rational::new(1, i64::from(t.timescale.max(1)));
    st.disposition[0] = t.enabled;
    if let Some(c) = mov_time(t.creation_time) {
        st.tag("creation_time", c);
    }
    if let Some(l) = &t.language {
        st.tag("language", l.clone());
    }
    if let Some(h) = &t.handler_name {
        st.tag("handler_name", h.clone());
    }
    let first_sample = || -> Result<Option<Vec<u8>>> {
        match t.first_chunk {
            Some(off) if t.first_sample_size > 0 && off < input.len() => {
                Ok(Some(input.read_upto(
                    off,
                    t.first_sample_size.min(FIRST_SAMPLE_BYTES),
                    "first sample",
                )?))
            }
            _ => Ok(None),
        }
    };
    let body = entry.body;
    match media {
        MediaType::Video => {
            let mut c = Cursor::new(body, entry.offset, "visual sample entry");
            c.skip(6 + 2 + 4)?;
            let vendor = c.u32()?;
            c.skip(8)?;
            let w = u32::from(c.u16()?);
            let h = u32::from(c.u16()?);
            c.skip(4 + 4 + 4 + 2)?;
            let cname = c.bytes(32)?;
            c.skip(4)?;
            st.video.width = w;
            st.video.height = h;
            st.video.coded_width = w;
            st.video.coded_height = h;
            st.tag(
                "vendor_id",
                super::model::fourcc_string(vendor.swap_bytes()),
            );
            let clen = usize::from(cname[0]).min(31);
            if clen > 0 {
                st.tag(
                    "encoder",
                    String::from_utf8_lossy(&cname[1..=clen]).to_string(),
                );
            }
            let kids = children(c.rest(), c.offset(), "visual sample entry").unwrap_or_default();
            let codec = match &tag {
                b"avc1" | b"avc3" => "h264",
                b"hvc1" | b"hev1" => "hevc",
                b"av01" => "av1",
                b"vp09" => "vp9",
                b"vp08" => "vp8",
                b"mp4v" => "mpeg4",
                b"apcn" | b"apch" | b"apcs" | b"apco" | b"ap4h" | b"ap4x" => "prores",
                b"jpeg" | b"mjpa" | b"AVDJ" | b"dmb1" => "mjpeg",
                b"2vuy" | b"yuv2" | b"raw " | b"v210" | b"v308" | b"v408" => "rawvideo",
                b"FFV1" => "ffv1",
                b"png " => "png",
                b"mp2v" | b"xdv2" | b"xd5c" | b"xd54" | b"xd55" | b"mx5p" | b"mx5n" => "mpeg2video",
                _ => "",
            };
            st.set_codec(if codec.is_empty() { "none" } else { codec });
            if codec.is_empty() {
                st.codec_long_name = "unknown".into();
            }
            for k in &kids {
                match &k.typ {
                    b"avcC" => codecs::apply_avcc(&mut st, k.body),
                    b"hvcC" => codecs::apply_hvcc(&mut st, k.body),
                    b"av1C" => codecs::apply_av1c(&mut st, k.body),
                    b"pasp" if k.body.len() >= 8 => {
                        let hs = u32::from_be_bytes([k.body[0], k.body[1], k.body[2], k.body[3]]);
                        let vs = u32::from_be_bytes([k.body[4], k.body[5], k.body[6], k.body[7]]);
                        st.video.container_sar = Some(Rational::new(i64::from(hs), i64::from(vs)));
                    }
                    b"esds" => {
                        if let Some((_, dsi, _)) = parse_esds(k.body) {
                            st.extradata_size = dsi.len();
                            codecs::apply_mpeg4_config(&mut st, dsi);
                        }
                    }
                    b"colr"
                        if k.body.len() >= 10
                            && (&k.body[0..4] == b"nclx" || &k.body[0..4] == b"nclc") =>
                    {
                        let p = u32::from(u16::from_be_bytes([k.body[4], k.body[5]]));
                        let tr = u32::from(u16::from_be_bytes([k.body[6], k.body[7]]));
                        let m = u32::from(u16::from_be_bytes([k.body[8], k.body[9]]));
                        if p != 2 {
                            st.video.color_primaries = codecs::color_primaries(p);
                        }
                        if tr != 2 {
                            st.video.color_transfer = codecs::color_transfer(tr);
                        }
                        if m != 2 {
                            st.video.color_space = codecs::color_space(m);
                        }
                        if &k.body[0..4] == b"nclx" && k.body.len() >= 11 {
                            st.video.color_range =
                                Some(if k.body[10] & 0x80 != 0 { "pc" } else { "tv" });
                        }
                    }
                    b"fiel" if k.body.len() >= 2 => {
                        st.video.field_order = Some(match (k.body[0], k.body[1]) {
                            (1, _) => "progressive",
                            (2, 1) => "tt",
                            (2, 6) => "bb",
                            (2, 9) => "tb",
                            (2, 14) => "bt",
                            _ => "progressive",
                        });
                    }
                    _ => {}
                }
            }
            match codec {
                "vp9" => {
                    if let Some(f) = first_sample()? {
                        let _ = codecs::apply_vp9_frame(&mut st, &f);
                    }
                    st.video.level = -99;
                }
                "vp8" => {
                    if let Some(f) = first_sample()? {
                        let _ = codecs::apply_vp8_frame(&mut st, &f);
                    }
                }
                "mjpeg" => {
                    if let Some(f) = first_sample()? {
                        let _ = codecs::apply_mjpeg_frame(&mut st, &f);
                    }
                }
                "prores" => {
                    let f = first_sample()?;
                    codecs::apply_prores(&mut st, &tag, f.as_deref());
                }
                "mpeg2video" => {
                    if let Some(f) = first_sample()? {
                        codecs::apply_mpeg2_headers(&mut st, &f);
                    }
                }
                "rawvideo" => {
                    st.video.pix_fmt = Some(
                        match &tag {
                            b"2vuy" => "uyvy422",
                            b"yuv2" => "yuyv422",
                            b"v308" => "yuv444p",
                            b"v210" => "yuv422p10le",
                            _ => "rgb24",
                        }
                        .into(),
                    );
                    if st.video.field_order.is_none() {
                        st.video.field_order = Some("progressive");
                    }
                }
                _ => {}
            }
            // pix_fmt etc. come from the codec header; the sample entry size wins only if the
            // codec said nothing.
            if st.video.width == 0 {
                st.video.width = w;
                st.video.height = h;
            }
            // Display matrix (rotation/flip).
            let ident = [65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30];
            if t.matrix != ident {
                let m = t.matrix;
                let s0 = (f64::from(m[0]) / 65536.0).hypot(f64::from(m[3]) / 65536.0);
                let s1 = (f64::from(m[1]) / 65536.0).hypot(f64::from(m[4]) / 65536.0);
                if s0 > 0.0 && s1 > 0.0 {
                    let r = (f64::from(m[1]) / 65536.0 / s1)
                        .atan2(f64::from(m[0]) / 65536.0 / s0)
                        .to_degrees();
                    st.side_data.push(SideData::DisplayMatrix {
                        matrix: m,
                        rotation: (-r) as i32,
                    });
                }
            }
        }
        MediaType::Audio => {
            let mut c = Cursor::new(body, entry.offset, "audio sample entry");
            c.skip(6 + 2)?;
            let version = c.u16()?;
            c.skip(2)?;
            let vendor = c.u32()?;
            let mut channels = u32::from(c.u16()?);
            let mut bits = u32::from(c.u16()?);
            c.skip(4)?;
            let mut rate = c.u32()? >> 16;
            let mut lpcm_flags = 0;
            match version {
                1 => c.skip(16)?,
                2 => {
                    c.skip(4)?;
                    rate = f64::from_bits(c.u64()?) as u32;
                    channels = c.u32()?;
                    c.skip(4)?;
                    bits = c.u32()?;
                    lpcm_flags = c.u32()?;
                    c.skip(8)?;
                }
                _ => {}
            }
            st.tag(
                "vendor_id",
                super::model::fourcc_string(vendor.swap_bytes()),
            );
            st.audio.channels = channels;
            st.audio.sample_rate = rate;
            let mut kids = children(c.rest(), c.offset(), "audio sample entry").unwrap_or_default();
            let mut little_endian = false;
            if let Some(wave) = kids.iter().position(|k| &k.typ == b"wave") {
                let w = &kids[wave];
                let inner = children(w.body, w.offset, "wave").unwrap_or_default();
                kids.extend(inner);
            }
            let mut codec = match &tag {
                b"mp4a" => "aac",
                b".mp3" | b"ms\x00\x55" => "mp3",
                b"ac-3" => "ac3",
                b"ec-3" => "eac3",
                b"Opus" => "opus",
                b"fLaC" => "flac",
                b"alac" => "alac",
                // FFmpeg picks the PCM codec of sowt/twos by the sample size.
                b"sowt" => match bits {
                    8 => "pcm_s8",
                    24 => "pcm_s24le",
                    32 => "pcm_s32le",
                    _ => "pcm_s16le",
                },
                b"twos" => match bits {
                    8 => "pcm_s8",
                    24 => "pcm_s24be",
                    32 => "pcm_s32be",
                    _ => "pcm_s16be",
                },
                b"in24" => "pcm_s24be",
                b"in32" => "pcm_s32be",
                b"fl32" => "pcm_f32be",
                b"raw " | b"NONE" => "pcm_u8",
                b"lpcm" => {
                    let float = lpcm_flags & 1 != 0;
                    let be = lpcm_flags & 2 != 0;
                    match (float, bits, be) {
                        (true, 32, false) => "pcm_f32le",
                        (true, 32, true) => "pcm_f32be",
                        (true, _, _) => "pcm_f64le",
                        (false, 24, false) => "pcm_s24le",
                        (false, 24, true) => "pcm_s24be",
                        (false, 32, false) => "pcm_s32le",
                        (false, 32, true) => "pcm_s32be",
                        (false, 16, true) => "pcm_s16be",
                        _ => "pcm_s16le",
                    }
                }
                _ => "",
            };
            for k in &kids {
                if &k.typ == b"enda" && k.body.len() >= 2 {
                    little_endian = k.body[1] == 1 || k.body[0] == 1;
                }
            }
            if little_endian {
                codec = match codec {
                    "pcm_s24be" => "pcm_s24le",
                    "pcm_s32be" => "pcm_s32le",
                    "pcm_f32be" => "pcm_f32le",
                    c => c,
                };
            }
            let mut esds = None;
            for k in &kids {
                if &k.typ == b"esds" {
                    esds = parse_esds(k.body);
                }
            }
            if let Some((oti, _, _)) = esds {
                codec = match oti {
                    0x69 | 0x6b => "mp3",
                    0xa5 => "ac3",
                    0xa6 => "eac3",
                    0xdd => "vorbis",
                    0xad => "opus",
                    _ => codec,
                };
            }
            st.set_codec(if codec.is_empty() { "none" } else { codec });
            if codec.starts_with("pcm_") {
                codecs::apply_pcm(&mut st);
            }
            for k in &kids {
                match &k.typ {
                    b"esds" if codec == "aac" => {
                        if let Some((_, dsi, _)) = parse_esds(k.body) {
                            let _ = codecs::apply_aac_asc(&mut st, dsi);
                        }
                    }
                    b"dac3" => {
                        let _ = codecs::apply_dac3(&mut st, k.body);
                    }
                    b"dOps" if k.body.len() >= 11 => {
                        // FFmpeg turns dOps into a 19-byte OpusHead.
                        st.audio.sample_fmt = Some("fltp");
                        st.audio.sample_rate = 48000;
                        st.extradata_size = 8 + k.body.len();
                        let ch = u32::from(k.body[1]);
                        st.audio.channels = ch;
                        st.audio.channel_layout = match ch {
                            1 => Some("mono".into()),
                            2 => Some("stereo".into()),
                            _ => None,
                        };
                    }
                    b"dfLa" if k.body.len() >= 4 + 4 + 34 => {
                        let _ = codecs::apply_flac_streaminfo(&mut st, &k.body[8..42]);
                    }
                    b"chan" => {
                        st.audio.channel_layout = match st.audio.channels {
                            1 => Some("mono".into()),
                            2 => Some("stereo".into()),
                            _ => None,
                        };
                    }
                    _ => {}
                }
            }
            if codec == "mp3" {
                if let Some(f) = first_sample()? {
                    let _ = codecs::apply_mpa_header(&mut st, &f);
                }
                st.bit_rate = None;
            }
        }
        MediaType::Subtitle | MediaType::Data => {
            let codec = match &tag {
                b"tx3g" if media == MediaType::Subtitle => "mov_text",
                b"text" if media == MediaType::Subtitle => "mov_text",
                _ => "bin_data",
            };
            st.set_codec(codec);
            st.media_type = media;
            st.extradata_size = body.len().saturating_sub(8);
        }
    }
    // Timing, as mov.c: the edit list shifts and trims; stts gives the frame rate.
    let stts_total: u64 = t
        .stts
        .iter()
        .map(|(n, d)| u64::from(*n) * u64::from(*d))
        .sum();
    let timescale = i64::from(t.timescale.max(1));
    let mut empty = 0i64;
    let mut media_time = 0i64;
    let mut edit_duration = None;
    let mut seen_media = false;
    for &(d, m) in &t.edits {
        let d = rescale(d as i64, timescale, i64::from(movie_timescale.max(1)));
        if m == -1 {
            if !seen_media {
                empty += d;
            }
        } else {
            if !seen_media {
                media_time = m;
            }
            seen_media = true;
            *edit_duration.get_or_insert(0) += d;
        }
    }
    // FFmpeg trims the media to the edit, so a stream lasts the shorter of the two.
    let mdhd_duration = i64::try_from(t.mdhd_duration).unwrap_or(i64::MAX);
    let duration = match edit_duration {
        Some(d) if d > 0 => (d + empty).min(mdhd_duration),
        _ => mdhd_duration - media_time.clamp(0, mdhd_duration),
    };
    st.duration_ts = Some(duration);
    if st.media_type == MediaType::Audio && media_time > 0 && st.codec_name == "aac" {
        st.priming_packets = u64::try_from(media_time / 1024).unwrap_or(0);
    }
    let cts0 = t.first_ctts.unwrap_or(0);
    st.start_pts = Some(empty + (cts0 - media_time).max(0));
    if t.sample_count > 0 {
        st.nb_frames = Some(t.sample_count);
    }
    // FFmpeg reads uncompressed audio in packets of at most 1024 samples per chunk.
    if st.codec_name.starts_with("pcm_") && t.chunk_count > 0 {
        let mut total = 0u64;
        for (i, &(first, samples)) in t.stsc.iter().enumerate() {
            let next = t
                .stsc
                .get(i + 1)
                .map_or(t.chunk_count + 1, |n| u64::from(n.0));
            let chunks = next.saturating_sub(u64::from(first));
            total = total.saturating_add(chunks.saturating_mul(u64::from(samples).div_ceil(1024)));
        }
        st.nb_read_packets = Some(total);
    }
    // mov.c: data size over the media (mdhd) duration, truncated; AC-3's parser reports its own.
    if mdhd_duration > 0 && !(st.codec_name == "ac3" && st.bit_rate.is_some()) {
        let bps = i128::from(t.data_size) * 8 * i128::from(timescale) / i128::from(mdhd_duration);
        st.bit_rate = Some(i64::try_from(bps).unwrap_or(i64::MAX));
    }
    if st.media_type == MediaType::Video {
        if stts_total > 0 && t.sample_count > 0 {
            st.avg_frame_rate = Rational::reduced(
                t.sample_count as i64 * timescale,
                stts_total as i64,
                i32::MAX as i64,
            );
        }
        let mut best: Option<(u64, u32)> = None;
        for &(n, d) in &t.stts {
            if d > 0 && best.is_none_or(|(bn, _)| u64::from(n) > bn) {
                best = Some((u64::from(n), d));
            }
        }
        if let Some((_, d)) = best {
            st.r_frame_rate = Rational::reduced(timescale, i64::from(d), i32::MAX as i64);
        }
    }
    Ok(Some(st))
}

/// esds → (objectTypeIndication, DecoderSpecificInfo, avg bitrate).
fn parse_esds(body: &[u8]) -> Option<(u8, &[u8], u32)> {
    fn desc(d: &[u8]) -> Option<(u8, usize, usize)> {
        let tag = *d.first()?;
        let mut len = 0usize;
        let mut i = 1;
        loop {
            let b = *d.get(i)?;
            len = (len << 7) | usize::from(b & 0x7f);
            i += 1;
            if b & 0x80 == 0 || i > 4 {
                break;
            }
        }
        Some((tag, i, len))
    }
    let d = body.get(4..)?;
    let (tag, h, _) = desc(d)?;
    if tag != 3 {
        return None;
    }
    let mut p = h + 2;
    let flags = *d.get(p)?;
    p += 1;
    if flags & 0x80 != 0 {
        p += 2;
    }
    if flags & 0x40 != 0 {
        p += 1 + usize::from(*d.get(p)?);
    }
    if flags & 0x20 != 0 {
        p += 2;
    }
    let (tag, h, len) = desc(d.get(p..)?)?;
    if tag != 4 {
        return None;
    }
    let dc = d.get(p + h..p + h + len.min(d.len().saturating_sub(p + h)))?;
    let oti = *dc.first()?;
    let avg = u32::from_be_bytes(dc.get(9..13)?.try_into().ok()?);
    let mut dsi: &[u8] = &[];
    if let Some((5, h2, len2)) = dc.get(13..).and_then(desc) {
        dsi = dc.get(13 + h2..13 + h2 + len2).unwrap_or_default();
    }
    Some((oti, dsi, avg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creation_times() {
        assert_eq!(mov_time(0), None);
        assert_eq!(
            mov_time(1_795_613_474 + 2_082_844_800).as_deref(),
            Some("2026-11-25T13:31:14.000000Z")
        );
        assert_eq!(
            mov_time(2_082_844_800).as_deref(),
            Some("1970-01-01T00:00:00.000000Z")
        );
    }

    #[test]
    fn languages() {
        assert_eq!(mov_language(0x55c4).as_deref(), Some("und"));
        assert_eq!(mov_language(0x15c7).as_deref(), Some("eng"));
        assert_eq!(mov_language(0).as_deref(), Some("eng"));
        assert_eq!(mov_language(0x7fff), None);
    }

    #[test]
    fn handler_names() {
        assert_eq!(handler_name(b"VideoHandler\0"), "VideoHandler");
        assert_eq!(handler_name(b"\x0cVideoHandler"), "VideoHandler");
    }
}
