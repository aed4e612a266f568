//! The native engine (`Engine::Wgpu`): SRVGGNetCompact models (realesr-animevideov3 x2/x3/x4) on
//! aiprod's own wgpu kernels. The network comes from the official ncnn files in the model store
//! (sha256-checked against the registry), is matched against the SRVGGNetCompact pattern (a chain
//! of 3×3 convolutions with PReLU, pixel shuffle + nearest-upsampled input, an optional bicubic
//! resize) and anything else is refused by layer. Weights go to the device once; every tile is one
//! upload, one batch of dispatches and one download.

use std::sync::Arc;

use aiprod_kernels::conv::{Conv3x3Layer, Storage};
use aiprod_kernels::srvgg::{Srvgg, SrvggSpec};
use aiprod_kernels::{AdapterSummary, Context};

use crate::error::{ModelError, Result};
use crate::fetch::verify_file;
use crate::network::{Activation, Network, Op, ResizeMode};
use crate::registry::{ModelSpec, ModelStore, Precision};
use crate::runtime::SessionOptions;

/// The one architecture this engine runs (registry.toml's `architecture`).
pub const SUPPORTED_ARCHITECTURE: &str = "SRVGGNetCompact";

/// One model on the shared wgpu context; built once, run for every tile.
pub struct WgpuSession {
    net: Srvgg,
    precision: Precision,
}

impl WgpuSession {
    /// Imports the model's ncnn files from `store` and uploads it. fp32 unless `options.precision`
    /// asks for fp16, which needs an adapter with shader-f16. The adapter is the process's
    /// ([`Context::shared`], `AIPROD_WGPU_ADAPTER`); `options.device` is ONNX Runtime's and unused.
    pub fn open(spec: &ModelSpec, store: &ModelStore, options: &SessionOptions) -> Result<Self> {
        check_architecture(spec)?;
        let network = load_network(spec, store)?;
        let net_spec = srvgg_spec(&network, &engine_label(spec))?;
        let ctx = Context::shared()?;
        Self::with_context(ctx, &net_spec, options.precision.unwrap_or(Precision::Fp32))
    }

    /// The session for an already imported network on `ctx`.
    pub fn with_context(ctx: Arc<Context>, spec: &SrvggSpec, precision: Precision) -> Result<Self> {
        let storage = match precision {
            Precision::Fp32 => Storage::F32,
            Precision::Fp16 if ctx.has_f16() => Storage::F16,
            Precision::Fp16 => {
                return Err(ModelError::InvalidSetting(format!(
                    "fp16 on engine wgpu needs shader-f16, which adapter {} lacks (or AIPROD_WGPU_F16=0); use fp32",
                    ctx.adapter().name
                )))
            }
        };
        let net = Srvgg::new(ctx, spec, storage)?;
        tracing::info!(
            adapter = %net.context().adapter().name,
            storage = storage.as_str(),
            scale = net.scale(),
            "wgpu network ready"
        );
        Ok(Self { net, precision })
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn adapter(&self) -> &AdapterSummary {
        self.net.context().adapter()
    }

    pub fn scale(&self) -> u32 {
        self.net.scale()
    }

    /// Runs the network on one planar RGB tile (`3 × height × width`); returns `3 × sH × sW`.
    pub fn run(&mut self, input: &[f32], width: u32, height: u32) -> Result<Vec<f32>> {
        Ok(self.net.run(input, width, height)?)
    }
}

fn engine_label(spec: &ModelSpec) -> String {
    format!("{} (engine wgpu)", spec.label())
}

/// Refuses models of another architecture by name, before any file is read.
pub fn check_architecture(spec: &ModelSpec) -> Result<()> {
    if spec.architecture != SUPPORTED_ARCHITECTURE {
        return Err(ModelError::InvalidSetting(format!(
            "engine wgpu does not run {} ({}): it runs {SUPPORTED_ARCHITECTURE} models \
             (realesr-animevideov3 x2/x3/x4); use engine ort for this model",
            spec.label(),
            spec.architecture
        )));
    }
    Ok(())
}

/// The model's network from its official ncnn files in `store`, checked against the pins.
pub fn load_network(spec: &ModelSpec, store: &ModelStore) -> Result<Network> {
    let param_path = store.ncnn_path(&spec.param);
    let bin_path = store.ncnn_path(&spec.bin);
    verify_file("ncnn param", &param_path, &spec.param_sha256)?;
    verify_file("ncnn weights", &bin_path, &spec.bin_sha256)?;
    let param = std::fs::read(&param_path).map_err(|e| ModelError::io(&param_path, e))?;
    let bin = std::fs::read(&bin_path).map_err(|e| ModelError::io(&bin_path, e))?;
    let param_name = ModelSpec::member_file_name(&spec.param);
    let text = std::str::from_utf8(&param).map_err(|e| ModelError::Param {
        file: param_name.into(),
        line: 0,
        reason: format!("not UTF-8: {e}"),
    })?;
    crate::ncnn::import(
        param_name,
        text,
        ModelSpec::member_file_name(&spec.bin),
        &bin,
    )
}

fn op_kind(op: &Op) -> &'static str {
    match op {
        Op::Conv(_) => "Conv",
        Op::PRelu { .. } => "PRelu",
        Op::PixelShuffle { .. } => "PixelShuffle",
        Op::Resize { .. } => "Resize",
        Op::Add => "Add",
        Op::WeightedSum { .. } => "WeightedSum",
        Op::Concat => "Concat",
    }
}

