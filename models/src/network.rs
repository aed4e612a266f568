//! The network aiprod exports and runs: the handful of operators the official Real-ESRGAN exports
//! use, with their weights, independent of any file format. The ncnn importer builds it, the ONNX
//! exporter writes it; [`Network::analyze`] checks it is well formed and derives the channel count,
//! the scale and the receptive radius from the graph itself.

use std::collections::HashMap;

/// Activation fused into a convolution (ncnn's `activation_type`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    None,
    Relu,
    LeakyRelu { slope: f32 },
}

/// 2-D convolution, NCHW, weights in OIHW order.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv {
    pub out_channels: usize,
    pub in_channels: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub dilation_h: usize,
    pub dilation_w: usize,
    /// top, left, bottom, right (zero padding)
    pub pads: [usize; 4],
    pub weights: Vec<f32>,
    pub bias: Option<Vec<f32>>,
    pub activation: Activation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeMode {
    /// `out[y] = in[floor(y / scale)]`
    Nearest,
    /// Keys cubic, a = -0.75, half-pixel centres, edge pixels replicated (ncnn Interp type 3).
    Bicubic,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Conv(Conv),
    /// One slope per channel (or one for all).
    PRelu {
        slopes: Vec<f32>,
    },
    /// PyTorch pixel_shuffle (ONNX DepthToSpace, mode CRD).
    PixelShuffle {
        factor: usize,
    },
    Resize {
        mode: ResizeMode,
        scale_h: f32,
        scale_w: f32,
    },
    /// Element-wise sum of two inputs of the same shape.
    Add,
    /// `sum_i coeffs[i] * input_i` (ncnn Eltwise SUM).
    WeightedSum {
        coeffs: Vec<f32>,
    },
    /// Concatenation along channels.
    Concat,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<String>,
    pub output: String,
}

/// A single-input, single-output image network (NCHW, RGB in, RGB out).
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    pub input: String,
    pub input_channels: usize,
    pub output: String,
    /// In execution order: every input is the network input or an earlier node's output.
    pub nodes: Vec<Node>,
}

/// What [`Network::analyze`] derives from the graph.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkShape {
    pub output_channels: usize,
    /// Output size / input size (integer for every supported model).
    pub scale: u32,
    /// Input pixels an output pixel depends on, each direction, rounded up.
    pub receptive_radius_px: u32,
    pub parameter_count: usize,
}

#[derive(Debug, Clone, Copy)]
struct BlobInfo {
    channels: usize,
    /// Spatial size relative to the input.
    scale: f64,
    /// How far (in input pixels) a value of this blob reaches into the input.
    radius: f64,
}

