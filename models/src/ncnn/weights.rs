//! Reader for ncnn's `.bin` weight file: the layers' arrays back to back, in layer order, with no
//! index. A "tagged" array (convolution weights) starts with a 4-byte tag saying how it is stored
//! (0x01306B47 = fp16, 0 = fp32); "raw" arrays (biases, PReLU slopes) are fp32 with no tag.
//! Layout verified against the official exports: the sizes add up to the file exactly, and the
//! imported network reproduces ncnn's own outputs (tests/reference.rs).

/// Tag of an fp16 array (ncnn `ModelBinFromDataReader`).
pub const TAG_FP16: u32 = 0x0130_6B47;
/// Tag of an int8 array (not used by any model we run).
pub const TAG_INT8: u32 = 0x000D_4B38;
/// Tag of an fp32 array.
pub const TAG_FP32: u32 = 0;

/// Cursor over the `.bin` bytes.
pub struct WeightReader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> WeightReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, offset: 0 }
    }

    pub fn offset(&self) -> usize {
        self.offset
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.offset
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        if len > self.remaining() {
            return Err(format!(
                "needs {len} bytes at offset {}, only {} left",
                self.offset,
                self.remaining()
            ));
        }
        let slice = &self.bytes[self.offset..self.offset + len];
        self.offset += len;
        Ok(slice)
    }

    /// A tagged array of `count` values, widened to f32 (fp16 → f32 is exact).
    pub fn tagged(&mut self, count: usize) -> Result<Vec<f32>, String> {
        let at = self.offset;
        let tag = self.take(4)?;
        let tag = u32::from_le_bytes([tag[0], tag[1], tag[2], tag[3]]);
        match tag {
            TAG_FP16 => {
                let len = count.checked_mul(2).ok_or("array size overflows")?;
                // ncnn pads fp16 arrays to a multiple of 4 bytes
                let padded = len.div_ceil(4) * 4;
                let data = self.take(padded)?;
                Ok(data[..len]
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect())
            }
            TAG_FP32 => self.raw_f32(count),
            TAG_INT8 => Err(format!("int8 weights at offset {at} are not supported")),
            other => Err(format!(
                "unknown weight tag {other:#010x} at offset {at} (quantised tables are not supported)"
            )),
        }
    }

    /// `count` fp32 values with no tag.
    pub fn raw_f32(&mut self, count: usize) -> Result<Vec<f32>, String> {
        let len = count.checked_mul(4).ok_or("array size overflows")?;
        Ok(self
            .take(len)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fp16_with_padding_then_fp32() {
        let mut b = TAG_FP16.to_le_bytes().to_vec();
        for v in [1.0f32, -2.5, 0.1] {
            b.extend(half::f16::from_f32(v).to_le_bytes());
        }
        b.extend([0, 0]); // pad 6 -> 8 bytes
        b.extend(0.25f32.to_le_bytes());
        b.extend(TAG_FP32.to_le_bytes());
        b.extend(3.0f32.to_le_bytes());
        let mut r = WeightReader::new(&b);
        let w = r.tagged(3).unwrap();
        assert_eq!(w[..2], [1.0, -2.5]);
        assert_eq!(w[2], half::f16::from_f32(0.1).to_f32());
        assert_eq!(r.raw_f32(1).unwrap(), [0.25]);
        assert_eq!(r.tagged(1).unwrap(), [3.0]);
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn short_or_unknown_data_is_an_error() {
        let b = TAG_FP16.to_le_bytes();
        let e = WeightReader::new(&b).tagged(2).unwrap_err();
        assert!(e.contains("needs 4 bytes at offset 4"), "{e}");
        let b = TAG_INT8.to_le_bytes();
        assert!(WeightReader::new(&b)
            .tagged(1)
            .unwrap_err()
            .contains("int8"));
        let b = 0xdead_beefu32.to_le_bytes();
        assert!(WeightReader::new(&b)
            .tagged(1)
            .unwrap_err()
            .contains("unknown"));
        assert!(WeightReader::new(&[]).raw_f32(usize::MAX).is_err());
    }
}