/// Matches `network` against SRVGGNetCompact: conv 3×3 (+ PReLU or a fused activation) chained
/// from the input, pixel shuffle of the last, plus the input upsampled (nearest) by the same
/// factor, then optionally one bicubic resize. Anything else is refused naming the node;
/// `label` names the model in errors.
pub fn srvgg_spec(network: &Network, label: &str) -> Result<SrvggSpec> {
    let refuse = |node: &crate::network::Node, reason: &str| ModelError::Unsupported {
        file: label.to_string(),
        layer: node.name.clone(),
        kind: op_kind(&node.op).to_string(),
        reason: reason.to_string(),
    };
    let consumers = |blob: &str| {
        network
            .nodes
            .iter()
            .filter(|n| n.inputs.iter().any(|i| i == blob))
            .count()
    };
    let nodes = &network.nodes;
    let mut convs = Vec::new();
    let mut current = network.input.clone();
    let mut i = 0;
    while let Some(node) = nodes.get(i) {
        let Op::Conv(c) = &node.op else { break };
        if node.inputs != [current.as_str()] {
            return Err(refuse(
                node,
                "convolutions must form one chain from the input",
            ));
        }
        if (c.kernel_h, c.kernel_w) != (3, 3)
            || (c.dilation_h, c.dilation_w) != (1, 1)
            || c.pads != [1; 4]
        {
            return Err(refuse(
                node,
                "only 3x3 convolutions with dilation 1 and padding 1",
            ));
        }
        let mut slopes = vec![
            match c.activation {
                Activation::None => 1.0,
                Activation::Relu => 0.0,
                Activation::LeakyRelu { slope } => slope,
            };
            c.out_channels
        ];
        let mut output = node.output.clone();
        i += 1;
        if let Some(next) = nodes.get(i) {
            if let Op::PRelu { slopes: s } = &next.op {
                if c.activation != Activation::None || consumers(&node.output) != 1 {
                    return Err(refuse(
                        next,
                        "PReLU must be the only consumer of a plain convolution",
                    ));
                }
                slopes = if s.len() == 1 {
                    vec![s[0]; c.out_channels]
                } else {
                    s.clone()
                };
                output = next.output.clone();
                i += 1;
            }
        }
        convs.push(Conv3x3Layer {
            in_channels: c.in_channels,
            out_channels: c.out_channels,
            weights: c.weights.clone(),
            bias: c.bias.clone().unwrap_or_else(|| vec![0.0; c.out_channels]),
            slopes,
        });
        current = output;
    }

    let mut shuffle: Option<(usize, String)> = None;
    let mut upsampled: Option<(f32, String)> = None;
    let mut sum: Option<String> = None;
    let mut resize: Option<(f32, String)> = None;
    for node in &nodes[i..] {
        let ins: Vec<&str> = node.inputs.iter().map(String::as_str).collect();
        match &node.op {
            Op::PixelShuffle { factor } if shuffle.is_none() && ins == [current.as_str()] => {
                shuffle = Some((*factor, node.output.clone()));
            }
            Op::Resize {
                mode: ResizeMode::Nearest,
                scale_h,
                scale_w,
            } if upsampled.is_none() && ins == [network.input.as_str()] && scale_h == scale_w => {
                upsampled = Some((*scale_h, node.output.clone()));
            }
            Op::Add if sum.is_none() => {
                let (Some((_, s)), Some((_, u))) = (&shuffle, &upsampled) else {
                    return Err(refuse(node, "an addition before the shuffle and the skip"));
                };
                if !(ins == [s.as_str(), u.as_str()] || ins == [u.as_str(), s.as_str()]) {
                    return Err(refuse(
                        node,
                        "only the addition of the shuffled features and the upsampled input",
                    ));
                }
                sum = Some(node.output.clone());
            }
            Op::Resize {
                mode: ResizeMode::Bicubic,
                scale_h,
                scale_w,
            } if resize.is_none() && sum.as_deref().is_some_and(|s| ins == [s]) => {
                if scale_h != scale_w {
                    return Err(refuse(node, "different horizontal and vertical scales"));
                }
                resize = Some((*scale_h, node.output.clone()));
            }
            _ => {
                return Err(refuse(
                    node,
                    "not part of the SRVGGNetCompact pattern this engine runs",
                ))
            }
        }
    }
    let missing = |what: &str| ModelError::Unsupported {
        file: label.to_string(),
        layer: "(network)".into(),
        kind: "graph".into(),
        reason: format!("no {what}: not an SRVGGNetCompact network"),
    };
    let (factor, _) = shuffle.ok_or_else(|| missing("pixel shuffle"))?;
    let (up_scale, _) = upsampled.ok_or_else(|| missing("nearest-upsampled input"))?;
    let sum = sum.ok_or_else(|| missing("residual addition"))?;
    if up_scale != factor as f32 {
        return Err(missing("skip upsampled by the shuffle factor"));
    }
    let output = resize.as_ref().map_or(&sum, |(_, o)| o);
    if *output != network.output {
        return Err(missing("output at the end of the pattern"));
    }
    let spec = SrvggSpec {
        channels: network.input_channels,
        convs,
        shuffle_factor: factor as u32,
        resize: resize.map(|(s, _)| s),
    };
    spec.validate()?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{Conv, Node};

    fn conv(name: &str, input: &str, cin: usize, cout: usize, activation: Activation) -> Node {
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
                weights: vec![0.5; cout * cin * 9],
                bias: Some(vec![0.25; cout]),
                activation,
            }),
            inputs: vec![input.into()],
            output: name.into(),
        }
    }

    fn node(name: &str, op: Op, inputs: &[&str]) -> Node {
        Node {
            name: name.into(),
            op,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            output: name.into(),
        }
    }

    /// conv 3->4 + PReLU, conv 4->12 (leaky), shuffle x2 + nearest x2, optional bicubic 0.5
    fn tiny(bicubic: bool) -> Network {
        let mut nodes = vec![
            conv("c0", "in", 3, 4, Activation::None),
            node(
                "p0",
                Op::PRelu {
                    slopes: vec![0.1, 0.2, 0.3, 0.4],
                },
                &["c0"],
            ),
            conv("c1", "p0", 4, 12, Activation::LeakyRelu { slope: 0.2 }),
            node(
                "up",
                Op::Resize {
                    mode: ResizeMode::Nearest,
                    scale_h: 2.0,
                    scale_w: 2.0,
                },
                &["in"],
            ),
            node("ps", Op::PixelShuffle { factor: 2 }, &["c1"]),
            node("add", Op::Add, &["ps", "up"]),
        ];
        if bicubic {
            nodes.push(node(
                "down",
                Op::Resize {
                    mode: ResizeMode::Bicubic,
                    scale_h: 0.5,
                    scale_w: 0.5,
                },
                &["add"],
            ));
        }
        Network {
            input: "in".into(),
            input_channels: 3,
            output: if bicubic { "down" } else { "add" }.into(),
            nodes,
        }
    }

    #[test]
    fn matches_the_pattern() {
        let s = srvgg_spec(&tiny(false), "t").unwrap();
        assert_eq!(s.convs.len(), 2);
        assert_eq!(s.convs[0].slopes, [0.1, 0.2, 0.3, 0.4]);
        assert_eq!(s.convs[1].slopes, vec![0.2; 12]);
        assert_eq!((s.shuffle_factor, s.resize), (2, None));
        let s = srvgg_spec(&tiny(true), "t").unwrap();
        assert_eq!(s.resize, Some(0.5));
        assert_eq!(s.validate().unwrap(), 1);
    }

    #[test]
    fn refuses_other_graphs_by_node() {
        let mut n = tiny(false);
        n.nodes[5].op = Op::Concat;
        let e = srvgg_spec(&n, "m x2 (engine wgpu)")
            .unwrap_err()
            .to_string();
        assert!(e.contains("m x2 (engine wgpu): layer add (Concat)"), "{e}");
        let mut n = tiny(false);
        if let Op::Conv(c) = &mut n.nodes[2].op {
            c.kernel_h = 1;
            c.kernel_w = 1;
            c.pads = [0; 4];
            c.weights.truncate(48);
        }
        let e = srvgg_spec(&n, "m").unwrap_err().to_string();
        assert!(e.contains("layer c1 (Conv)") && e.contains("3x3"), "{e}");
        let mut n = tiny(false);
        if let Op::Resize {
            scale_h, scale_w, ..
        } = &mut n.nodes[3].op
        {
            (*scale_h, *scale_w) = (4.0, 4.0);
        }
        let e = srvgg_spec(&n, "m").unwrap_err().to_string();
        assert!(e.contains("upsampled by the shuffle factor"), "{e}");
    }

    #[test]
    fn other_architectures_are_refused_by_name() {
        let r = crate::registry::Registry::builtin().unwrap();
        let e = check_architecture(r.find("RealESRGAN_x4plus", 4).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("engine wgpu does not run RealESRGAN_x4plus x4"),
            "{e}"
        );
        check_architecture(r.find("realesr-animevideov3", 2).unwrap()).unwrap();
    }
}
