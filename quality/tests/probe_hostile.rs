//! Hostile inputs: each ends in a clear error (what and where) or an honest result, never a
//! panic, a hang or an unbounded allocation. Files are built byte by byte here, so these tests
//! need no external tool.

use std::time::{Duration, Instant};

use aiprod_quality::probe::{probe_bytes, FormatError};
use aiprod_quality::{probe_json, ProbeError, ProbeOptions};

/// A probe of any input here must finish well within this (they take microseconds).
const TIME_BOUND: Duration = Duration::from_secs(2);

fn bx(typ: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(typ);
    v.extend_from_slice(body);
    v
}

fn full(typ: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 0, 0];
    b.extend_from_slice(body);
    bx(typ, &b)
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

fn u32s(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_be_bytes()).collect()
}

fn tkhd(id: u32, w: u16, h: u16) -> Vec<u8> {
    let mut b = u32s(&[0, 0, id, 0, 1000, 0, 0]);
    b.extend_from_slice(&[0; 8]);
    b.extend(u32s(&[0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x4000_0000]));
    b.extend(u32s(&[u32::from(w) << 16, u32::from(h) << 16]));
    let mut v = bx(b"tkhd", &[&[0u8, 0, 0, 3][..], &b].concat());
    v.truncate(92);
    v
}

fn avc1(w: u16, h: u16) -> Vec<u8> {
    let mut b = vec![0u8; 6];
    b.extend_from_slice(&[0, 1]);
    b.extend_from_slice(&[0; 16]);
    b.extend_from_slice(&w.to_be_bytes());
    b.extend_from_slice(&h.to_be_bytes());
    b.extend(u32s(&[0x480000, 0x480000, 0]));
    b.extend_from_slice(&[0, 1]);
    b.extend_from_slice(&[0; 32]);
    b.extend_from_slice(&[0, 24, 0xff, 0xff]);
    bx(b"avc1", &b)
}

/// A video track whose stsz is given (its box, whole).
fn trak(id: u32, w: u16, h: u16, stsz: Vec<u8>) -> Vec<u8> {
    let stsd = full(b"stsd", &[u32s(&[1]), avc1(w, h)].concat());
    let stts = full(b"stts", &u32s(&[1, 25, 512]));
    let stco = full(b"stco", &u32s(&[1, 48]));
    let stbl = bx(b"stbl", &cat(&[stsd, stts, stsz, stco]));
    let minf = bx(b"minf", &stbl);
    let mdhd = full(
        b"mdhd",
        &[u32s(&[0, 0, 12800, 12800]), vec![0x55, 0xc4, 0, 0]].concat(),
    );
    let hdlr = full(
        b"hdlr",
        &[
            u32s(&[0]),
            b"vide".to_vec(),
            vec![0; 12],
            b"VideoHandler\0".to_vec(),
        ]
        .concat(),
    );
    let mdia = bx(b"mdia", &cat(&[mdhd, hdlr, minf]));
    bx(b"trak", &cat(&[tkhd(id, w, h), mdia]))
}

fn stsz(n: u32) -> Vec<u8> {
    full(
        b"stsz",
        &[u32s(&[0, n]), [0u8, 0, 0, 100].repeat(n.min(25) as usize)].concat(),
    )
}

fn mp4_with(traks: &[Vec<u8>]) -> Vec<u8> {
    let ftyp = bx(b"ftyp", b"isom\0\0\x02\0isomiso2avc1mp41");
    let mvhd = full(
        b"mvhd",
        &[u32s(&[0, 0, 1000, 1000, 0x10000]), vec![1, 0], vec![0; 70]].concat(),
    );
    let moov = bx(b"moov", &cat(&[vec![mvhd], traks.to_vec()].concat()));
    cat(&[ftyp, moov, bx(b"mdat", &[0u8; 2500])])
}

fn valid_mp4() -> Vec<u8> {
    mp4_with(&[trak(1, 160, 120, stsz(25))])
}

/// Probes in memory, checking the time bound; returns the error text or the JSON.
fn probe(data: &[u8]) -> Result<serde_json::Value, FormatError> {
    let t = Instant::now();
    let r = probe_bytes(data, "hostile.mp4");
    assert!(t.elapsed() < TIME_BOUND, "probe took {:?}", t.elapsed());
    r
}

#[test]
fn the_synthetic_file_itself_probes() {
    let v = probe(&valid_mp4()).unwrap();
    let s = &v["streams"][0];
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(160), Some(120))
    );
    assert_eq!(s["nb_frames"], "25");
    assert_eq!(s["r_frame_rate"], "25/1");
    assert_eq!(v["format"]["duration"], "1.000000");
}

#[test]
fn truncated_anywhere_is_an_error_or_a_partial_result_never_a_panic() {
    let data = valid_mp4();
    let moov_end = data.len() - 2508;
    for cut in 0..data.len() {
        let r = probe(&data[..cut]);
        if cut < moov_end {
            let e = r.expect_err("a cut inside ftyp/moov must fail");
            let text = e.to_string();
            assert!(
                text.contains("byte") || text.contains("empty") || text.contains("signature"),
                "{text}"
            );
        }
    }
    let e = probe(&data[..200]).unwrap_err();
    assert!(matches!(e, FormatError::Truncated { .. }), "{e}");
    assert!(e.to_string().contains("'moov'"), "{e}");
}

