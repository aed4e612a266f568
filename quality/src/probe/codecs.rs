//! Codec headers → the stream fields ffprobe prints (profile, level, pix_fmt, colour, sample
//! format, …). Pure functions over the codec's own bytes (avcC, hvcC, a sequence header, the
//! first frame); a short or corrupt header leaves the fields it could not read unknown.

use super::bytes::{unescape_rbsp, Bits};
use super::model::{MediaType, Rational, SideData, Stream};

/// (name, long name, type) as in FFmpeg's codec descriptors.
pub fn descriptor(name: &str) -> Option<(&'static str, &'static str, MediaType)> {
    use MediaType::*;
    const TABLE: &[(&str, &str, MediaType)] = &[
        ("h264", "H.264 / AVC / MPEG-4 AVC / MPEG-4 part 10", Video),
        ("hevc", "H.265 / HEVC (High Efficiency Video Coding)", Video),
        ("av1", "Alliance for Open Media AV1", Video),
        ("vp8", "On2 VP8", Video),
        ("vp9", "Google VP9", Video),
        ("mpeg1video", "MPEG-1 video", Video),
        ("mpeg2video", "MPEG-2 video", Video),
        ("mpeg4", "MPEG-4 part 2", Video),
        ("prores", "Apple ProRes (iCodec Pro)", Video),
        ("mjpeg", "Motion JPEG", Video),
        ("ffv1", "FFmpeg video codec #1", Video),
        ("rawvideo", "raw video", Video),
        ("theora", "Theora", Video),
        ("dnxhd", "VC3/DNxHD", Video),
        ("png", "PNG (Portable Network Graphics) image", Video),
        ("aac", "AAC (Advanced Audio Coding)", Audio),
        ("mp3", "MP3 (MPEG audio layer 3)", Audio),
        ("mp2", "MP2 (MPEG audio layer 2)", Audio),
        ("mp1", "MP1 (MPEG audio layer 1)", Audio),
        ("opus", "Opus (Opus Interactive Audio Codec)", Audio),
        ("vorbis", "Vorbis", Audio),
        ("flac", "FLAC (Free Lossless Audio Codec)", Audio),
        ("ac3", "ATSC A/52A (AC-3)", Audio),
        ("eac3", "ATSC A/52B (AC-3, E-AC-3)", Audio),
        ("alac", "ALAC (Apple Lossless Audio Codec)", Audio),
        ("pcm_s16le", "PCM signed 16-bit little-endian", Audio),
        ("pcm_s16be", "PCM signed 16-bit big-endian", Audio),
        ("pcm_s24le", "PCM signed 24-bit little-endian", Audio),
        ("pcm_s24be", "PCM signed 24-bit big-endian", Audio),
        ("pcm_s32le", "PCM signed 32-bit little-endian", Audio),
        ("pcm_s32be", "PCM signed 32-bit big-endian", Audio),
        (
            "pcm_f32le",
            "PCM 32-bit floating point little-endian",
            Audio,
        ),
        ("pcm_f32be", "PCM 32-bit floating point big-endian", Audio),
        (
            "pcm_f64le",
            "PCM 64-bit floating point little-endian",
            Audio,
        ),
        ("pcm_u8", "PCM unsigned 8-bit", Audio),
        ("mov_text", "MOV text", Subtitle),
        ("subrip", "SubRip subtitle", Subtitle),
        ("ass", "ASS (Advanced SSA) subtitle", Subtitle),
        ("webvtt", "WebVTT subtitle", Subtitle),
        ("bin_data", "binary data", Data),
    ];
    TABLE.iter().find(|d| d.0 == name).copied()
}

pub fn color_primaries(v: u32) -> Option<&'static str> {
    Some(match v {
        0 => "reserved",
        1 => "bt709",
        4 => "bt470m",
        5 => "bt470bg",
        6 => "smpte170m",
        7 => "smpte240m",
        8 => "film",
        9 => "bt2020",
        10 => "smpte428",
        11 => "smpte431",
        12 => "smpte432",
        22 => "ebu3213",
        _ => return None,
    })
}

pub fn color_transfer(v: u32) -> Option<&'static str> {
    Some(match v {
        0 => "reserved",
        1 => "bt709",
        4 => "gamma22",
        5 => "gamma28",
        6 => "smpte170m",
        7 => "smpte240m",
        8 => "linear",
        9 => "log100",
        10 => "log316",
        11 => "iec61966-2-4",
        12 => "bt1361e",
        13 => "iec61966-2-1",
        14 => "bt2020-10",
        15 => "bt2020-12",
        16 => "smpte2084",
        17 => "smpte428",
        18 => "arib-std-b67",
        _ => return None,
    })
}

pub fn color_space(v: u32) -> Option<&'static str> {
    Some(match v {
        0 => "gbr",
        1 => "bt709",
        3 => "reserved",
        4 => "fcc",
        5 => "bt470bg",
        6 => "smpte170m",
        7 => "smpte240m",
        8 => "ycgco",
        9 => "bt2020nc",
        10 => "bt2020c",
        11 => "smpte2085",
        12 => "chroma-derived-nc",
        13 => "chroma-derived-c",
        14 => "ictcp",
        _ => return None,
    })
}

pub fn chroma_location(v: u32) -> Option<&'static str> {
    Some(match v {
        1 => "left",
        2 => "center",
        3 => "topleft",
        4 => "top",
        5 => "bottomleft",
        6 => "bottom",
        _ => return None,
    })
}

/// FFmpeg pixel format name for planar YUV with the given chroma format (0 mono, 1 4:2:0,
/// 2 4:2:2, 3 4:4:4) and bit depth.
pub fn yuv_pix_fmt(chroma: u32, depth: u32, full_range_8bit_jpeg: bool) -> Option<String> {
    let base = match chroma {
        0 => "gray",
        1 => "yuv420p",
        2 => "yuv422p",
        3 => "yuv444p",
        _ => return None,
    };
    Some(match depth {
        8 if full_range_8bit_jpeg && chroma != 0 => base.replace("yuv", "yuvj"),
        8 => base.to_string(),
        d => format!("{base}{d}le"),
    })
}

fn channel_layout(channels: u32) -> Option<String> {
    Some(
        match channels {
            1 => "mono",
            2 => "stereo",
            3 => "2.1",
            4 => "quad",
            5 => "5.0",
            6 => "5.1",
            8 => "7.1",
            _ => return None,
        }
        .to_string(),
    )
}

const H264_SAR: [(i64, i64); 17] = [
    (0, 1),
    (1, 1),
    (12, 11),
    (10, 11),
    (16, 11),
    (40, 33),
    (24, 11),
    (20, 11),
    (32, 11),
    (80, 33),
    (18, 11),
    (15, 11),
    (64, 33),
    (160, 99),
    (4, 3),
    (3, 2),
    (2, 1),
];

/// The VUI fields H.264 and H.265 share.
#[derive(Debug, Default, Clone)]
struct Vui {
    sar: Option<Rational>,
    full_range: Option<bool>,
    colour: Option<(u32, u32, u32)>,
    chroma_loc: Option<u32>,
}

