//! Bounds-checked readers over untrusted bytes: a byte cursor (big/little endian) that names what
//! it reads and where, a bit reader for codec headers (Exp-Golomb included), and the error type of
//! the container parsers. Nothing here allocates more than the caller asked to read.

/// What went wrong while parsing a container, with the byte offset in the file and the structure
/// being read (a box path, an element name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("{what} at byte {offset}: truncated (needs {needed} bytes, {available} left)")]
    Truncated {
        what: String,
        offset: u64,
        needed: u64,
        available: u64,
    },
    #[error("{what} at byte {offset}: {reason}")]
    Invalid {
        what: String,
        offset: u64,
        reason: String,
    },
    #[error("{what} at byte {offset}: {reason} (limit {limit})")]
    Limit {
        what: String,
        offset: u64,
        reason: String,
        limit: u64,
    },
    #[error("not a media file aiprod can probe: {0}")]
    Unrecognized(String),
    #[error("read failed at byte {offset}: {reason}")]
    Io { offset: u64, reason: String },
}

impl FormatError {
    pub fn invalid(what: impl Into<String>, offset: u64, reason: impl Into<String>) -> Self {
        FormatError::Invalid {
            what: what.into(),
            offset,
            reason: reason.into(),
        }
    }
    pub fn limit(
        what: impl Into<String>,
        offset: u64,
        reason: impl Into<String>,
        limit: u64,
    ) -> Self {
        FormatError::Limit {
            what: what.into(),
            offset,
            reason: reason.into(),
            limit,
        }
    }
}

pub type Result<T, E = FormatError> = std::result::Result<T, E>;

/// Random access to the bytes of a file (or of a buffer, for tests and fuzzing).
pub trait Source {
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

/// A file held in memory.
pub struct MemSource<'a>(pub &'a [u8]);

impl Source for MemSource<'_> {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| std::io::ErrorKind::UnexpectedEof)?;
        let end = start
            .checked_add(buf.len())
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        let src = self
            .0
            .get(start..end)
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

impl Source for std::fs::File {
    fn len(&self) -> u64 {
        self.metadata().map(|m| m.len()).unwrap_or(0)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
}

/// Most bytes one probe reads into memory, summed over all reads: the memory bound of a probe
/// (plus per-stream metadata, itself bounded by [`MAX_STREAMS`]). A moov of a two-hour, four-track
/// file is a few MiB; 128 MiB leaves room for pathological but honest files.
pub const MAX_READ_BYTES: u64 = 128 << 20;
/// Most streams a file may declare: ffprobe itself is unusable past a few hundred, and every stream
/// costs memory, so a file claiming more is refused rather than half-probed.
pub const MAX_STREAMS: usize = 1024;

/// A [`Source`] with the per-probe read budget.
pub struct Input<'a> {
    src: &'a dyn Source,
    len: u64,
    budget: std::cell::Cell<u64>,
}

impl<'a> Input<'a> {
    pub fn new(src: &'a dyn Source) -> Input<'a> {
        Input {
            len: src.len(),
            src,
            budget: std::cell::Cell::new(MAX_READ_BYTES),
        }
    }
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Reads `len` bytes at `offset`, refusing (before allocating) reads past the end of the file
    /// or past the probe's memory budget.
    pub fn read(&self, offset: u64, len: u64, what: &str) -> Result<Vec<u8>> {
        let available = self.len.saturating_sub(offset);
        if len > available {
            return Err(FormatError::Truncated {
                what: what.to_string(),
                offset,
                needed: len,
                available,
            });
        }
        let left = self.budget.get();
        if len > left {
            return Err(FormatError::limit(
                what,
                offset,
                format!("reading {len} bytes would exceed the probe's memory budget"),
                MAX_READ_BYTES,
            ));
        }
        self.budget.set(left - len);
        let n = usize::try_from(len)
            .map_err(|_| FormatError::limit(what, offset, "read too large", MAX_READ_BYTES))?;
        let mut buf = vec![0u8; n];
        self.src
            .read_at(offset, &mut buf)
            .map_err(|e| FormatError::Io {
                offset,
                reason: e.to_string(),
            })?;
        Ok(buf)
    }
    /// Like [`Input::read`] for a buffer the caller drops before the next read (scanning media
    /// data): bounded by `len` per call, not charged to the probe's cumulative budget.
    pub fn read_transient(&self, offset: u64, len: u64, what: &str) -> Result<Vec<u8>> {
        let budget = self.budget.get();
        let r = self.read(offset, len, what);
        self.budget.set(budget);
        r
    }

    /// Like [`Input::read`] but returns fewer bytes at the end of the file.
    pub fn read_upto(&self, offset: u64, len: u64, what: &str) -> Result<Vec<u8>> {
        let n = len.min(self.len.saturating_sub(offset));
        self.read(offset, n, what)
    }
}

/// A cursor over a byte slice that sits at `base` in the file; errors carry file offsets.
#[derive(Clone)]
pub struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    base: u64,
    what: &'a str,
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8], base: u64, what: &'a str) -> Cursor<'a> {
        Cursor {
            data,
            pos: 0,
            base,
            what,
        }
    }
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }
    pub fn pos(&self) -> usize {
        self.pos
    }
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }
    pub fn rest(&self) -> &'a [u8] {
        &self.data[self.pos..]
    }
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(FormatError::Truncated {
                what: self.what.to_string(),
                offset: self.offset(),
                needed: n as u64,
                available: self.remaining() as u64,
            });
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn skip(&mut self, n: usize) -> Result<()> {
        self.bytes(n).map(|_| ())
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.arr::<1>()?[0])
    }
    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.arr()?))
    }
    pub fn u24(&mut self) -> Result<u32> {
        let b = self.arr::<3>()?;
        Ok(u32::from_be_bytes([0, b[0], b[1], b[2]]))
    }
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.arr()?))
    }
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.arr()?))
    }
    pub fn u16le(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.arr()?))
    }
    pub fn u32le(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    pub fn u64le(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
}

/// MSB-first bit reader for codec headers. Reads past the end yield `None`: a short or corrupt
/// codec header means "field unknown", never a panic.
pub struct Bits<'a> {
    data: &'a [u8],
    bit: usize,
}