#[test]
fn corrupt_box_size_names_the_box_and_offset() {
    let mut data = valid_mp4();
    let pos = data.windows(4).position(|w| w == b"stsz").unwrap() - 4;
    data[pos..pos + 4].copy_from_slice(&0xffff_fff0u32.to_be_bytes());
    let e = probe(&data).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("box 'stsz' in stbl at byte {pos}: truncated (needs 4294967280 bytes, 140 left)")
    );
    // A size smaller than a box header.
    let mut data = valid_mp4();
    data[pos..pos + 4].copy_from_slice(&3u32.to_be_bytes());
    let e = probe(&data).unwrap_err();
    assert!(e.to_string().contains("smaller than its header"), "{e}");
}

#[test]
fn a_65535x65535_header_is_refused() {
    let data = mp4_with(&[trak(1, 65535, 65535, stsz(25))]);
    let e = probe(&data).unwrap_err();
    assert!(matches!(e, FormatError::Limit { .. }), "{e}");
    assert!(e.to_string().contains("65535x65535"), "{e}");
}

#[test]
fn two_to_the_31_sample_entries_are_refused_before_allocating() {
    let data = mp4_with(&[trak(1, 160, 120, stsz(1 << 31))]);
    let e = probe(&data).unwrap_err();
    assert!(
        e.to_string()
            .contains("claims 2147483648 entries of 4 bytes but holds 100 bytes"),
        "{e}"
    );
    // The same claim in stts, whose entries the parser would otherwise keep.
    let mut data = valid_mp4();
    let pos = data.windows(4).position(|w| w == b"stts").unwrap() + 8;
    data[pos..pos + 4].copy_from_slice(&(1u32 << 31).to_be_bytes());
    let e = probe(&data).unwrap_err();
    assert!(e.to_string().contains("box 'stts'"), "{e}");
}

#[test]
fn two_thousand_tracks_hit_the_stream_limit() {
    let traks: Vec<Vec<u8>> = (1..=2000).map(|i| trak(i, 16, 16, stsz(1))).collect();
    let e = probe(&mp4_with(&traks)).unwrap_err();
    assert!(matches!(e, FormatError::Limit { limit: 1024, .. }), "{e}");
    assert!(e.to_string().contains("too many tracks"), "{e}");
}

#[test]
fn ten_thousand_nested_boxes_end_in_an_error() {
    let mut inner = bx(b"free", b"");
    for _ in 0..10_000 {
        inner = bx(b"trak", &inner);
    }
    let e = probe(&mp4_with(&[inner])).unwrap_err();
    assert!(e.to_string().contains("trak"), "{e}");
    // Matroska SimpleTags may nest; the depth is bounded there too.
    let mut tag = ebml(0x45a3, b"X");
    for _ in 0..10_000 {
        tag = ebml(0x67c8, &tag);
    }
    let tags = ebml(0x1254c367, &ebml(0x7373, &tag));
    let e = probe(&mkv_with(&tags)).unwrap_err();
    assert!(e.to_string().contains("nested too deep"), "{e}");
}

fn ebml(id: u32, body: &[u8]) -> Vec<u8> {
    let idb: Vec<u8> = id
        .to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    let mut v = idb;
    v.push(0x01);
    v.extend_from_slice(&(body.len() as u64 | (1 << 56)).to_be_bytes()[1..]);
    v.extend_from_slice(body);
    v
}

fn mkv_with(extra: &[u8]) -> Vec<u8> {
    let header = ebml(0x1a45dfa3, &ebml(0x4282, b"matroska"));
    let track = ebml(
        0xae,
        &[ebml(0xd7, &[1]), ebml(0x83, &[1]), ebml(0x86, b"V_VP8")].concat(),
    );
    let seg = [
        ebml(0x1549a966, &ebml(0x2ad7b1, &[0x0f, 0x42, 0x40])),
        ebml(0x1654ae6b, &track),
        extra.to_vec(),
    ]
    .concat();
    [header, ebml(0x18538067, &seg)].concat()
}

#[test]
fn zero_bytes_and_random_bytes_are_not_media() {
    for data in [vec![], vec![0u8; 1 << 20]] {
        let e = probe(&data).unwrap_err();
        assert!(matches!(e, FormatError::Unrecognized(_)), "{e}");
    }
    assert_eq!(
        probe(&[]).unwrap_err().to_string(),
        "not a media file aiprod can probe: empty file"
    );
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let random: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let e = probe(&random).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("not a media file aiprod can probe: unknown signature"),
        "{e}"
    );
}

#[test]
fn a_png_named_mp4_is_reported_as_png() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.mp4");
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&bx(b"IHDR", &[0; 13]));
    std::fs::write(&path, &png).unwrap();
    let e = probe_json(&path, &ProbeOptions::default()).unwrap_err();
    assert!(matches!(e, ProbeError::Malformed { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "{}: not a media file aiprod can probe: a PNG image, not a video container",
            path.display()
        )
    );
}

#[test]
fn a_moov_claiming_more_than_the_file_is_refused_before_reading() {
    let mut data = valid_mp4();
    let pos = data.windows(4).position(|w| w == b"moov").unwrap() - 4;
    data[pos..pos + 4].copy_from_slice(&0xc000_0000u32.to_be_bytes());
    let e = probe(&data).unwrap_err();
    assert!(matches!(e, FormatError::Truncated { .. }), "{e}");
    assert!(
        e.to_string().contains("top-level box 'moov' at byte 32"),
        "{e}"
    );
}
