//! GStreamer caps → ffprobe names. Pure mappings over a caps structure, no I/O.

use gstreamer as gst;

/// ffprobe `format_name` for a container's caps. FFmpeg names a demuxer, not a variant, so MP4,
/// MOV, 3GP and M4A all read "mov,mp4,m4a,3gp,3g2,mj2".
pub fn container_format_name(s: &gst::StructureRef) -> String {
    let name = s.name().as_str();
    match name {
        "video/quicktime" | "audio/x-m4a" | "application/x-3gp" => "mov,mp4,m4a,3gp,3g2,mj2",
        "video/x-matroska" | "video/webm" | "audio/webm" | "audio/x-matroska" => "matroska,webm",
        "video/x-msvideo" => "avi",
        "video/mpegts" => "mpegts",
        "video/mpeg" if s.get::<bool>("systemstream").unwrap_or(false) => "mpeg",
        "application/ogg" | "video/ogg" | "audio/ogg" => "ogg",
        "video/x-flv" => "flv",
        "application/mxf" => "mxf",
        "video/x-h264" => "h264",
        "video/x-h265" => "hevc",
        "video/x-ivf" => "ivf",
        other => other,
    }
    .to_string()
}

/// ffprobe `codec_name` for a video stream's caps.
pub fn video_codec_name(s: &gst::StructureRef) -> String {
    let name = s.name().as_str();
    match name {
        "video/x-h264" => "h264",
        "video/x-h265" => "hevc",
        "video/x-vp8" => "vp8",
        "video/x-vp9" => "vp9",
        "video/x-av1" => "av1",
        "video/x-prores" => "prores",
        "video/x-dnxhd" => "dnxhd",
        "video/x-raw" => "rawvideo",
        "image/jpeg" => "mjpeg",
        "video/x-theora" => "theora",
        "video/mpeg" => match s.get::<i32>("mpegversion").unwrap_or(0) {
            1 => "mpeg1video",
            2 => "mpeg2video",
            4 => "mpeg4",
            _ => name,
        },
        other => other,
    }
    .to_string()
}

/// ffprobe `pix_fmt` for a video stream's caps. Coded streams carry `chroma-format` and
/// `bit-depth-luma` (set by the parsers from the SPS); raw video carries `format`.
pub fn pixel_format(s: &gst::StructureRef) -> String {
    if s.name() == "video/x-raw" {
        return raw_pixel_format(s.get::<&str>("format").unwrap_or_default());
    }
    let depth = s.get::<u32>("bit-depth-luma").unwrap_or(8);
    let chroma = s
        .get::<&str>("chroma-format")
        .ok()
        .map(str::to_owned)
        .or_else(|| {
            // Without the parser fields, the H.264/H.265 profile implies the chroma format.
            s.get::<&str>("profile").ok().map(|p| {
                if p.contains("4:4:4") {
                    "4:4:4".to_string()
                } else if p.contains("4:2:2") {
                    "4:2:2".to_string()
                } else {
                    "4:2:0".to_string()
                }
            })
        });
    let base = match chroma.as_deref() {
        Some("4:2:0") => "yuv420p",
        Some("4:2:2") => "yuv422p",
        Some("4:4:4") => "yuv444p",
        Some("4:0:0") => "gray",
        _ => return String::new(),
    };
    if depth == 8 {
        base.to_string()
    } else if base == "gray" {
        format!("gray{depth}le")
    } else {
        format!("{base}{depth}le")
    }
}

fn raw_pixel_format(format: &str) -> String {
    match format {
        "I420" => "yuv420p",
        "Y42B" => "yuv422p",
        "Y444" => "yuv444p",
        "NV12" => "nv12",
        "YUY2" => "yuyv422",
        "UYVY" => "uyvy422",
        "I420_10LE" => "yuv420p10le",
        "I422_10LE" => "yuv422p10le",
        "Y444_10LE" => "yuv444p10le",
        "v210" => "v210",
        "RGB" => "rgb24",
        "BGR" => "bgr24",
        "RGBA" => "rgba",
        "BGRA" => "bgra",
        "GRAY8" => "gray",
        other => other,
    }
    .to_lowercase()
}

