//! MXF (OP1a and kin): KLV packets of the header partition (partition pack, primer, metadata
//! sets: Preface, Identification, packages, tracks, sequences, descriptors) and the first essence
//! elements, with the stream fields FFmpeg's mxf demuxer derives from them.
//! Reads at most [`HEAD_BYTES`] from the start of the file.

use std::collections::HashMap;

use super::bytes::{FormatError, Input, Result, MAX_STREAMS};
use super::codecs;
use super::model::{rescale, Format, MediaType, Rational, Stream};

pub const HEAD_BYTES: u64 = 8 << 20;
/// Most metadata sets accepted.
const MAX_SETS: usize = 100_000;

pub fn is_mxf(head: &[u8]) -> bool {
    head.starts_with(&[
        0x06, 0x0e, 0x2b, 0x34, 0x02, 0x05, 0x01, 0x01, 0x0d, 0x01, 0x02, 0x01, 0x01,
    ])
}

struct Klv<'a> {
    key: &'a [u8],
    value: &'a [u8],
    offset: usize,
}

fn klvs(d: &[u8]) -> Vec<Klv<'_>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 17 <= d.len() && out.len() < MAX_SETS {
        let key = &d[pos..pos + 16];
        let l0 = d[pos + 16];
        let (len, hl) = if l0 < 0x80 {
            (l0 as usize, 1)
        } else {
            let n = usize::from(l0 & 0x7f);
            if n == 0 || n > 8 || pos + 17 + n > d.len() {
                break;
            }
            let v = d[pos + 17..pos + 17 + n]
                .iter()
                .fold(0u64, |a, b| (a << 8) | u64::from(*b));
            (usize::try_from(v).unwrap_or(usize::MAX), 1 + n)
        };
        let start = pos + 16 + hl;
        let end = start.saturating_add(len).min(d.len());
        out.push(Klv {
            key,
            value: &d[start..end],
            offset: pos,
        });
        if start.saturating_add(len) > d.len() {
            break;
        }
        pos = end;
    }
    out
}

/// Local set items: tag → value.
fn items(v: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut p = 0;
    while p + 4 <= v.len() {
        let tag = u16::from_be_bytes([v[p], v[p + 1]]);
        let l = usize::from(u16::from_be_bytes([v[p + 2], v[p + 3]]));
        let Some(val) = v.get(p + 4..p + 4 + l) else {
            break;
        };
        out.push((tag, val));
        p += 4 + l;
    }
    out
}

fn uuid(b: &[u8]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    if h.len() < 32 {
        return h;
    }
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn utf16(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .take_while(|u| *u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

fn be_u32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

fn be_u64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(..8)?.try_into().ok()?))
}

fn rational(b: &[u8]) -> Option<(i64, i64)> {
    Some((
        i64::from(be_u32(b)? as i32),
        i64::from(be_u32(b.get(4..)?)? as i32),
    ))
}

fn refs(b: &[u8]) -> Vec<[u8; 16]> {
    // Batch: count (u32), item size (u32), items.
    let n = be_u32(b).unwrap_or(0) as usize;
    b.get(8..)
        .unwrap_or_default()
        .chunks_exact(16)
        .take(n)
        .map(|c| {
            let mut a = [0u8; 16];
            a.copy_from_slice(c);
            a
        })
        .collect()
}

#[derive(Default, Clone)]
struct Set {
    kind: u8,
    items: Vec<(u16, Vec<u8>)>,
}

impl Set {
    fn get(&self, tag: u16) -> Option<&[u8]> {
        self.items
            .iter()
            .find(|(t, _)| *t == tag)
            .map(|(_, v)| v.as_slice())
    }
}