fn vui_head(b: &mut Bits) -> Option<Vui> {
    let mut v = Vui::default();
    if b.flag()? {
        let idc = b.u(8)? as usize;
        if idc == 255 {
            let (w, h) = (b.u(16)?, b.u(16)?);
            v.sar = Some(Rational::new(i64::from(w), i64::from(h)));
        } else if let Some(&(n, d)) = H264_SAR.get(idc) {
            v.sar = Some(Rational::new(n, d));
        }
    }
    if b.flag()? {
        b.skip(1)?;
    }
    if b.flag()? {
        b.skip(3)?;
        v.full_range = Some(b.flag()?);
        if b.flag()? {
            v.colour = Some((b.u(8)?, b.u(8)?, b.u(8)?));
        }
    }
    if b.flag()? {
        v.chroma_loc = Some(b.ue()?);
        b.ue()?;
    }
    Some(v)
}

fn apply_vui(st: &mut Stream, vui: &Vui) {
    let v = &mut st.video;
    if let Some(sar) = vui.sar {
        v.codec_sar = Some(sar);
    }
    if let Some(full) = vui.full_range {
        v.color_range = Some(if full { "pc" } else { "tv" });
    }
    if let Some((p, t, m)) = vui.colour {
        v.color_primaries = color_primaries(p);
        v.color_transfer = color_transfer(t);
        v.color_space = color_space(m);
    }
    if let Some(loc) = vui.chroma_loc {
        v.chroma_location = chroma_location(loc + 1);
    }
}

fn h264_profile_name(profile_idc: u32, constraints: u32) -> Option<&'static str> {
    let c1 = constraints & 0x40 != 0;
    let c3 = constraints & 0x10 != 0;
    Some(match profile_idc {
        66 if c1 => "Constrained Baseline",
        66 => "Baseline",
        77 => "Main",
        88 => "Extended",
        100 => "High",
        110 if c3 => "High 10 Intra",
        110 => "High 10",
        122 if c3 => "High 4:2:2 Intra",
        122 => "High 4:2:2",
        244 if c3 => "High 4:4:4 Intra",
        244 => "High 4:4:4 Predictive",
        44 => "CAVLC 4:4:4",
        118 => "Multiview High",
        128 => "Stereo High",
        _ => return None,
    })
}