/// ffprobe `codec_name` for an audio stream's caps.
pub fn audio_codec_name(s: &gst::StructureRef) -> String {
    let name = s.name().as_str();
    match name {
        "audio/mpeg" => match (s.get::<i32>("mpegversion"), s.get::<i32>("layer")) {
            (Ok(2 | 4), _) => "aac".to_string(),
            (Ok(1), Ok(3)) => "mp3".to_string(),
            (Ok(1), Ok(2)) => "mp2".to_string(),
            (Ok(1), Ok(1)) => "mp1".to_string(),
            _ => name.to_string(),
        },
        "audio/x-raw" => raw_audio_codec(s.get::<&str>("format").unwrap_or_default()),
        "audio/x-opus" => "opus".to_string(),
        "audio/x-vorbis" => "vorbis".to_string(),
        "audio/x-flac" => "flac".to_string(),
        "audio/x-ac3" => "ac3".to_string(),
        "audio/x-eac3" => "eac3".to_string(),
        "audio/x-alac" => "alac".to_string(),
        other => other.to_string(),
    }
}

/// FFmpeg's PCM codec names: `pcm_` + s/u/f + bits + le/be (8-bit has no endianness).
fn raw_audio_codec(format: &str) -> String {
    let (kind, rest) = match format.chars().next() {
        Some('S') => ("s", &format[1..]),
        Some('U') => ("u", &format[1..]),
        Some('F') => ("f", &format[1..]),
        _ => return format!("pcm_{}", format.to_lowercase()),
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let endian = rest[digits.len()..].to_lowercase();
    // GStreamer's S24_32LE (24 bits in 32) has no FFmpeg codec; FFmpeg's closest is s32.
    if endian.starts_with('_') {
        return format!("pcm_{kind}32{}", &endian[endian.len().saturating_sub(2)..]);
    }
    format!("pcm_{kind}{digits}{endian}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn s(text: &str) -> gst::Structure {
        gst::init().unwrap();
        gst::Structure::from_str(text).unwrap()
    }

    #[test]
    fn containers() {
        assert_eq!(
            container_format_name(&s("video/quicktime, variant=(string)iso")),
            "mov,mp4,m4a,3gp,3g2,mj2"
        );
        assert_eq!(
            container_format_name(&s("video/quicktime, variant=(string)apple")),
            "mov,mp4,m4a,3gp,3g2,mj2"
        );
        assert_eq!(
            container_format_name(&s("video/x-matroska")),
            "matroska,webm"
        );
        assert_eq!(container_format_name(&s("video/webm")), "matroska,webm");
        assert_eq!(
            container_format_name(&s("video/mpeg, systemstream=(boolean)true")),
            "mpeg"
        );
        assert_eq!(
            container_format_name(&s("video/mpegts, systemstream=(boolean)true")),
            "mpegts"
        );
    }

    #[test]
    fn video_codecs_and_pixel_formats() {
        let h264 = s("video/x-h264, profile=(string)high, chroma-format=(string)4:2:0, bit-depth-luma=(uint)8");
        assert_eq!(video_codec_name(&h264), "h264");
        assert_eq!(pixel_format(&h264), "yuv420p");
        let b = s("video/x-h264, profile=(string)high-4:2:2, chroma-format=(string)4:2:2, bit-depth-luma=(uint)10");
        assert_eq!(pixel_format(&b), "yuv422p10le");
        assert_eq!(
            pixel_format(&s("video/x-h264, profile=(string)high-4:2:2")),
            "yuv422p"
        );
        assert_eq!(
            pixel_format(&s("video/x-raw, format=(string)I422_10LE")),
            "yuv422p10le"
        );
        assert_eq!(
            video_codec_name(&s("video/mpeg, mpegversion=(int)2")),
            "mpeg2video"
        );
        assert_eq!(video_codec_name(&s("video/x-h265")), "hevc");
    }

    #[test]
    fn audio_codecs() {
        assert_eq!(
            audio_codec_name(&s("audio/mpeg, mpegversion=(int)4")),
            "aac"
        );
        assert_eq!(
            audio_codec_name(&s("audio/mpeg, mpegversion=(int)1, layer=(int)3")),
            "mp3"
        );
        assert_eq!(
            audio_codec_name(&s("audio/x-raw, format=(string)S24LE")),
            "pcm_s24le"
        );
        assert_eq!(
            audio_codec_name(&s("audio/x-raw, format=(string)S16BE")),
            "pcm_s16be"
        );
        assert_eq!(
            audio_codec_name(&s("audio/x-raw, format=(string)F32LE")),
            "pcm_f32le"
        );
        assert_eq!(
            audio_codec_name(&s("audio/x-raw, format=(string)U8")),
            "pcm_u8"
        );
        assert_eq!(audio_codec_name(&s("audio/x-opus")), "opus");
    }
}