impl Network {
    /// Checks every node's inputs exist and agree (channels, spatial scale), and derives the
    /// output channels, scale and receptive radius. Errors name the node.
    pub fn analyze(&self) -> Result<NetworkShape, String> {
        let mut blobs: HashMap<&str, BlobInfo> = HashMap::new();
        blobs.insert(
            &self.input,
            BlobInfo {
                channels: self.input_channels,
                scale: 1.0,
                radius: 0.0,
            },
        );
        let mut parameter_count = 0usize;
        for node in &self.nodes {
            let fail = |reason: String| format!("node {}: {reason}", node.name);
            let ins = node
                .inputs
                .iter()
                .map(|i| {
                    blobs
                        .get(i.as_str())
                        .copied()
                        .ok_or_else(|| fail(format!("input {i:?} is not produced before it")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let first = *ins.first().ok_or_else(|| fail("has no input".into()))?;
            let same_grid = || -> Result<(), String> {
                if ins.iter().any(|b| (b.scale - first.scale).abs() > 1e-9) {
                    return Err(fail("inputs have different spatial sizes".into()));
                }
                Ok(())
            };
            let info = match &node.op {
                Op::Conv(c) => {
                    if ins.len() != 1 {
                        return Err(fail("convolution takes one input".into()));
                    }
                    if c.in_channels != first.channels {
                        return Err(fail(format!(
                            "expects {} input channels, gets {}",
                            c.in_channels, first.channels
                        )));
                    }
                    let expected = c.out_channels * c.in_channels * c.kernel_h * c.kernel_w;
                    if c.weights.len() != expected {
                        return Err(fail(format!(
                            "{} weights, expected {expected}",
                            c.weights.len()
                        )));
                    }
                    if let Some(b) = &c.bias {
                        if b.len() != c.out_channels {
                            return Err(fail(format!("{} biases", b.len())));
                        }
                    }
                    // only "same" convolutions keep the grid that tiling relies on
                    let span_h = c.dilation_h * (c.kernel_h - 1);
                    let span_w = c.dilation_w * (c.kernel_w - 1);
                    if c.pads[0] + c.pads[2] != span_h || c.pads[1] + c.pads[3] != span_w {
                        return Err(fail(
                            "padding does not keep the size (not a same conv)".into(),
                        ));
                    }
                    parameter_count += c.weights.len() + c.bias.as_ref().map_or(0, Vec::len);
                    let reach = c.pads.iter().copied().max().unwrap_or(0) as f64;
                    BlobInfo {
                        channels: c.out_channels,
                        scale: first.scale,
                        radius: first.radius + reach / first.scale,
                    }
                }
                Op::PRelu { slopes } => {
                    if slopes.len() != 1 && slopes.len() != first.channels {
                        return Err(fail(format!(
                            "{} slopes for {} channels",
                            slopes.len(),
                            first.channels
                        )));
                    }
                    parameter_count += slopes.len();
                    first
                }
                Op::PixelShuffle { factor } => {
                    let r2 = factor * factor;
                    if *factor == 0 || first.channels % r2 != 0 {
                        return Err(fail(format!(
                            "{} channels do not split into {factor}x{factor} blocks",
                            first.channels
                        )));
                    }
                    BlobInfo {
                        channels: first.channels / r2,
                        scale: first.scale * *factor as f64,
                        radius: first.radius,
                    }
                }
                Op::Resize {
                    mode,
                    scale_h,
                    scale_w,
                } => {
                    if scale_h != scale_w || !scale_h.is_finite() || *scale_h <= 0.0 {
                        return Err(fail(format!("unsupported scales {scale_h} x {scale_w}")));
                    }
                    // cubic taps reach 2 source pixels beyond the sample point
                    let extra = match mode {
                        ResizeMode::Nearest => 0.0,
                        ResizeMode::Bicubic => 2.0 / first.scale,
                    };
                    BlobInfo {
                        channels: first.channels,
                        scale: first.scale * *scale_h as f64,
                        radius: first.radius + extra,
                    }
                }
                Op::Add | Op::WeightedSum { .. } => {
                    if let Op::WeightedSum { coeffs } = &node.op {
                        if coeffs.len() != ins.len() {
                            return Err(fail(format!(
                                "{} coefficients for {} inputs",
                                coeffs.len(),
                                ins.len()
                            )));
                        }
                    } else if ins.len() != 2 {
                        return Err(fail("add takes two inputs".into()));
                    }
                    same_grid()?;
                    if ins.iter().any(|b| b.channels != first.channels) {
                        return Err(fail("inputs have different channel counts".into()));
                    }
                    BlobInfo {
                        channels: first.channels,
                        scale: first.scale,
                        radius: ins.iter().map(|b| b.radius).fold(0.0, f64::max),
                    }
                }
                Op::Concat => {
                    same_grid()?;
                    BlobInfo {
                        channels: ins.iter().map(|b| b.channels).sum(),
                        scale: first.scale,
                        radius: ins.iter().map(|b| b.radius).fold(0.0, f64::max),
                    }
                }
            };
            if blobs.insert(&node.output, info).is_some() {
                return Err(fail(format!("output {:?} is produced twice", node.output)));
            }
        }
        let out = blobs
            .get(self.output.as_str())
            .ok_or_else(|| format!("output {:?} is never produced", self.output))?;
        let scale = out.scale.round();
        if (out.scale - scale).abs() > 1e-6 || scale < 1.0 {
            return Err(format!("output scale {} is not a whole number", out.scale));
        }
        Ok(NetworkShape {
            output_channels: out.channels,
            scale: scale as u32,
            receptive_radius_px: (out.radius - 1e-9).ceil() as u32,
            parameter_count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(name: &str, input: &str, cin: usize, cout: usize) -> Node {
        Node {
            name: name.into(),
            op: Op::Conv(Conv {
                out_channels: cout,
                in_channels: cin,
                kernel_h: 3,
                kernel_w: 3,
                dilation_h: 1,
                dilation_w: 1,
                pads: [1; 4],
                weights: vec![0.0; cout * cin * 9],
                bias: Some(vec![0.0; cout]),
                activation: Activation::None,
            }),
            inputs: vec![input.into()],
            output: name.into(),
        }
    }

    /// conv, conv, pixelshuffle x2, + nearest x2 skip, then a bicubic x0.5
    fn tiny() -> Network {
        let mut nodes = vec![conv("c1", "in", 3, 8), conv("c2", "c1", 8, 12)];
        nodes.push(Node {
            name: "ps".into(),
            op: Op::PixelShuffle { factor: 2 },
            inputs: vec!["c2".into()],
            output: "ps".into(),
        });
        nodes.push(Node {
            name: "up".into(),
            op: Op::Resize {
                mode: ResizeMode::Nearest,
                scale_h: 2.0,
                scale_w: 2.0,
            },
            inputs: vec!["in".into()],
            output: "up".into(),
        });
        nodes.push(Node {
            name: "add".into(),
            op: Op::Add,
            inputs: vec!["ps".into(), "up".into()],
            output: "add".into(),
        });
        nodes.push(Node {
            name: "down".into(),
            op: Op::Resize {
                mode: ResizeMode::Bicubic,
                scale_h: 0.5,
                scale_w: 0.5,
            },
            inputs: vec!["add".into()],
            output: "out".into(),
        });
        Network {
            input: "in".into(),
            input_channels: 3,
            output: "out".into(),
            nodes,
        }
    }

    #[test]
    fn derives_scale_channels_radius() {
        let mut n = tiny();
        n.output = "add".into();
        let s = n.analyze().unwrap();
        assert_eq!(
            (s.output_channels, s.scale, s.receptive_radius_px),
            (3, 2, 2)
        );
        assert_eq!(s.parameter_count, 8 * 3 * 9 + 8 + 12 * 8 * 9 + 12);
        // bicubic adds 2 pixels at 2x = 1 input pixel; x2 * 0.5 = x1
        let s = tiny().analyze().unwrap();
        assert_eq!((s.scale, s.receptive_radius_px), (1, 3));
    }

    #[test]
    fn rejects_inconsistent_graphs() {
        let mut n = tiny();
        n.nodes[1] = conv("c2", "c1", 7, 12);
        assert!(n
            .analyze()
            .unwrap_err()
            .contains("expects 7 input channels"));
        let mut n = tiny();
        n.nodes.swap(0, 1);
        assert!(n.analyze().unwrap_err().contains("not produced before"));
        let mut n = tiny();
        n.nodes[4].inputs[1] = "in".into();
        assert!(n.analyze().unwrap_err().contains("different spatial sizes"));
        let mut n = tiny();
        n.output = "nowhere".into();
        assert!(n.analyze().unwrap_err().contains("never produced"));
    }
}