pub fn parse(input: &Input, filename: &str) -> Result<(Format, Vec<Stream>)> {
    let len = input.len();
    let head = input.read_upto(0, HEAD_BYTES, "MXF header partition")?;
    let packets = klvs(&head);
    let mut op_ul = None;
    let mut sets: HashMap<[u8; 16], Set> = HashMap::new();
    let mut order: Vec<[u8; 16]> = Vec::new();
    let mut first_picture = None;
    let mut first_sound = None;
    for k in &packets {
        if k.key.starts_with(&[
            0x06, 0x0e, 0x2b, 0x34, 0x02, 0x05, 0x01, 0x01, 0x0d, 0x01, 0x02, 0x01, 0x01,
        ]) && k.key[13] == 0x02
        {
            op_ul = k.value.get(64..80).map(|b| b.to_vec());
        } else if k.key.starts_with(&[
            0x06, 0x0e, 0x2b, 0x34, 0x02, 0x53, 0x01, 0x01, 0x0d, 0x01, 0x01, 0x01, 0x01, 0x01,
        ]) {
            let set = Set {
                kind: k.key[14],
                items: items(k.value)
                    .into_iter()
                    .map(|(t, v)| (t, v.to_vec()))
                    .collect(),
            };
            if let Some(uid) = set.get(0x3c0a).filter(|u| u.len() == 16) {
                let mut id = [0u8; 16];
                id.copy_from_slice(uid);
                order.push(id);
                sets.insert(id, set);
            }
        } else if k.key.starts_with(&[
            0x06, 0x0e, 0x2b, 0x34, 0x01, 0x02, 0x01, 0x01, 0x0d, 0x01, 0x03, 0x01,
        ]) {
            match k.key[12] {
                0x15 | 0x05 if first_picture.is_none() => first_picture = Some(k.value),
                0x16 | 0x06 if first_sound.is_none() => first_sound = Some(k.value),
                _ => {}
            }
        }
        if first_picture.is_some() && first_sound.is_some() {
            break;
        }
        let _ = k.offset;
    }
    if sets.is_empty() {
        return Err(FormatError::invalid("MXF", 0, "no header metadata sets"));
    }
    let by_kind = |kind: u8| {
        order
            .iter()
            .filter_map(|id| sets.get(id))
            .filter(move |s| s.kind == kind)
    };
    let mut format = Format {
        filename: filename.to_string(),
        format_name: "mxf",
        format_long_name: "MXF (Material eXchange Format)",
        size: len,
        probe_score: 100,
        ..Format::default()
    };
    if let Some(ul) = op_ul {
        let h: Vec<String> = ul
            .chunks(4)
            .map(|c| c.iter().map(|b| format!("{b:02x}")).collect())
            .collect();
        format
            .tags
            .push(("operational_pattern_ul".into(), h.join(".")));
    }
    if let Some(id) = by_kind(0x30).next() {
        for (tag, v) in &id.items {
            let version = |v: &[u8]| {
                let n: Vec<String> = v
                    .chunks_exact(2)
                    .take(5)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]).to_string())
                    .collect();
                n.join(".")
            };
            let kv = match tag {
                0x3c0a => ("uid", uuid(v)),
                0x3c09 => ("generation_uid", uuid(v)),
                0x3c01 => ("company_name", utf16(v)),
                0x3c02 => ("product_name", utf16(v)),
                0x3c03 => ("product_version_num", version(v)),
                0x3c04 => ("product_version", utf16(v)),
                0x3c08 => ("application_platform", utf16(v)),
                0x3c05 => ("product_uid", uuid(v)),
                0x3c07 => ("toolkit_version_num", version(v)),
                _ => continue,
            };
            format.tags.push((kv.0.into(), kv.1));
        }
    }
    let umid = |v: &[u8]| {
        format!(
            "0x{}",
            v.iter().map(|b| format!("{b:02X}")).collect::<String>()
        )
    };
    let material = by_kind(0x36).next().cloned();
    let source = by_kind(0x37).next().cloned();
    let mut timecode = None;
    let mut out = Vec::new();
    if let Some(m) = &material {
        if let Some(u) = m.get(0x4401) {
            format.tags.push(("material_package_umid".into(), umid(u)));
        }
        let file_umid = source.as_ref().and_then(|s| s.get(0x4401)).map(umid);
        let descriptor = source.as_ref().and_then(|s| s.get(0x4701)).and_then(|r| {
            let mut id = [0u8; 16];
            id.copy_from_slice(r.get(..16)?);
            sets.get(&id).cloned()
        });
        // A MultipleDescriptor lists one descriptor per essence track.
        let descriptors: Vec<Set> = match &descriptor {
            Some(d) if d.kind == 0x44 => d
                .get(0x3f01)
                .map(refs)
                .unwrap_or_default()
                .iter()
                .filter_map(|r| sets.get(r).cloned())
                .collect(),
            Some(d) => vec![d.clone()],
            None => Vec::new(),
        };
        let tracks = m.get(0x4403).map(refs).unwrap_or_default();
        if tracks.len() > MAX_STREAMS {
            return Err(FormatError::limit(
                "MXF material package",
                0,
                "too many tracks",
                MAX_STREAMS as u64,
            ));
        }
        let mut picture_seen = 0;
        let mut sound_seen = 0;
        for t in tracks.iter().filter_map(|r| sets.get(r)) {
            let rate = t.get(0x4b01).and_then(rational).unwrap_or((25, 1));
            let seq = t.get(0x4803).and_then(|r| {
                let mut id = [0u8; 16];
                id.copy_from_slice(r.get(..16)?);
                sets.get(&id)
            });
            let Some(seq) = seq else { continue };
            let def = seq.get(0x0201).unwrap_or_default();
            let duration = seq.get(0x0202).and_then(be_u64).map(|d| d as i64);
            // Data definition ULs: 06 0e 2b 34 04 01 01 01 01 03 02 XX YY ..: XX 01 timecode,
            // XX 02 essence with YY 01 picture, YY 02 sound.
            if def.get(10..12) == Some(&[0x02, 0x01]) {
                for c in seq
                    .get(0x1001)
                    .map(refs)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|r| sets.get(r))
                {
                    if c.kind == 0x14 {
                        let base = c
                            .get(0x1502)
                            .map(|b| {
                                u16::from_be_bytes([
                                    b.first().copied().unwrap_or(0),
                                    b.get(1).copied().unwrap_or(0),
                                ])
                            })
                            .unwrap_or(25);
                        let start = c.get(0x1501).and_then(be_u64).unwrap_or(0);
                        timecode.get_or_insert((start, u64::from(base.max(1))));
                    }
                }
                continue;
            }
            let (is_pic, is_snd) = match def.get(10..13) {
                Some([0x02, 0x02, 0x01]) => (true, false),
                Some([0x02, 0x02, 0x02]) => (false, true),
                _ => (false, false),
            };
            if !is_pic && !is_snd {
                continue;
            }
            let desc = descriptors.iter().find(|d| {
                let linked = d.get(0x3006).and_then(be_u32);
                let tid = t.get(0x4801).and_then(be_u32);
                linked.is_some() && linked == tid
            });
            let desc = desc.or_else(|| {
                let want = if is_pic {
                    [0x28, 0x29, 0x51]
                } else {
                    [0x48, 0x42, 0x47]
                };
                descriptors
                    .iter()
                    .filter(|d| want.contains(&d.kind))
                    .nth(if is_pic { picture_seen } else { sound_seen })
            });
            let mut st;
            if is_pic {
                picture_seen += 1;
                st = Stream::new(MediaType::Video);
                st.set_codec("mpeg2video");
                st.time_base = Rational::new(rate.1, rate.0);
                let r = Rational::reduced(rate.0, rate.1, i32::MAX as i64);
                st.r_frame_rate = r;
                st.avg_frame_rate = r;
                if let Some(d) = desc {
                    st.video.width = d.get(0x3203).and_then(be_u32).unwrap_or(0);
                    st.video.height = d.get(0x3202).and_then(be_u32).unwrap_or(0);
                }
                if let Some(f) = first_picture {
                    codecs::apply_mpeg2_headers(&mut st, &f[..f.len().min(1 << 16)]);
                    st.extradata_size = codecs::mpeg2_extradata_len(f).unwrap_or(0);
                }
                st.video.coded_width = 0;
                st.video.coded_height = 0;
                st.duration_ts = duration;
            } else {
                sound_seen += 1;
                st = Stream::new(MediaType::Audio);
                let rate_hz = desc
                    .and_then(|d| d.get(0x3d03))
                    .and_then(rational)
                    .map_or(48000, |(n, d)| if d > 0 { n / d } else { n });
                let bits = desc
                    .and_then(|d| d.get(0x3d01))
                    .and_then(be_u32)
                    .unwrap_or(16);
                let ch = desc
                    .and_then(|d| d.get(0x3d07))
                    .and_then(be_u32)
                    .unwrap_or(1);
                st.set_codec(match bits {
                    24 => "pcm_s24le",
                    32 => "pcm_s32le",
                    _ => "pcm_s16le",
                });
                st.audio.sample_rate = rate_hz as u32;
                st.audio.channels = ch;
                codecs::apply_pcm(&mut st);
                st.time_base = Rational::new(1, rate_hz.max(1));
                st.duration_ts = duration.map(|d| rescale(d, rate_hz * rate.1, rate.0));
            }
            st.start_pts = Some(0);
            if let Some(u) = &file_umid {
                st.tag("file_package_umid", u.clone());
            }
            out.push(st);
        }
    }
    if let Some((start, base)) = timecode {
        let (f, s) = (start % base, start / base);
        format.tags.push((
            "timecode".into(),
            format!("{:02}:{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60, f),
        ));
    }
    if out.is_empty() {
        return Err(FormatError::invalid(
            "MXF",
            0,
            "no picture or sound track in the material package",
        ));
    }
    let duration_us = out
        .iter()
        .filter_map(|s| {
            s.duration_ts
                .map(|d| rescale(d, 1_000_000 * s.time_base.num, s.time_base.den))
        })
        .max();
    format.start_time_us = Some(0);
    format.duration_us = duration_us;
    format.bit_rate = duration_us
        .filter(|d| *d > 0)
        .map(|d| (len as f64 * 8.0 * 1e6 / d as f64) as i64);
    Ok((format, out))
}
