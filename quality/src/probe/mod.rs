//! The native probe: `ffprobe -show_format -show_streams` JSON without an ffprobe process.
//!
//! Containers are parsed by our own readers (MP4/MOV, Matroska/WebM, YUV4MPEG2) over a
//! [`Source`]; codec headers by [`codecs`]. The parsers are pure and bounded: at most
//! [`bytes::MAX_READ_BYTES`] are read into memory per probe, tables are checked against their
//! box sizes before use, nesting is bounded, and no parser loops without consuming input, so a
//! hostile file costs bounded time and memory and ends in a [`FormatError`] naming what and where.

pub mod avi;
pub mod bytes;
pub mod codecs;
pub mod flv;
pub mod mkv;
pub mod model;
pub mod mp4;
pub mod mxf;
pub mod ogg;
pub mod ts;
pub mod y4m;

use std::path::Path;

use serde_json::{Map, Value};

pub use bytes::{FormatError, Source};
use model::{Format, Stream};

/// ffprobe's optional counting flags.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProbeOptions {
    /// `-count_frames`: add `nb_read_frames` (from packet counts, less the packets a decoder
    /// consumes without output; MP4/MOV, Matroska/WebM, YUV4MPEG2 and containers with frame counts).
    pub count_frames: bool,
    /// `-count_packets`: add `nb_read_packets`.
    pub count_packets: bool,
}

/// Names what a file starts with when it is not a container we read.
fn sniff_unknown(head: &[u8]) -> String {
    if head.is_empty() {
        return "empty file".into();
    }
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        return "a PNG image, not a video container".into();
    }
    if head.starts_with(&[0xff, 0xd8, 0xff]) {
        return "a JPEG image, not a video container".into();
    }
    if head.starts_with(&[0x06, 0x0e, 0x2b, 0x34]) {
        return "MXF without a header partition pack".into();
    }
    if head.iter().all(|b| *b == 0) {
        return "only zero bytes".into();
    }
    let hex: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("unknown signature {}", hex.join(" "))
}

/// Largest picture side accepted (16K). A header claiming more (65535×65535) is refused here,
/// before any stage sizes a frame buffer from it.
pub const MAX_DIMENSION: u32 = 16384;

/// Parses a container from `src` into ffprobe's format and streams.
pub fn probe_parts(src: &dyn Source, filename: &str) -> Result<(Format, Vec<Stream>), FormatError> {
    probe_parts_with(src, filename, &ProbeOptions::default())
}

/// [`probe_parts`] with ffprobe's counting options.
pub fn probe_parts_with(
    src: &dyn Source,
    filename: &str,
    opts: &ProbeOptions,
) -> Result<(Format, Vec<Stream>), FormatError> {
    let input = bytes::Input::new(src);
    let head = input.read_upto(0, 512, "file header")?;
    let (format, streams) = if mp4::is_mp4(&head) {
        mp4::parse(&input, filename)?
    } else if mkv::is_mkv(&head) {
        mkv::parse_counting(&input, filename, opts.count_packets || opts.count_frames)?
    } else if y4m::is_y4m(&head) {
        y4m::parse(&input, filename)?
    } else if avi::is_avi(&head) {
        avi::parse(&input, filename)?
    } else if flv::is_flv(&head) {
        flv::parse(&input, filename)?
    } else if ogg::is_ogg(&head) {
        ogg::parse(&input, filename)?
    } else if ts::is_ts(&head) {
        ts::parse(&input, filename)?
    } else if mxf::is_mxf(&head) {
        mxf::parse(&input, filename)?
    } else {
        return Err(FormatError::Unrecognized(sniff_unknown(&head)));
    };
    for (i, s) in streams.iter().enumerate() {
        let (w, h) = (s.video.width, s.video.height);
        if s.media_type == model::MediaType::Video && (w > MAX_DIMENSION || h > MAX_DIMENSION) {
            return Err(FormatError::limit(
                format!("stream {i} ({})", s.codec_name),
                0,
                format!("frame size {w}x{h} is larger than any real video"),
                u64::from(MAX_DIMENSION),
            ));
        }
    }
    Ok((format, streams))
}

/// ffprobe's JSON document for already-parsed parts.
pub fn to_json(format: &Format, streams: &[Stream]) -> Value {
    let mut root = Map::new();
    root.insert(
        "streams".into(),
        Value::Array(
            streams
                .iter()
                .enumerate()
                .map(|(i, s)| s.to_json(i))
                .collect(),
        ),
    );
    root.insert("format".into(), format.to_json(streams.len()));
    Value::Object(root)
}

/// Pure probe of an in-memory file (tests, fuzzing).
pub fn probe_bytes(data: &[u8], filename: &str) -> Result<Value, FormatError> {
    let (f, s) = probe_parts(&bytes::MemSource(data), filename)?;
    Ok(to_json(&f, &s))
}

/// Prints a probe result exactly as `ffprobe -print_format json` does (4-space indentation).
pub fn to_ffprobe_string(v: &Value) -> String {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    if serde::Serialize::serialize(v, &mut ser).is_err() {
        return String::new();
    }
    let mut s = String::from_utf8(out).unwrap_or_default();
    s.push('\n');
    s
}

/// ffprobe's nb_read_packets / nb_read_frames. Packets: the container's own count (MP4 samples,
/// Matroska blocks, YUV4MPEG2 frames). Frames (what a decoder outputs): one per packet, less the
/// packets a decoder consumes without output (Vorbis's first; AAC priming cut by an MP4 edit).
/// Data streams are not read by ffprobe and get neither.
fn apply_counts(streams: &mut [Stream], opts: &ProbeOptions) {
    for s in streams.iter_mut() {
        if s.media_type == model::MediaType::Data {
            s.nb_read_packets = None;
            continue;
        }
        let packets = s.nb_read_packets.or(s.nb_frames).or_else(|| {
            (s.codec_name == "rawvideo")
                .then_some(s.duration_ts.map(|d| d as u64))
                .flatten()
        });
        let frames = packets.map(|p| {
            let consumed = match s.codec_name.as_str() {
                "vorbis" => 1,
                _ => s.priming_packets,
            };
            p.saturating_sub(consumed)
        });
        s.nb_read_packets = if opts.count_packets { packets } else { None };
        s.nb_read_frames = if opts.count_frames { frames } else { None };
    }
}

pub(crate) fn probe_path(
    path: &Path,
    display: &str,
    opts: &ProbeOptions,
) -> Result<Value, FormatError> {
    let file = std::fs::File::open(path).map_err(|e| FormatError::Io {
        offset: 0,
        reason: e.to_string(),
    })?;
    let (format, mut streams) = probe_parts_with(&file, display, opts)?;
    apply_counts(&mut streams, opts);
    Ok(to_json(&format, &streams))
}
