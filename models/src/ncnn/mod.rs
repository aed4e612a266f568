//! Import of ncnn models (`.param` + `.bin`) into a [`Network`]. Only the layer types and
//! parameters the official Real-ESRGAN exports use are accepted; anything else is refused with the
//! layer's name rather than guessed.

pub mod param;
pub mod weights;

use std::collections::HashMap;

use crate::error::{ModelError, Result};
use crate::network::{Activation, Conv, Network, Node, Op, ResizeMode};
use param::{parse_param, Layer, ParamDict};
use weights::WeightReader;

/// Imports a model; `param_name` / `bin_name` name the files in errors.
pub fn import(param_name: &str, param_text: &str, bin_name: &str, bin: &[u8]) -> Result<Network> {
    let file = parse_param(param_name, param_text)?;
    let mut reader = WeightReader::new(bin);
    // Split layers only copy a blob: map each copy back to the blob it copies
    let mut alias: HashMap<String, String> = HashMap::new();
    let resolve = |alias: &HashMap<String, String>, b: &str| -> String {
        alias.get(b).cloned().unwrap_or_else(|| b.to_string())
    };
    let mut input: Option<String> = None;
    let mut nodes = Vec::new();

    for layer in &file.layers {
        let unsupported = |reason: String| ModelError::Unsupported {
            file: param_name.to_string(),
            layer: layer.name.clone(),
            kind: layer.kind.clone(),
            reason,
        };
        let bad_param = |reason: String| ModelError::Param {
            file: param_name.to_string(),
            line: layer.line,
            reason: format!("layer {}: {reason}", layer.name),
        };
        let weights_err = |reason: String| ModelError::Weights {
            file: bin_name.to_string(),
            layer: layer.name.clone(),
            reason,
        };
        let inputs: Vec<String> = layer.inputs.iter().map(|b| resolve(&alias, b)).collect();
        let one_output = || -> Result<String> {
            match &layer.outputs[..] {
                [o] => Ok(o.clone()),
                _ => Err(bad_param(format!(
                    "expects one output, has {}",
                    layer.outputs.len()
                ))),
            }
        };

        let op = match layer.kind.as_str() {
            "Input" => {
                if input.is_some() {
                    return Err(unsupported("a second Input".into()));
                }
                input = Some(one_output()?);
                continue;
            }
            "Split" => {
                let [src] = &inputs[..] else {
                    return Err(bad_param("Split takes one input".into()));
                };
                for out in &layer.outputs {
                    alias.insert(out.clone(), src.clone());
                }
                continue;
            }
            "Convolution" => {
                let conv = convolution(layer, &mut reader).map_err(|e| match e {
                    LayerError::Param(r) => bad_param(r),
                    LayerError::Unsupported(r) => unsupported(r),
                    LayerError::Weights(r) => weights_err(r),
                })?;
                Op::Conv(conv)
            }
            "PReLU" => {
                check_ids(&layer.params, &[0]).map_err(unsupported)?;
                let n = layer.params.int(0, 0).map_err(bad_param)?;
                let n = usize::try_from(n)
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| bad_param(format!("num_slope {n}")))?;
                Op::PRelu {
                    slopes: reader.raw_f32(n).map_err(weights_err)?,
                }
            }
            "PixelShuffle" => {
                check_ids(&layer.params, &[0, 1]).map_err(unsupported)?;
                if layer.params.int(1, 0).map_err(bad_param)? != 0 {
                    return Err(unsupported("only mode 0 (PyTorch order)".into()));
                }
                let f = layer.params.int(0, 1).map_err(bad_param)?;
                Op::PixelShuffle {
                    factor: usize::try_from(f)
                        .ok()
                        .filter(|&f| (1..=16).contains(&f))
                        .ok_or_else(|| bad_param(format!("upscale_factor {f}")))?,
                }
            }
            "Interp" => {
                check_ids(&layer.params, &[0, 1, 2, 3, 4, 5, 6]).map_err(unsupported)?;
                let p = &layer.params;
                let fixed = [
                    (3, "output_height"),
                    (4, "output_width"),
                    (5, "dynamic_target_size"),
                    (6, "align_corner"),
                ];
                for (id, what) in fixed {
                    if p.int(id, 0).map_err(bad_param)? != 0 {
                        return Err(unsupported(format!("{what} != 0")));
                    }
                }
                let mode = match p.int(0, 0).map_err(bad_param)? {
                    1 => ResizeMode::Nearest,
                    3 => ResizeMode::Bicubic,
                    t => return Err(unsupported(format!("resize_type {t}"))),
                };
                Op::Resize {
                    mode,
                    scale_h: p.float(1, 1.0).map_err(bad_param)?,
                    scale_w: p.float(2, 1.0).map_err(bad_param)?,
                }
            }
            "BinaryOp" => {
                check_ids(&layer.params, &[0, 1, 2]).map_err(unsupported)?;
                let p = &layer.params;
                if p.int(0, 0).map_err(bad_param)? != 0 || p.int(1, 0).map_err(bad_param)? != 0 {
                    return Err(unsupported("only the addition of two blobs".into()));
                }
                Op::Add
            }
            "Eltwise" => {
                check_ids(&layer.params, &[0, 1]).map_err(unsupported)?;
                if layer.params.int(0, 0).map_err(bad_param)? != 1 {
                    return Err(unsupported("only op_type 1 (sum)".into()));
                }
                let mut coeffs = layer.params.floats(1).map_err(bad_param)?;
                if coeffs.is_empty() {
                    coeffs = vec![1.0; inputs.len()];
                }
                Op::WeightedSum { coeffs }
            }
            "Concat" => {
                check_ids(&layer.params, &[0]).map_err(unsupported)?;
                if layer.params.int(0, 0).map_err(bad_param)? != 0 {
                    return Err(unsupported("only axis 0 (channels)".into()));
                }
                Op::Concat
            }
            other => return Err(unsupported(format!("layer type {other}"))),
        };
        nodes.push(Node {
            name: layer.name.clone(),
            op,
            inputs,
            output: one_output()?,
        });
    }

    if reader.remaining() != 0 {
        return Err(ModelError::Weights {
            file: bin_name.to_string(),
            layer: "(end)".into(),
            reason: format!(
                "{} bytes left after the last layer (read {}): the .bin does not match the .param",
                reader.remaining(),
                reader.offset()
            ),
        });
    }
    let input = input.ok_or_else(|| ModelError::Param {
        file: param_name.to_string(),
        line: 0,
        reason: "no Input layer".into(),
    })?;
    let output = sole_output(&nodes).map_err(|reason| ModelError::Param {
        file: param_name.to_string(),
        line: 0,
        reason,
    })?;
    let network = Network {
        input,
        input_channels: 3,
        output,
        nodes,
    };
    network.analyze().map_err(|reason| ModelError::Param {
        file: param_name.to_string(),
        line: 0,
        reason,
    })?;
    Ok(network)
}