fn skip_scaling_list(b: &mut Bits, size: usize) -> Option<()> {
    let (mut last, mut next) = (8i32, 8i32);
    for _ in 0..size {
        if next != 0 {
            let delta = b.se()?;
            next = (last + delta + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Some(())
}

/// Parses an H.264 SPS NAL (with its header byte) into the stream.
pub fn apply_h264_sps(st: &mut Stream, nal: &[u8]) -> Option<()> {
    let rbsp = unescape_rbsp(nal.get(1..)?);
    let mut b = Bits::new(&rbsp);
    let profile_idc = b.u(8)?;
    let constraints = b.u(8)?;
    let level = b.u(8)?;
    st.profile = h264_profile_name(profile_idc, constraints).map(str::to_string);
    st.video.level = level as i32;
    b.ue()?;
    let (mut chroma, mut depth) = (1, 8);
    if [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135].contains(&profile_idc) {
        chroma = b.ue()?;
        if chroma == 3 {
            b.skip(1)?;
        }
        depth = b.ue()? + 8;
        b.ue()?;
        b.skip(1)?;
        if b.flag()? {
            for i in 0..(if chroma == 3 { 12 } else { 8 }) {
                if b.flag()? {
                    skip_scaling_list(&mut b, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    st.video.pix_fmt = yuv_pix_fmt(chroma, depth, false);
    st.bits_per_raw_sample = Some(depth);
    st.video.chroma_location = Some("left");
    b.ue()?;
    match b.ue()? {
        0 => {
            b.ue()?;
        }
        1 => {
            b.skip(1)?;
            b.se()?;
            b.se()?;
            let n = b.ue()?;
            if n > 255 {
                return None;
            }
            for _ in 0..n {
                b.se()?;
            }
        }
        _ => {}
    }
    b.ue()?;
    b.skip(1)?;
    let mbs_w = b.ue()?.checked_add(1)?;
    let map_h = b.ue()?.checked_add(1)?;
    let frame_mbs_only = b.flag()?;
    if !frame_mbs_only {
        b.skip(1)?;
    }
    b.skip(1)?;
    let (mut cl, mut cr, mut ct, mut cb) = (0, 0, 0, 0);
    if b.flag()? {
        (cl, cr, ct, cb) = (b.ue()?, b.ue()?, b.ue()?, b.ue()?);
    }
    let fmo = if frame_mbs_only { 1 } else { 2 };
    let (cx, cy) = match chroma {
        1 => (2, 2 * fmo),
        2 => (2, fmo),
        _ => (1, fmo),
    };
    let w = (mbs_w * 16).checked_sub((cl + cr).checked_mul(cx)?)?;
    let h = (map_h * 16 * fmo).checked_sub((ct + cb).checked_mul(cy)?)?;
    st.video.width = w;
    st.video.height = h;
    st.video.coded_width = w;
    st.video.coded_height = h;
    // FFmpeg takes the field order from the first decoded picture; x264 and most encoders
    // code interlaced streams top field first.
    st.video.field_order = Some(if frame_mbs_only { "progressive" } else { "tt" });
    if b.flag()? {
        let vui = vui_head(&mut b)?;
        let full = vui.full_range == Some(true);
        st.video.pix_fmt = yuv_pix_fmt(chroma, depth, full);
        apply_vui(st, &vui);
        if b.flag()? {
            let (units, scale) = (b.u(32)?, b.u(32)?);
            b.skip(1)?;
            if units > 0 && scale > 0 {
                st.video_rate = Some(Rational::reduced(
                    i64::from(scale),
                    2 * i64::from(units),
                    i32::MAX as i64,
                ));
            }
        }
        let nal_hrd = b.flag()?;
        if nal_hrd {
            skip_hrd(&mut b)?;
        }
        let vcl_hrd = b.flag()?;
        if vcl_hrd {
            skip_hrd(&mut b)?;
        }
        if nal_hrd || vcl_hrd {
            b.skip(1)?;
        }
        b.skip(1)?;
        if b.flag()? {
            b.skip(1)?;
            for _ in 0..4 {
                b.ue()?;
            }
            st.video.has_b_frames = b.ue()?.min(16);
        }
    }
    Some(())
}

fn skip_hrd(b: &mut Bits) -> Option<()> {
    let cnt = b.ue()? + 1;
    if cnt > 32 {
        return None;
    }
    b.skip(8)?;
    for _ in 0..cnt {
        b.ue()?;
        b.ue()?;
        b.skip(1)?;
    }
    b.skip(20)
}

/// avcC (AVCDecoderConfigurationRecord): the first SPS, and the NAL length size.
pub fn apply_avcc(st: &mut Stream, avcc: &[u8]) {
    st.extradata_size = avcc.len();
    if avcc.len() < 7 || avcc[0] != 1 {
        return;
    }
    let nal_len = (avcc[4] & 3) + 1;
    st.private = vec![
        ("is_avc", "true".into()),
        ("nal_length_size", nal_len.to_string()),
    ];
    let n_sps = avcc[5] & 0x1f;
    if n_sps > 0 && avcc.len() >= 8 {
        let len = usize::from(u16::from_be_bytes([avcc[6], avcc[7]]));
        if let Some(sps) = avcc.get(8..8 + len) {
            let _ = apply_h264_sps(st, sps);
        }
    }
}

fn hevc_profile_name(p: u32) -> Option<&'static str> {
    Some(match p {
        1 => "Main",
        2 => "Main 10",
        3 => "Main Still Picture",
        4 => "Rext",
        9 => "SCC",
        _ => return None,
    })
}

fn skip_profile_tier_level(b: &mut Bits, max_sub_layers_minus1: u32) -> Option<(u32, u32)> {
    b.skip(3)?;
    let profile = b.u(5)?;
    b.skip(32 + 4 + 43 + 1)?;
    let level = b.u(8)?;
    let mut sub = [(false, false); 8];
    for s in sub.iter_mut().take(max_sub_layers_minus1 as usize) {
        *s = (b.flag()?, b.flag()?);
    }
    if max_sub_layers_minus1 > 0 {
        for _ in max_sub_layers_minus1..8 {
            b.skip(2)?;
        }
    }
    for s in sub.iter().take(max_sub_layers_minus1 as usize) {
        if s.0 {
            b.skip(88)?;
        }
        if s.1 {
            b.skip(8)?;
        }
    }
    Some((profile, level))
}

fn hevc_scaling_list(b: &mut Bits) -> Option<()> {
    for size_id in 0..4 {
        let step = if size_id == 3 { 3 } else { 1 };
        let mut matrix = 0;
        while matrix < 6 {
            if !b.flag()? {
                b.ue()?;
            } else {
                let coefs = 64.min(1 << (4 + (size_id << 1)));
                if size_id > 1 {
                    b.se()?;
                }
                for _ in 0..coefs {
                    b.se()?;
                }
            }
            matrix += step;
        }
    }
    Some(())
}

/// Parses an H.265 SPS NAL (with its 2-byte header) into the stream.
pub fn apply_hevc_sps(st: &mut Stream, nal: &[u8]) -> Option<()> {
    let rbsp = unescape_rbsp(nal.get(2..)?);
    let mut b = Bits::new(&rbsp);
    b.skip(4)?;
    let max_sub = b.u(3)?;
    b.skip(1)?;
    let (profile, level) = skip_profile_tier_level(&mut b, max_sub)?;
    st.profile = hevc_profile_name(profile).map(str::to_string);
    st.video.level = level as i32;
    b.ue()?;
    let chroma = b.ue()?;
    if chroma == 3 {
        b.skip(1)?;
    }
    let (w, h) = (b.ue()?, b.ue()?);
    let (mut cl, mut cr, mut ct, mut cb) = (0, 0, 0, 0);
    if b.flag()? {
        (cl, cr, ct, cb) = (b.ue()?, b.ue()?, b.ue()?, b.ue()?);
    }
    let (sx, sy) = match chroma {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let w = w.checked_sub((cl + cr).checked_mul(sx)?)?;
    let h = h.checked_sub((ct + cb).checked_mul(sy)?)?;
    st.video.width = w;
    st.video.height = h;
    st.video.coded_width = w;
    st.video.coded_height = h;
    let depth = b.ue()? + 8;
    b.ue()?;
    st.video.pix_fmt = yuv_pix_fmt(chroma, depth, false);
    st.video.color_range = Some("tv");
    if chroma == 1 {
        st.video.chroma_location = Some("left");
    }
    let log2_poc = b.ue()? + 4;
    let all = b.flag()?;
    let mut reorder = 0;
    for _ in (if all { 0 } else { max_sub })..=max_sub {
        b.ue()?;
        reorder = b.ue()?;
        b.ue()?;
    }
    st.video.has_b_frames = reorder.min(16);
    for _ in 0..6 {
        b.ue()?;
    }
    if b.flag()? && b.flag()? {
        hevc_scaling_list(&mut b)?;
    }
    b.skip(2)?;
    if b.flag()? {
        b.skip(8)?;
        b.ue()?;
        b.ue()?;
        b.skip(1)?;
    }
    let num_rps = b.ue()?;
    if num_rps > 64 {
        return None;
    }
    let mut deltas = [0u32; 65];
    for i in 0..num_rps as usize {
        let inter = i != 0 && b.flag()?;
        if inter {
            b.skip(1)?;
            b.ue()?;
            let mut n = 0;
            for _ in 0..=deltas[i - 1] {
                let used = b.flag()?;
                let keep = used || b.flag()?;
                if keep {
                    n += 1;
                }
            }
            deltas[i] = n;
        } else {
            let (neg, pos) = (b.ue()?, b.ue()?);
            if neg > 16 || pos > 16 {
                return None;
            }
            for _ in 0..neg + pos {
                b.ue()?;
                b.skip(1)?;
            }
            deltas[i] = neg + pos;
        }
    }
    if b.flag()? {
        let n = b.ue()?;
        if n > 32 {
            return None;
        }
        for _ in 0..n {
            b.skip(log2_poc as usize + 1)?;
        }
    }
    b.skip(2)?;
    st.video.field_order = Some("progressive");
    if b.flag()? {
        let vui = vui_head(&mut b)?;
        let full = vui.full_range == Some(true);
        st.video.pix_fmt = yuv_pix_fmt(chroma, depth, full && depth == 8 && chroma == 1);
        apply_vui(st, &vui);
        b.skip(3)?;
        if b.flag()? {
            for _ in 0..4 {
                b.ue()?;
            }
        }
        if b.flag()? {
            let (units, scale) = (b.u(32)?, b.u(32)?);
            if units > 0 && scale > 0 {
                st.video_rate = Some(Rational::reduced(
                    i64::from(scale),
                    i64::from(units),
                    i32::MAX as i64,
                ));
            }
        }
    }
    Some(())
}

/// hvcC (HEVCDecoderConfigurationRecord): its SPS.
pub fn apply_hvcc(st: &mut Stream, hvcc: &[u8]) {
    st.extradata_size = hvcc.len();
    if hvcc.len() < 23 {
        return;
    }
    let mut pos = 23;
    for _ in 0..hvcc[22] {
        let Some(h) = hvcc.get(pos..pos + 3) else {
            return;
        };
        let typ = h[0] & 0x3f;
        let n = u16::from_be_bytes([h[1], h[2]]);
        pos += 3;
        for _ in 0..n {
            let Some(l) = hvcc.get(pos..pos + 2) else {
                return;
            };
            let len = usize::from(u16::from_be_bytes([l[0], l[1]]));
            pos += 2;
            let Some(nal) = hvcc.get(pos..pos + len) else {
                return;
            };
            if typ == 33 {
                let _ = apply_hevc_sps(st, nal);
            }
            pos += len;
        }
    }
}

/// Splits an Annex B byte stream into NAL units (without start codes).
pub fn annexb_nals(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let mut e = starts.get(k + 1).map_or(data.len(), |n| n - 3);
        while e > s && data[e - 1] == 0 {
            e -= 1;
        }
        out.push(&data[s..e]);
    }
    out
}

fn leb128(b: &mut Bits) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..8 {
        let byte = b.u(8)?;
        v |= u64::from(byte & 0x7f) << (i * 7);
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// av1C and its sequence header OBU.
pub fn apply_av1c(st: &mut Stream, av1c: &[u8]) {
    st.extradata_size = av1c.len();
    if av1c.len() < 4 {
        return;
    }
    let _ = apply_av1_obus(st, &av1c[4..]);
}

pub fn apply_av1_obus(st: &mut Stream, mut data: &[u8]) -> Option<()> {
    while !data.is_empty() {
        let mut b = Bits::new(data);
        b.skip(1)?;
        let typ = b.u(4)?;
        let ext = b.flag()?;
        let has_size = b.flag()?;
        b.skip(1)?;
        if ext {
            b.skip(8)?;
        }
        let size = if has_size {
            leb128(&mut b)? as usize
        } else {
            b.bits_left() / 8
        };
        let hdr = (data.len() * 8 - b.bits_left()) / 8;
        let payload = data.get(hdr..hdr.checked_add(size)?)?;
        if typ == 1 {
            return av1_sequence_header(st, payload);
        }
        data = &data[hdr + size..];
    }
    None
}

fn av1_sequence_header(st: &mut Stream, p: &[u8]) -> Option<()> {
    let mut b = Bits::new(p);
    let profile = b.u(3)?;
    b.skip(1)?;
    let reduced = b.flag()?;
    st.profile = match profile {
        0 => Some("Main".into()),
        1 => Some("High".into()),
        2 => Some("Professional".into()),
        _ => None,
    };
    if reduced {
        st.video.level = b.u(5)? as i32;
    } else {
        let timing = b.flag()?;
        let mut decoder_model = false;
        let mut delay_len = 0;
        if timing {
            b.skip(64)?;
            if b.flag()? {
                let _ = b.ue()?;
            }
            decoder_model = b.flag()?;
            if decoder_model {
                delay_len = b.u(5)? + 1;
                b.skip(32 + 5 + 5)?;
            }
        }
        let initial_delay = b.flag()?;
        let ops = b.u(5)? + 1;
        for i in 0..ops {
            b.skip(12)?;
            let lvl = b.u(5)?;
            if i == 0 {
                st.video.level = lvl as i32;
            }
            if lvl > 7 {
                b.skip(1)?;
            }
            if decoder_model && b.flag()? {
                b.skip(delay_len as usize * 2 + 1)?;
            }
            if initial_delay && b.flag()? {
                b.skip(4)?;
            }
        }
    }
    let wb = b.u(4)? + 1;
    let hb = b.u(4)? + 1;
    let w = b.u(wb)? + 1;
    let h = b.u(hb)? + 1;
    st.video.width = w;
    st.video.height = h;
    st.video.coded_width = w;
    st.video.coded_height = h;
    if !reduced && b.flag()? {
        b.skip(7)?;
    }
    b.skip(3)?;
    let mut order_hint = false;
    if !reduced {
        b.skip(4)?;
        order_hint = b.flag()?;
        if order_hint {
            b.skip(2)?;
        }
        let force = if b.flag()? { 2 } else { b.u(1)? };
        if force > 0 && !b.flag()? {
            b.skip(1)?;
        }
        if order_hint {
            b.skip(3)?;
        }
    }
    let _ = order_hint;
    b.skip(3)?;
    let high = b.flag()?;
    let depth = if profile == 2 && high {
        if b.flag()? {
            12
        } else {
            10
        }
    } else if high {
        10
    } else {
        8
    };
    let mono = if profile == 1 { false } else { b.flag()? };
    let (mut cp, mut tc, mut mc) = (2, 2, 2);
    if b.flag()? {
        (cp, tc, mc) = (b.u(8)?, b.u(8)?, b.u(8)?);
    }
    let (full, ssx, ssy);
    if mono {
        full = b.flag()?;
        (ssx, ssy) = (1, 1);
    } else if cp == 1 && tc == 13 && mc == 0 {
        full = true;
        (ssx, ssy) = (0, 0);
    } else {
        full = b.flag()?;
        match profile {
            0 => (ssx, ssy) = (1, 1),
            1 => (ssx, ssy) = (0, 0),
            _ if depth == 12 => {
                ssx = b.u(1)?;
                ssy = if ssx == 1 { b.u(1)? } else { 0 };
            }
            _ => (ssx, ssy) = (1, 0),
        }
    }
    let chroma = if mono {
        0
    } else {
        match (ssx, ssy) {
            (1, 1) => 1,
            (1, 0) => 2,
            _ => 3,
        }
    };
    st.video.pix_fmt = if cp == 1 && tc == 13 && mc == 0 {
        Some(if depth == 8 {
            "gbrp".into()
        } else {
            format!("gbrp{depth}le")
        })
    } else {
        yuv_pix_fmt(chroma, depth, false)
    };
    st.video.color_range = Some(if full { "pc" } else { "tv" });
    st.video.color_primaries = color_primaries(cp).filter(|_| cp != 2);
    st.video.color_transfer = color_transfer(tc).filter(|_| tc != 2);
    st.video.color_space = color_space(mc).filter(|_| mc != 2);
    st.video.field_order = Some("progressive");
    Some(())
}

/// The uncompressed header of a VP9 key frame.
pub fn apply_vp9_frame(st: &mut Stream, frame: &[u8]) -> Option<()> {
    let mut b = Bits::new(frame);
    if b.u(2)? != 2 {
        return None;
    }
    let lo = b.u(1)?;
    let hi = b.u(1)?;
    let profile = (hi << 1) | lo;
    if profile == 3 {
        b.skip(1)?;
    }
    st.profile = Some(format!("Profile {profile}"));
    st.video.field_order = Some("progressive");
    if b.flag()? {
        return None;
    }
    let key = !b.flag()?;
    b.skip(2)?;
    if !key || b.u(24)? != 0x49_83_42 {
        return None;
    }
    let depth = if profile >= 2 {
        if b.flag()? {
            12
        } else {
            10
        }
    } else {
        8
    };
    let cs = b.u(3)?;
    let (range, ssx, ssy);
    if cs != 7 {
        range = b.flag()?;
        if profile == 1 || profile == 3 {
            ssx = b.u(1)?;
            ssy = b.u(1)?;
            b.skip(1)?;
        } else {
            (ssx, ssy) = (1, 1);
        }
    } else {
        range = true;
        (ssx, ssy) = (0, 0);
        if profile == 1 || profile == 3 {
            b.skip(1)?;
        }
    }
    st.video.color_range = Some(if range { "pc" } else { "tv" });
    st.video.color_space = match cs {
        1 => Some("bt470bg"),
        2 => Some("bt709"),
        3 => Some("smpte170m"),
        4 => Some("smpte240m"),
        5 => Some("bt2020nc"),
        7 => Some("gbr"),
        _ => None,
    };
    st.video.pix_fmt = if cs == 7 {
        Some(if depth == 8 {
            "gbrp".into()
        } else {
            format!("gbrp{depth}le")
        })
    } else {
        let base = match (ssx, ssy) {
            (1, 1) => "yuv420p",
            (1, 0) => "yuv422p",
            (0, 1) => "yuv440p",
            _ => "yuv444p",
        };
        Some(if depth == 8 {
            base.to_string()
        } else {
            format!("{base}{depth}le")
        })
    };
    let w = b.u(16)? + 1;
    let h = b.u(16)? + 1;
    st.video.width = w;
    st.video.height = h;
    st.video.coded_width = w;
    st.video.coded_height = h;
    Some(())
}

pub fn apply_vp8_frame(st: &mut Stream, f: &[u8]) -> Option<()> {
    let b0 = *f.first()?;
    st.profile = Some(((b0 >> 1) & 7).to_string());
    st.video.pix_fmt = Some("yuv420p".into());
    st.video.field_order = Some("progressive");
    if b0 & 1 == 0 && f.get(3..6)? == [0x9d, 0x01, 0x2a] {
        let w = u32::from(u16::from_le_bytes([f[6], *f.get(7)?]) & 0x3fff);
        let h = u32::from(u16::from_le_bytes([*f.get(8)?, *f.get(9)?]) & 0x3fff);
        st.video.width = w;
        st.video.height = h;
        st.video.coded_width = w;
        st.video.coded_height = h;
    }
    Some(())
}

fn mpeg4_profile_name(p: u32) -> Option<&'static str> {
    const NAMES: [&str; 16] = [
        "Simple Profile",
        "Simple Scalable Profile",
        "Core Profile",
        "Main Profile",
        "N-bit Profile",
        "Scalable Texture Profile",
        "Simple Face Animation Profile",
        "Basic Animated Texture Profile",
        "Hybrid Profile",
        "Advanced Real Time Simple Profile",
        "Core Scalable Profile",
        "Advanced Coding Profile",
        "Advanced Core Profile",
        "Advanced Scalable Texture Profile",
        "Simple Studio Profile",
        "Advanced Simple Profile",
    ];
    NAMES.get(p as usize).copied()
}

/// Length of the MPEG-4 part 2 headers (VOS/VO/VOL) before the first GOV or VOP of a frame.
pub fn mpeg4_extradata_len(frame: &[u8]) -> Option<usize> {
    frame
        .windows(4)
        .position(|w| w[..3] == [0, 0, 1] && (w[3] == 0xb3 || w[3] == 0xb6))
        .filter(|p| *p > 0)
}

/// MPEG-4 part 2 configuration (VOS/VO/VOL headers: esds DecoderSpecificInfo or AVI extradata).
pub fn apply_mpeg4_config(st: &mut Stream, data: &[u8]) {
    st.video.pix_fmt = Some("yuv420p".into());
    st.video.chroma_location = Some("left");
    st.private = vec![
        ("quarter_sample", "false".into()),
        ("divx_packed", "false".into()),
    ];
    for nal in annexb_nals(data) {
        match nal.first() {
            Some(0xb0) if nal.len() > 1 => {
                let pli = u32::from(nal[1]);
                st.profile = mpeg4_profile_name(pli >> 4).map(str::to_string);
                st.video.level = (pli & 0xf) as i32;
            }
            Some(0x20..=0x2f) => {
                let _ = mpeg4_vol(st, &nal[1..]);
            }
            _ => {}
        }
    }
}

fn mpeg4_vol(st: &mut Stream, d: &[u8]) -> Option<()> {
    let mut b = Bits::new(d);
    b.skip(1)?;
    let vo_type = b.u(8)?;
    let mut verid = 1;
    if b.flag()? {
        verid = b.u(4)?;
        b.skip(3)?;
    }
    let ar = b.u(4)?;
    if ar == 15 {
        let (n, d) = (b.u(8)?, b.u(8)?);
        st.video.codec_sar = Some(Rational::new(i64::from(n), i64::from(d)));
    } else if let Some(&(n, d)) =
        [(0, 1), (1, 1), (12, 11), (10, 11), (16, 11), (40, 33)].get(ar as usize)
    {
        st.video.codec_sar = Some(Rational::new(n, d));
    }
    let low_delay = if b.flag()? {
        b.skip(2)?;
        let ld = b.flag()?;
        if b.flag()? {
            b.skip(79)?;
        }
        ld
    } else {
        vo_type == 1 || vo_type == 17
    };
    st.video.has_b_frames = u32::from(!low_delay);
    let shape = b.u(2)?;
    b.skip(1)?;
    let res = b.u(16)?;
    b.skip(1)?;
    if b.flag()? {
        let bits = 32 - res.saturating_sub(1).leading_zeros();
        b.skip(bits.max(1) as usize)?;
    }
    if shape == 0 {
        b.skip(1)?;
        let w = b.u(13)?;
        b.skip(1)?;
        let h = b.u(13)?;
        b.skip(1)?;
        st.video.width = w;
        st.video.height = h;
        st.video.coded_width = w;
        st.video.coded_height = h;
        b.skip(1)?;
        b.skip(1)?;
        let sprite = if verid == 1 { b.u(1)? } else { b.u(2)? };
        if sprite != 0 {
            return Some(());
        }
        if b.flag()? {
            b.skip(8)?;
        }
        if b.flag()? {
            for _ in 0..2 {
                if b.flag()? {
                    for _ in 0..64 {
                        if b.u(8)? == 0 {
                            break;
                        }
                    }
                }
            }
        }
        if verid != 1 && b.flag()? {
            st.private[0].1 = "true".into();
        }
    }
    Some(())
}

/// MPEG-1/2 video: sequence header, sequence extension, display extension, and the first picture
/// coding extension when present.
pub fn apply_mpeg2_headers(st: &mut Stream, data: &[u8]) {
    let mut progressive_seq = true;
    let mut is_mpeg2 = false;
    let mut chroma = 1;
    let mut vbv: i64 = 0;
    let mut seen_picture_ext = false;
    for nal in annexb_nals(data) {
        // MPEG-2 has no emulation prevention: zero bytes before the next start code are
        // payload (a picture coding extension can end in them), so read past the end as zeros.
        let mut padded = nal.get(1..).unwrap_or_default().to_vec();
        padded.extend_from_slice(&[0; 8]);
        let mut b = Bits::new(&padded);
        match nal.first() {
            Some(0xb3) => {
                let (Some(w), Some(h), Some(_ar), Some(fr)) = (b.u(12), b.u(12), b.u(4), b.u(4))
                else {
                    continue;
                };
                const RATES: [(i64, i64); 9] = [
                    (0, 1),
                    (24000, 1001),
                    (24, 1),
                    (25, 1),
                    (30000, 1001),
                    (30, 1),
                    (50, 1),
                    (60000, 1001),
                    (60, 1),
                ];
                if let Some(&(n, d)) = RATES.get(fr as usize).filter(|r| r.0 > 0) {
                    st.video_rate = Some(Rational::new(n, d));
                }
                st.video.width = w;
                st.video.height = h;
                st.video.codec_sar = Some(Rational::new(1, 1));
                if b.skip(19).is_some() {
                    vbv = i64::from(b.u(10).unwrap_or(0));
                }
            }
            Some(0xb5) => match b.u(4) {
                Some(1) => {
                    is_mpeg2 = true;
                    let pl = b.u(8).unwrap_or(0);
                    if pl & 0x80 != 0 {
                        if pl == 0x85 || pl == 0x82 {
                            st.profile = Some("4:2:2".into());
                            st.video.level = (pl & 0xf) as i32;
                        }
                    } else {
                        st.profile = match (pl >> 4) & 7 {
                            1 => Some("High".into()),
                            2 => Some("Spatially Scalable".into()),
                            3 => Some("SNR scalable".into()),
                            4 => Some("Main".into()),
                            5 => Some("Simple".into()),
                            _ => None,
                        };
                        st.video.level = (pl & 0xf) as i32;
                    }
                    progressive_seq = b.flag().unwrap_or(true);
                    chroma = b.u(2).unwrap_or(1);
                    let _ = b.skip(4 + 12 + 1);
                    vbv |= i64::from(b.u(8).unwrap_or(0)) << 10;
                    let low_delay = b.flag().unwrap_or(false);
                    st.video.has_b_frames = u32::from(!low_delay);
                }
                Some(2) => {
                    let _ = b.skip(3);
                    if b.flag() == Some(true) {
                        if let (Some(p), Some(t), Some(m)) = (b.u(8), b.u(8), b.u(8)) {
                            st.video.color_primaries = color_primaries(p).filter(|_| p != 2);
                            st.video.color_transfer = color_transfer(t).filter(|_| t != 2);
                            st.video.color_space = color_space(m).filter(|_| m != 2);
                        }
                    }
                }
                Some(8) if !seen_picture_ext => {
                    seen_picture_ext = true;
                    let _ = b.skip(16 + 2);
                    let structure = b.u(2).unwrap_or(3);
                    let tff = b.flag().unwrap_or(false);
                    // frame_pred_frame_dct .. chroma_420_type, then progressive_frame.
                    let _ = b.skip(7);
                    let progressive_frame = b.flag().unwrap_or(true);
                    let _ = structure;
                    st.video.field_order = Some(if progressive_seq || progressive_frame {
                        "progressive"
                    } else if tff {
                        "tt"
                    } else {
                        "bb"
                    });
                }
                _ => {}
            },
            _ => {}
        }
    }
    st.video.pix_fmt = yuv_pix_fmt(chroma, 8, false);
    st.video.color_range = Some("tv");
    st.video.chroma_location = Some(if chroma == 2 { "topleft" } else { "left" });
    if is_mpeg2 {
        st.side_data = vec![SideData::CpbProperties {
            buffer_size: vbv * 16 * 1024,
        }];
    }
}

/// Length of the MPEG-1/2 "extradata" FFmpeg's parser splits off a keyframe: from the sequence
/// header up to the first start code that is neither a sequence header nor an extension.
pub fn mpeg2_extradata_len(frame: &[u8]) -> Option<usize> {
    let mut state = 0xffff_ffffu32;
    let mut found = false;
    for (i, b) in frame.iter().enumerate() {
        state = (state << 8) | u32::from(*b);
        if state == 0x1b3 {
            found = true;
        } else if found && state != 0x1b5 && state & 0xffff_ff00 == 0x100 {
            return Some(i - 3);
        }
    }
    None
}

/// JPEG frame (SOF marker) as Motion JPEG.
pub fn apply_mjpeg_frame(st: &mut Stream, f: &[u8]) -> Option<()> {
    let mut i = 2;
    while i + 4 <= f.len() {
        if f[i] != 0xff {
            return None;
        }
        let marker = f[i + 1];
        let len = usize::from(u16::from_be_bytes([f[i + 2], f[i + 3]]));
        if (0xc0..=0xc3).contains(&marker) {
            let s = f.get(i + 4..i + 2 + len)?;
            st.profile = Some(
                ["Baseline", "Sequential", "Progressive", "Lossless"][usize::from(marker - 0xc0)]
                    .into(),
            );
            let depth = u32::from(s[0]);
            let h = u32::from(u16::from_be_bytes([s[1], s[2]]));
            let w = u32::from(u16::from_be_bytes([s[3], s[4]]));
            let n = usize::from(*s.get(5)?);
            st.video.width = w;
            st.video.height = h;
            st.video.coded_width = w;
            st.video.coded_height = h;
            st.bits_per_raw_sample = Some(depth);
            if n == 3 {
                let y = s.get(7)?;
                let (hs, vs) = (y >> 4, y & 0xf);
                let (chroma, loc) = match (hs, vs) {
                    (2, 2) => ("yuvj420p", Some("center")),
                    (2, 1) => ("yuvj422p", None),
                    (1, 1) => ("yuvj444p", None),
                    _ => ("yuvj420p", Some("center")),
                };
                st.video.pix_fmt = Some(chroma.into());
                st.video.chroma_location = loc;
            } else if n == 1 {
                st.video.pix_fmt = Some("gray".into());
            }
            st.video.color_range = Some("pc");
            st.video.color_space = Some("bt470bg");
            return Some(());
        }
        i += 2 + len;
    }
    None
}

/// ProRes: the profile from the sample entry's fourcc, the rest from the frame header.
pub fn apply_prores(st: &mut Stream, tag: &[u8; 4], frame: Option<&[u8]>) {
    let (profile, alpha444) = match tag {
        b"apco" => ("Proxy", false),
        b"apcs" => ("LT", false),
        b"apcn" => ("Standard", false),
        b"apch" => ("HQ", false),
        b"ap4h" => ("4444", true),
        b"ap4x" => ("4444 XQ", true),
        _ => ("", false),
    };
    if !profile.is_empty() {
        st.profile = Some(profile.into());
    }
    st.video.pix_fmt = Some(
        if alpha444 {
            "yuv444p10le"
        } else {
            "yuv422p10le"
        }
        .into(),
    );
    st.video.color_range = Some("tv");
    st.bits_per_raw_sample = Some(if alpha444 { 12 } else { 10 });
    let Some(f) = frame else { return };
    // size(4) 'icpf'(4) hdr_size(2) version(2) creator(4) width(2) height(2) flags(1) res(1)
    // primaries(1) transfer(1) matrix(1)
    let Some(h) = f.get(8..27) else { return };
    if &f[4..8] != b"icpf" {
        return;
    }
    let flags = h[12];
    let alpha = h[17] & 0xf != 0;
    if flags >> 6 == 3 {
        st.video.pix_fmt = Some(if alpha { "yuva444p12le" } else { "yuv444p12le" }.into());
    }
    st.video.field_order = Some(match (flags >> 2) & 3 {
        1 => "tt",
        2 => "bb",
        _ => "progressive",
    });
    let (p, t, m) = (u32::from(h[14]), u32::from(h[15]), u32::from(h[16]));
    st.video.color_primaries = color_primaries(p).filter(|_| p != 2 && p != 0);
    st.video.color_transfer = color_transfer(t).filter(|_| t != 2 && t != 0);
    st.video.color_space = color_space(m).filter(|_| m != 2 && m != 0);
}

const AAC_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// AudioSpecificConfig.
pub fn apply_aac_asc(st: &mut Stream, asc: &[u8]) -> Option<()> {
    st.extradata_size = asc.len();
    st.audio.sample_fmt = Some("fltp");
    let mut b = Bits::new(asc);
    let mut aot = b.u(5)?;
    if aot == 31 {
        aot = 32 + b.u(6)?;
    }
    let idx = b.u(4)?;
    let rate = if idx == 15 {
        b.u(24)?
    } else {
        *AAC_RATES.get(idx as usize)?
    };
    let ch = b.u(4)?;
    st.profile = match aot {
        1 => Some("Main"),
        2 => Some("LC"),
        3 => Some("SSR"),
        4 => Some("LTP"),
        5 => Some("HE-AAC"),
        29 => Some("HE-AACv2"),
        23 => Some("LD"),
        39 => Some("ELD"),
        _ => None,
    }
    .map(str::to_string);
    st.audio.sample_rate = if aot == 5 || aot == 29 {
        rate * 2
    } else {
        rate
    };
    if ch > 0 {
        let channels = match ch {
            7 => 8,
            c if c < 7 => c,
            _ => return Some(()),
        };
        st.audio.channels = channels;
        st.audio.channel_layout = match ch {
            3 => Some("3.0".into()),
            4 => Some("4.0".into()),
            5 => Some("5.0(side)".into()),
            6 => Some("5.1(side)".into()),
            7 => Some("7.1(wide)".into()),
            c => channel_layout(c),
        };
    }
    Some(())
}

/// An MPEG audio frame header (layer 1/2/3).
pub fn apply_mpa_header(st: &mut Stream, h: &[u8]) -> Option<()> {
    let v = u32::from_be_bytes([*h.first()?, *h.get(1)?, *h.get(2)?, *h.get(3)?]);
    if v >> 21 != 0x7ff {
        return None;
    }
    let version = (v >> 19) & 3;
    let layer = 4 - ((v >> 17) & 3);
    let br_idx = ((v >> 12) & 0xf) as usize;
    let sr_idx = ((v >> 10) & 3) as usize;
    let mode = (v >> 6) & 3;
    let base_rate = *[44100, 48000, 32000].get(sr_idx)?;
    let rate = match version {
        3 => base_rate,
        2 => base_rate / 2,
        0 => base_rate / 4,
        _ => return None,
    };
    let lsf = version != 3;
    let table: [u32; 15] = match (lsf, layer) {
        (false, 1) => [
            0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448,
        ],
        (false, 2) => [
            0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
        ],
        (false, _) => [
            0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
        ],
        (true, 1) => [
            0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256,
        ],
        (true, _) => [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
    };
    let name = match layer {
        1 => "mp1",
        2 => "mp2",
        _ => "mp3",
    };
    st.set_codec(name);
    st.audio.sample_rate = rate;
    st.audio.channels = if mode == 3 { 1 } else { 2 };
    st.audio.channel_layout = channel_layout(st.audio.channels);
    st.audio.sample_fmt = Some("fltp");
    st.bit_rate = table.get(br_idx).map(|k| i64::from(*k) * 1000);
    Some(())
}

const AC3_BITRATES: [u32; 19] = [
    32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 576, 640,
];

fn ac3_layout(acmod: u32, lfe: bool) -> (u32, Option<String>) {
    let (n, name) = match acmod {
        0 => (2, "stereo"),
        1 => (1, "mono"),
        2 => (2, "stereo"),
        3 => (3, "3.0"),
        4 => (3, "2.1"),
        5 => (4, "4.0"),
        6 => (4, "quad(side)"),
        _ => (5, "5.0(side)"),
    };
    if lfe {
        let l = match acmod {
            1 => "2.1".to_string(),
            7 => "5.1(side)".to_string(),
            _ => format!("{name}+LFE"),
        };
        (n + 1, Some(l))
    } else {
        (n, Some(name.to_string()))
    }
}

/// An AC-3 sync frame.
pub fn apply_ac3_frame(st: &mut Stream, f: &[u8]) -> Option<()> {
    if f.get(..2)? != [0x0b, 0x77] {
        return None;
    }
    let mut b = Bits::new(f.get(4..)?);
    let fscod = b.u(2)?;
    let frmsizecod = b.u(6)?;
    let _bsid = b.u(5)?;
    let _bsmod = b.u(3)?;
    let acmod = b.u(3)?;
    if acmod & 1 != 0 && acmod != 1 {
        b.skip(2)?;
    }
    if acmod & 4 != 0 {
        b.skip(2)?;
    }
    if acmod == 2 {
        b.skip(2)?;
    }
    let lfe = b.flag()?;
    st.audio.sample_rate = *[48000, 44100, 32000].get(fscod as usize)?;
    let (n, layout) = ac3_layout(acmod, lfe);
    st.audio.channels = n;
    st.audio.channel_layout = layout;
    st.audio.sample_fmt = Some("fltp");
    st.bit_rate = AC3_BITRATES
        .get((frmsizecod >> 1) as usize)
        .map(|k| i64::from(*k) * 1000);
    Some(())
}

/// dac3 box (AC3SpecificBox).
pub fn apply_dac3(st: &mut Stream, d: &[u8]) -> Option<()> {
    let mut b = Bits::new(d);
    let fscod = b.u(2)?;
    b.skip(5)?;
    let bsmod = b.u(3)?;
    let acmod = b.u(3)?;
    let lfe = b.flag()?;
    let brc = b.u(5)?;
    st.audio.sample_rate = *[48000, 44100, 32000].get(fscod as usize)?;
    let (n, layout) = ac3_layout(acmod, lfe);
    st.audio.channels = n;
    st.audio.channel_layout = layout;
    st.audio.sample_fmt = Some("fltp");
    st.bit_rate = AC3_BITRATES.get(brc as usize).map(|k| i64::from(*k) * 1000);
    st.side_data.push(SideData::AudioServiceType(bsmod));
    Some(())
}

/// OpusHead (19+ bytes).
pub fn apply_opus_head(st: &mut Stream, h: &[u8]) -> Option<()> {
    st.extradata_size = h.len();
    st.audio.sample_fmt = Some("fltp");
    st.audio.sample_rate = 48000;
    let ch = u32::from(*h.get(9)?);
    st.audio.channels = ch;
    st.audio.channel_layout = channel_layout(ch);
    Some(())
}

/// Vorbis identification header (the first of the three packets).
pub fn apply_vorbis_id(st: &mut Stream, h: &[u8]) -> Option<()> {
    if h.get(..7)? != b"\x01vorbis" {
        return None;
    }
    let ch = u32::from(*h.get(11)?);
    let rate = u32::from_le_bytes(h.get(12..16)?.try_into().ok()?);
    let nominal = i32::from_le_bytes(h.get(20..24)?.try_into().ok()?);
    st.audio.sample_fmt = Some("fltp");
    st.audio.channels = ch;
    st.audio.sample_rate = rate;
    st.audio.channel_layout = channel_layout(ch);
    if nominal > 0 {
        st.bit_rate = Some(i64::from(nominal));
    }
    Some(())
}

/// FLAC STREAMINFO (34 bytes).
pub fn apply_flac_streaminfo(st: &mut Stream, si: &[u8]) -> Option<()> {
    let mut b = Bits::new(si.get(10..18)?);
    let rate = b.u(20)?;
    let ch = b.u(3)? + 1;
    let bps = b.u(5)? + 1;
    st.extradata_size = 34;
    st.audio.sample_rate = rate;
    st.audio.channels = ch;
    st.audio.channel_layout = channel_layout(ch);
    st.audio.sample_fmt = Some(if bps <= 16 { "s16" } else { "s32" });
    st.bits_per_raw_sample = Some(bps);
    Some(())
}

/// PCM: sample format and bit rate follow from the codec name.
pub fn apply_pcm(st: &mut Stream) {
    let (fmt, bits) = match st.codec_name.as_str() {
        "pcm_u8" => ("u8", 8),
        "pcm_s16le" | "pcm_s16be" => ("s16", 16),
        "pcm_s24le" | "pcm_s24be" => ("s32", 24),
        "pcm_s32le" | "pcm_s32be" => ("s32", 32),
        "pcm_f32le" | "pcm_f32be" => ("flt", 32),
        "pcm_f64le" => ("dbl", 64),
        _ => return,
    };
    st.audio.sample_fmt = Some(fmt);
    st.audio.bits_per_sample = bits;
    if bits == 24 {
        st.bits_per_raw_sample = Some(24);
    }
    st.bit_rate =
        Some(i64::from(st.audio.sample_rate) * i64::from(st.audio.channels) * i64::from(bits));
}

/// FFmpeg's range decoder (libavcodec/rangecoder.[ch]) with the state tables FFV1 builds
/// (`ff_build_rac_states(c, 0.05 * 2^32, 256 - 8)`), enough to read an FFV1 version 0/1 frame
/// header. Reading past the end yields zero bytes, as FFmpeg's `refill` does.
struct RangeDecoder<'a> {
    data: &'a [u8],
    pos: usize,
    low: u32,
    range: u32,
    one_state: [u8; 256],
    zero_state: [u8; 256],
}

impl<'a> RangeDecoder<'a> {
    fn new(data: &'a [u8]) -> Option<Self> {
        let low = u32::from(u16::from_be_bytes([*data.first()?, *data.get(1)?]));
        let mut one_state = [0u8; 256];
        let mut zero_state = [0u8; 256];
        let factor = (0.05 * (1u64 << 32) as f64) as i64;
        let max_p = 256 - 8;
        let one: i64 = 1 << 32;
        let (mut last_p8, mut p) = (0i64, one / 2);
        for _ in 0..128 {
            let mut p8 = (256 * p + one / 2) >> 32;
            if p8 <= last_p8 {
                p8 = last_p8 + 1;
            }
            if last_p8 > 0 && last_p8 < 256 && p8 <= max_p {
                one_state[last_p8 as usize] = p8 as u8;
            }
            p += ((one - p) * factor + one / 2) >> 32;
            last_p8 = p8;
        }
        for i in (256 - max_p)..=max_p {
            if one_state[i as usize] != 0 {
                continue;
            }
            let mut p = (i * one + 128) >> 8;
            p += ((one - p) * factor + one / 2) >> 32;
            let mut p8 = (256 * p + one / 2) >> 32;
            if p8 <= i {
                p8 = i + 1;
            }
            one_state[i as usize] = p8.min(max_p) as u8;
        }
        for i in 1..255 {
            zero_state[i] = (256 - u32::from(one_state[256 - i])) as u8;
        }
        Some(RangeDecoder {
            data,
            pos: 2,
            low,
            range: 0xff00,
            one_state,
            zero_state,
        })
    }

    fn refill(&mut self) {
        if self.range < 0x100 {
            self.range <<= 8;
            self.low <<= 8;
            if let Some(b) = self.data.get(self.pos) {
                self.low += u32::from(*b);
                self.pos += 1;
            }
        }
    }

    fn bit(&mut self, state: &mut u8) -> bool {
        let range1 = (self.range * u32::from(*state)) >> 8;
        self.range -= range1;
        let one = self.low >= self.range;
        if one {
            self.low -= self.range;
            *state = self.one_state[usize::from(*state)];
            self.range = range1;
        } else {
            *state = self.zero_state[usize::from(*state)];
        }
        self.refill();
        one
    }

    /// FFV1 `get_symbol`: an Exp-Golomb-like adaptive code over 32 context states.
    fn symbol(&mut self, state: &mut [u8; 32], signed: bool) -> Option<i64> {
        if self.bit(&mut state[0]) {
            return Some(0);
        }
        let mut e = 0usize;
        while self.bit(&mut state[1 + e.min(9)]) {
            e += 1;
            if e > 31 {
                return None;
            }
        }
        let mut a: i64 = 1;
        for i in (0..e).rev() {
            a = 2 * a + i64::from(self.bit(&mut state[22 + i.min(9)]));
        }
        let negative = signed && self.bit(&mut state[11 + e.min(10)]);
        Some(if negative { -a } else { a })
    }
}

/// FFV1 version 0/1: the frame header at the start of every keyframe (range coded), read like
/// FFmpeg's `read_header` up to the pixel format. Versions 2+ keep it in the extradata instead.
pub fn apply_ffv1_frame(st: &mut Stream, frame: &[u8]) -> Option<()> {
    let mut rc = RangeDecoder::new(frame)?;
    let mut keystate = 128u8;
    if !rc.bit(&mut keystate) {
        return None;
    }
    let mut state = [128u8; 32];
    let version = rc.symbol(&mut state, false)?;
    if version >= 2 {
        return None;
    }
    let coder = rc.symbol(&mut state, false)?;
    if coder > 1 {
        // A custom state transition table: 255 signed symbols.
        for _ in 1..256 {
            rc.symbol(&mut state, true)?;
        }
    }
    let colorspace = rc.symbol(&mut state, false)?;
    // Version 0 takes the depth from the container (none in the formats probed here: 8 bits).
    let bits = if version > 0 {
        rc.symbol(&mut state, false)?
    } else {
        8
    };
    let chroma_planes = rc.bit(&mut state[0]);
    let (hs, vs) = (rc.symbol(&mut state, false)?, rc.symbol(&mut state, false)?);
    let alpha = rc.bit(&mut state[0]);
    let sub = 16 * hs + vs;
    let yuv = |depth: &str, alpha_ok: bool| -> Option<String> {
        let base = match (sub, alpha && alpha_ok) {
            (0x00, false) => "yuv444p",
            (0x01, false) => "yuv440p",
            (0x10, false) => "yuv422p",
            (0x11, false) => "yuv420p",
            (0x20, false) if depth.is_empty() => "yuv411p",
            (0x22, false) if depth.is_empty() => "yuv410p",
            (0x00, true) => "yuva444p",
            (0x10, true) => "yuva422p",
            (0x11, true) => "yuva420p",
            _ => return None,
        };
        Some(format!("{base}{depth}"))
    };
    let pix = match (colorspace, bits) {
        (0, _) if !chroma_planes && !alpha => match bits {
            0..=8 => Some("gray".to_string()),
            9 | 10 | 12 | 16 => Some(format!("gray{bits}le")),
            _ => None,
        },
        (0, 0..=8) if !chroma_planes => Some("ya8".to_string()),
        (0, 0..=8) => yuv("", true),
        (0, 9 | 10 | 16) => yuv(&format!("{bits}le"), true),
        (0, 12 | 14) => yuv(&format!("{bits}le"), false),
        (1, _) if hs != 0 || vs != 0 => None,
        (1, 0..=8) => Some(if alpha { "bgra" } else { "bgr0" }.to_string()),
        (1, 9 | 14) => Some(format!("gbrp{bits}le")),
        (1, 10 | 12 | 16) => Some(format!("gbr{}p{bits}le", if alpha { "a" } else { "" })),
        _ => None,
    };
    st.video.pix_fmt = Some(pix?);
    if version > 0 && bits > 0 {
        st.bits_per_raw_sample = u32::try_from(bits).ok();
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x264_high_sps() {
        // avcC written by ffmpeg's libx264 for 160x120 High@1.1, VUI with SAR 1:1, 2 reorder frames.
        let avcc = [
            0x01, 0x64, 0x00, 0x0b, 0xff, 0xe1, 0x00, 0x19, 0x67, 0x64, 0x00, 0x0b, 0xac, 0xd9,
            0x42, 0x84, 0x7e, 0x5c, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00, 0x00, 0x0c,
            0x83, 0xc5, 0x0a, 0x65, 0x80, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0,
            0xfd, 0xf8, 0xf8, 0x00,
        ];
        let mut st = Stream::new(MediaType::Video);
        apply_avcc(&mut st, &avcc);
        assert_eq!(st.profile.as_deref(), Some("High"));
        assert_eq!(st.video.level, 11);
        assert_eq!((st.video.width, st.video.height), (160, 120));
        assert_eq!(st.video.pix_fmt.as_deref(), Some("yuv420p"));
        assert_eq!(st.video.codec_sar, Some(Rational::new(1, 1)));
        assert_eq!(st.video.has_b_frames, 2);
    }

    #[test]
    fn aac_lc_mono_48k() {
        let mut st = Stream::new(MediaType::Audio);
        apply_aac_asc(&mut st, &[0x11, 0x88]).unwrap();
        assert_eq!(st.profile.as_deref(), Some("LC"));
        assert_eq!((st.audio.sample_rate, st.audio.channels), (48000, 1));
    }

    #[test]
    fn mp3_header() {
        let mut st = Stream::new(MediaType::Audio);
        // MPEG-1 layer III, 64 kbit/s, 48 kHz, mono.
        apply_mpa_header(&mut st, &[0xff, 0xfb, 0x54, 0xc4]).unwrap();
        assert_eq!(st.codec_name, "mp3");
        assert_eq!(
            (st.audio.sample_rate, st.audio.channels, st.bit_rate),
            (48000, 1, Some(64000))
        );
    }
}