impl<'a> Bits<'a> {
    pub fn new(data: &'a [u8]) -> Bits<'a> {
        Bits { data, bit: 0 }
    }
    pub fn bits_left(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.bit)
    }
    pub fn u(&mut self, n: u32) -> Option<u32> {
        if n == 0 {
            return Some(0);
        }
        if n > 32 || self.bits_left() < n as usize {
            return None;
        }
        let mut v: u64 = 0;
        for _ in 0..n {
            let byte = self.data[self.bit / 8];
            let b = (byte >> (7 - (self.bit % 8))) & 1;
            v = (v << 1) | u64::from(b);
            self.bit += 1;
        }
        Some(v as u32)
    }
    pub fn flag(&mut self) -> Option<bool> {
        self.u(1).map(|b| b == 1)
    }
    pub fn skip(&mut self, n: usize) -> Option<()> {
        if self.bits_left() < n {
            return None;
        }
        self.bit += n;
        Some(())
    }
    /// Unsigned Exp-Golomb; codes longer than 32 bits are treated as corrupt.
    pub fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while !self.flag()? {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let rest = self.u(zeros)?;
        Some(((1u64 << zeros) - 1 + u64::from(rest)).min(u64::from(u32::MAX)) as u32)
    }
    pub fn se(&mut self) -> Option<i32> {
        let k = i64::from(self.ue()?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        i32::try_from(v).ok()
    }
    pub fn byte_align(&mut self) {
        self.bit = self.bit.div_ceil(8) * 8;
    }
}

/// Removes H.264/H.265 emulation-prevention bytes (00 00 03 → 00 00).
pub fn unescape_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_golomb() {
        // 1 | 010 | 011 | 00100 | 00101 → 0, 1, 2, 3, 4
        let data = [0b1010_0110, 0b0100_0010, 0b1000_0000];
        let mut b = Bits::new(&data);
        assert_eq!(
            (b.ue(), b.ue(), b.ue(), b.ue(), b.ue()),
            (Some(0), Some(1), Some(2), Some(3), Some(4))
        );
        let mut b = Bits::new(&[0b0100_1100]);
        assert_eq!((b.se(), b.se()), (Some(1), Some(-1)));
        assert_eq!(Bits::new(&[0, 0, 0, 0, 0]).ue(), None);
    }

    #[test]
    fn cursor_errors_name_offset() {
        let mut c = Cursor::new(&[1, 2, 3], 100, "box 'ftyp'");
        assert_eq!(c.u16().unwrap(), 0x0102);
        let e = c.u32().unwrap_err();
        assert_eq!(
            e.to_string(),
            "box 'ftyp' at byte 102: truncated (needs 4 bytes, 1 left)"
        );
    }

    #[test]
    fn input_refuses_reads_past_end_before_allocating() {
        let data = [0u8; 16];
        let src = MemSource(&data);
        let input = Input::new(&src);
        assert!(matches!(
            input.read(8, u64::MAX / 2, "stsz"),
            Err(FormatError::Truncated { .. })
        ));
        assert_eq!(input.read(8, 8, "x").unwrap().len(), 8);
    }

    #[test]
    fn rbsp() {
        assert_eq!(unescape_rbsp(&[0, 0, 3, 1, 0, 0, 3]), vec![0, 0, 1, 0, 0]);
    }
}