/// The one blob that is produced and never consumed.
fn sole_output(nodes: &[Node]) -> std::result::Result<String, String> {
    let consumed: std::collections::HashSet<&str> = nodes
        .iter()
        .flat_map(|n| n.inputs.iter().map(String::as_str))
        .collect();
    let dangling: Vec<&str> = nodes
        .iter()
        .map(|n| n.output.as_str())
        .filter(|o| !consumed.contains(o))
        .collect();
    match dangling[..] {
        [one] => Ok(one.to_string()),
        _ => Err(format!("expected one network output, found {dangling:?}")),
    }
}

enum LayerError {
    Param(String),
    Unsupported(String),
    Weights(String),
}

fn check_ids(params: &ParamDict, known: &[i32]) -> std::result::Result<(), String> {
    match params.ids().find(|id| !known.contains(id)) {
        Some(id) => Err(format!("parameter {id} is not understood")),
        None => Ok(()),
    }
}

/// ncnn Convolution: 0 num_output, 1/11 kernel w/h, 2/12 dilation, 3/13 stride, 4/14/15/16 pads
/// left/top/right/bottom, 18 pad value, 5 bias_term, 6 weight_data_size, 8 int8, 9/10 activation.
fn convolution(
    layer: &Layer,
    reader: &mut WeightReader<'_>,
) -> std::result::Result<Conv, LayerError> {
    let p = &layer.params;
    check_ids(
        p,
        &[0, 1, 11, 2, 12, 3, 13, 4, 14, 15, 16, 18, 5, 6, 8, 9, 10],
    )
    .map_err(LayerError::Unsupported)?;
    let int = |id, default| p.int(id, default).map_err(LayerError::Param);
    let positive = |v: i32, what: &str| {
        usize::try_from(v)
            .ok()
            .filter(|&v| v > 0 && v <= 1 << 20)
            .ok_or_else(|| LayerError::Param(format!("{what} {v}")))
    };
    let out_channels = positive(int(0, 0)?, "num_output")?;
    let kernel_w = positive(int(1, 0)?, "kernel_w")?;
    let kernel_h = positive(int(11, kernel_w as i32)?, "kernel_h")?;
    let dilation_w = positive(int(2, 1)?, "dilation_w")?;
    let dilation_h = positive(int(12, dilation_w as i32)?, "dilation_h")?;
    let stride_w = int(3, 1)?;
    let stride_h = int(13, stride_w)?;
    if stride_w != 1 || stride_h != 1 {
        return Err(LayerError::Unsupported(format!(
            "stride {stride_w}x{stride_h}"
        )));
    }
    let pad_left = int(4, 0)?;
    let pad_top = int(14, pad_left)?;
    let pad_right = int(15, pad_left)?;
    let pad_bottom = int(16, pad_top)?;
    let pads = [pad_top, pad_left, pad_bottom, pad_right];
    if pads.iter().any(|&p| p < 0) {
        return Err(LayerError::Unsupported("automatic (SAME) padding".into()));
    }
    if p.float(18, 0.0).map_err(LayerError::Param)? != 0.0 {
        return Err(LayerError::Unsupported("non-zero pad value".into()));
    }
    if int(8, 0)? != 0 {
        return Err(LayerError::Unsupported("int8 quantisation".into()));
    }
    let weight_count = positive(int(6, 0)?, "weight_data_size")?;
    let per_input = out_channels * kernel_h * kernel_w;
    if weight_count % per_input != 0 {
        return Err(LayerError::Param(format!(
            "weight_data_size {weight_count} is not a multiple of {out_channels}x{kernel_h}x{kernel_w}"
        )));
    }
    let activation_params = p.floats(10).map_err(LayerError::Param)?;
    let activation = match int(9, 0)? {
        0 => Activation::None,
        1 => Activation::Relu,
        2 => Activation::LeakyRelu {
            slope: activation_params.first().copied().unwrap_or(0.0),
        },
        t => return Err(LayerError::Unsupported(format!("activation_type {t}"))),
    };
    let weights = reader.tagged(weight_count).map_err(LayerError::Weights)?;
    let bias = match int(5, 0)? {
        0 => None,
        _ => Some(reader.raw_f32(out_channels).map_err(LayerError::Weights)?),
    };
    Ok(Conv {
        out_channels,
        in_channels: weight_count / per_input,
        kernel_h,
        kernel_w,
        dilation_h,
        dilation_w,
        pads: pads.map(|p| p as usize),
        weights,
        bias,
        activation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use weights::TAG_FP16;

    /// A 2-conv SRVGG-like net: conv 3->4 + PReLU, conv 4->12, pixelshuffle 2, + nearest x2.
    fn tiny_files() -> (String, Vec<u8>) {
        let param = "7767517\n8 9\n\
            Input    in      0 1 data\n\
            Split    sp      1 2 data d0 d1\n\
            Convolution c0   1 1 d1 a 0=4 1=3 4=1 5=1 6=108\n\
            PReLU    p0      1 1 a b 0=4\n\
            Convolution c1   1 1 b c 0=12 1=3 4=1 5=1 6=432\n\
            PixelShuffle ps  1 1 c d 0=2\n\
            Interp   up      1 1 d0 e 0=1 1=2.0 2=2.0\n\
            BinaryOp add     2 1 d e output 0=0\n"
            .to_string();
        let mut bin = Vec::new();
        for (w, b) in [(108usize, 4usize), (432, 12)] {
            bin.extend(TAG_FP16.to_le_bytes());
            for i in 0..w {
                bin.extend(half::f16::from_f32(i as f32 / 1024.0).to_le_bytes());
            }
            for i in 0..b {
                bin.extend((i as f32).to_le_bytes());
            }
            if w == 108 {
                for _ in 0..4 {
                    bin.extend(0.25f32.to_le_bytes());
                }
            }
        }
        (param, bin)
    }

    #[test]
    fn imports_a_small_network() {
        let (param, bin) = tiny_files();
        let n = import("t.param", &param, "t.bin", &bin).unwrap();
        assert_eq!(n.input, "data");
        assert_eq!(n.output, "output");
        assert_eq!(n.nodes.len(), 6);
        let Op::Conv(c0) = &n.nodes[0].op else {
            panic!("first node is a conv")
        };
        assert_eq!((c0.in_channels, c0.out_channels), (3, 4));
        assert_eq!(c0.weights[5], 5.0 / 1024.0);
        assert_eq!(c0.bias.as_deref(), Some(&[0.0, 1.0, 2.0, 3.0][..]));
        assert_eq!(n.nodes[0].inputs, ["data"], "split resolved to its source");
        assert_eq!(n.nodes[4].inputs, ["data"]);
        assert_eq!(
            n.nodes[1].op,
            Op::PRelu {
                slopes: vec![0.25; 4]
            }
        );
        let shape = n.analyze().unwrap();
        assert_eq!((shape.scale, shape.receptive_radius_px), (2, 2));
    }

    #[test]
    fn bin_size_must_match_exactly() {
        let (param, mut bin) = tiny_files();
        bin.extend([0; 4]);
        let e = import("t.param", &param, "t.bin", &bin)
            .unwrap_err()
            .to_string();
        assert!(e.contains("4 bytes left"), "{e}");
        bin.truncate(bin.len() - 12);
        let e = import("t.param", &param, "t.bin", &bin)
            .unwrap_err()
            .to_string();
        assert!(e.contains("t.bin: layer c1"), "{e}");
    }

    #[test]
    fn unknown_layers_and_params_are_refused() {
        let (param, bin) = tiny_files();
        let p = param.replace(
            "BinaryOp add     2 1 d e output 0=0",
            "BinaryOp add 2 1 d e output 0=2",
        );
        let e = import("t.param", &p, "t.bin", &bin)
            .unwrap_err()
            .to_string();
        assert!(e.contains("layer add (BinaryOp)"), "{e}");
        let p = param.replace("PixelShuffle", "Deconvolution");
        let e = import("t.param", &p, "t.bin", &bin)
            .unwrap_err()
            .to_string();
        assert!(e.contains("layer type Deconvolution"), "{e}");
        let p = param.replace("0=12 1=3 4=1", "0=12 1=3 4=1 7=2");
        let e = import("t.param", &p, "t.bin", &bin)
            .unwrap_err()
            .to_string();
        assert!(e.contains("parameter 7"), "{e}");
    }
}
