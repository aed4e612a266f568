//! ONNX export of a [`Network`]: the protobuf is written directly (prost, from a vendored subset of
//! onnx.proto3) so importing a model needs no Python and the output is byte-for-byte deterministic
//! (its sha256 is pinned in registry.toml). Opset 17, one input `input` [1,3,H,W] and one output
//! `output` [1,3,sH,sW], both fp32; the fp16 variant casts at both ends and keeps every weight
//! and activation in fp16 inside (for GPUs).

use crate::network::{Activation, Network, Op, ResizeMode};
use crate::registry::Precision;

/// Generated ONNX protobuf types.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

use proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

/// Operator set the graph is written against (ONNX Runtime 1.31 supports up to 23).
pub const OPSET: i64 = 17;
/// IR version that goes with opset 17.
pub const IR_VERSION: i64 = 8;
pub const INPUT_NAME: &str = "input";
pub const OUTPUT_NAME: &str = "output";
/// Written as the model's producer_version. It is part of the pinned bytes, so it is a constant
/// bumped together with the pins in registry.toml, never the crate version.
pub const EXPORTER_VERSION: &str = "1";

/// Free-form facts stored in the model's metadata_props (sorted, so output stays deterministic).
pub type Metadata = Vec<(String, String)>;

/// Serialises `net` as an ONNX model.
pub fn export(net: &Network, precision: Precision, metadata: &Metadata) -> Result<Vec<u8>, String> {
    let model = build_model(net, precision, metadata)?;
    Ok(prost::Message::encode_to_vec(&model))
}

fn build_model(
    net: &Network,
    precision: Precision,
    metadata: &Metadata,
) -> Result<ModelProto, String> {
    let shape = net.analyze()?;
    let mut g = GraphBuilder::new(net, precision);
    if precision == Precision::Fp16 {
        g.node(
            "Cast",
            "cast_input",
            &[INPUT_NAME.into()],
            &g.blob(&net.input),
            vec![attr_int("to", DataType::Float16 as i64)],
        );
    }
    for node in &net.nodes {
        let inputs: Vec<String> = node.inputs.iter().map(|i| g.blob(i)).collect();
        let out = g.blob(&node.output);
        let n = &node.name;
        match &node.op {
            Op::Conv(c) => {
                let w = g.initializer(
                    format!("{n}.weight"),
                    &[c.out_channels, c.in_channels, c.kernel_h, c.kernel_w],
                    &c.weights,
                );
                let mut conv_inputs = vec![inputs[0].clone(), w];
                if let Some(b) = &c.bias {
                    conv_inputs.push(g.initializer(format!("{n}.bias"), &[c.out_channels], b));
                }
                let attrs = vec![
                    attr_ints("kernel_shape", &[c.kernel_h, c.kernel_w]),
                    attr_ints("pads", &c.pads),
                    attr_ints("strides", &[1, 1]),
                    attr_ints("dilations", &[c.dilation_h, c.dilation_w]),
                ];
                match c.activation {
                    Activation::None => g.node("Conv", n, &conv_inputs, &out, attrs),
                    Activation::Relu => {
                        let pre = format!("{out}.conv");
                        g.node("Conv", n, &conv_inputs, &pre, attrs);
                        g.node("Relu", &format!("{n}.relu"), &[pre], &out, vec![]);
                    }
                    Activation::LeakyRelu { slope } => {
                        let pre = format!("{out}.conv");
                        g.node("Conv", n, &conv_inputs, &pre, attrs);
                        g.node(
                            "LeakyRelu",
                            &format!("{n}.leakyrelu"),
                            &[pre],
                            &out,
                            vec![attr_float("alpha", slope)],
                        );
                    }
                }
            }
            Op::PRelu { slopes } => {
                // [C,1,1] broadcasts over [N,C,H,W]; a single slope is a scalar-like [1]
                let dims: &[usize] = if slopes.len() == 1 {
                    &[1]
                } else {
                    &[slopes.len(), 1, 1]
                };
                let s = g.initializer(format!("{n}.slope"), dims, slopes);
                g.node("PRelu", n, &[inputs[0].clone(), s], &out, vec![]);
            }
            Op::PixelShuffle { factor } => {
                g.node(
                    "DepthToSpace",
                    n,
                    &inputs,
                    &out,
                    vec![
                        attr_int("blocksize", *factor as i64),
                        attr_str("mode", "CRD"),
                    ],
                );
            }
            Op::Resize {
                mode,
                scale_h,
                scale_w,
            } => {
                // scales are always fp32, whatever the data type
                let scales =
                    g.initializer_f32(format!("{n}.scales"), &[4], &[1.0, 1.0, *scale_h, *scale_w]);
                let attrs = match mode {
                    ResizeMode::Nearest => vec![
                        attr_str("mode", "nearest"),
                        attr_str("coordinate_transformation_mode", "asymmetric"),
                        attr_str("nearest_mode", "floor"),
                    ],
                    ResizeMode::Bicubic => vec![
                        attr_str("mode", "cubic"),
                        attr_float("cubic_coeff_a", -0.75),
                        attr_str("coordinate_transformation_mode", "half_pixel"),
                        attr_int("exclude_outside", 0),
                    ],
                };
                g.node(
                    "Resize",
                    n,
                    &[inputs[0].clone(), String::new(), scales],
                    &out,
                    attrs,
                );
            }
            Op::Add => g.node("Add", n, &inputs, &out, vec![]),
            Op::WeightedSum { coeffs } => {
                let mut terms = Vec::with_capacity(inputs.len());
                for (i, (x, c)) in inputs.iter().zip(coeffs).enumerate() {
                    if *c == 1.0 {
                        terms.push(x.clone());
                    } else {
                        let k = g.initializer(format!("{n}.coeff{i}"), &[], &[*c]);
                        let scaled = format!("{out}.term{i}");
                        g.node(
                            "Mul",
                            &format!("{n}.mul{i}"),
                            &[x.clone(), k],
                            &scaled,
                            vec![],
                        );
                        terms.push(scaled);
                    }
                }
                let op = if terms.len() == 2 { "Add" } else { "Sum" };
                g.node(op, n, &terms, &out, vec![]);
            }
            Op::Concat => g.node("Concat", n, &inputs, &out, vec![attr_int("axis", 1)]),
        }
    }
    if precision == Precision::Fp16 {
        g.node(
            "Cast",
            "cast_output",
            &[g.blob(&net.output)],
            OUTPUT_NAME,
            vec![attr_int("to", DataType::Float as i64)],
        );
    }

    let io = |name: &str, channels: usize, h: &str, w: &str| ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto {
                    dim: vec![
                        dim_value(1),
                        dim_value(channels as i64),
                        dim_param(h),
                        dim_param(w),
                    ],
                }),
            })),
            denotation: String::new(),
        }),
        doc_string: String::new(),
    };
    let graph = GraphProto {
        node: g.nodes,
        name: "realesrgan".into(),
        initializer: g.initializers,
        doc_string: String::new(),
        input: vec![io(INPUT_NAME, net.input_channels, "height", "width")],
        output: vec![io(
            OUTPUT_NAME,
            shape.output_channels,
            "out_height",
            "out_width",
        )],
        value_info: vec![],
    };
    let mut props: Vec<(String, String)> = metadata.clone();
    props.push(("aiprod.scale".into(), shape.scale.to_string()));
    props.push((
        "aiprod.receptive_radius_px".into(),
        shape.receptive_radius_px.to_string(),
    ));
    props.push((
        "aiprod.precision".into(),
        format!("{precision:?}").to_lowercase(),
    ));
    props.sort();
    Ok(ModelProto {
        ir_version: IR_VERSION,
        producer_name: "aiprod-models".into(),
        producer_version: EXPORTER_VERSION.into(),
        domain: String::new(),
        model_version: 1,
        doc_string: String::new(),
        graph: Some(graph),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        metadata_props: props
            .into_iter()
            .map(|(key, value)| StringStringEntryProto { key, value })
            .collect(),
    })
}

struct GraphBuilder<'a> {
    net: &'a Network,
    precision: Precision,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

impl<'a> GraphBuilder<'a> {
    fn new(net: &'a Network, precision: Precision) -> Self {
        Self {
            net,
            precision,
            nodes: Vec::new(),
            initializers: Vec::new(),
        }
    }

    /// ONNX name of an ncnn blob; a prefix keeps them apart from our own names.
    fn blob(&self, blob: &str) -> String {
        match self.precision {
            Precision::Fp32 if blob == self.net.input => INPUT_NAME.into(),
            Precision::Fp32 if blob == self.net.output => OUTPUT_NAME.into(),
            _ => format!("blob_{blob}"),
        }
    }

    fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[String],
        output: &str,
        attribute: Vec<AttributeProto>,
    ) {
        self.nodes.push(NodeProto {
            input: inputs.to_vec(),
            output: vec![output.to_string()],
            name: name.to_string(),
            op_type: op.to_string(),
            attribute,
            doc_string: String::new(),
            domain: String::new(),
        });
    }

    /// A weight in the model's precision.
    fn initializer(&mut self, name: String, dims: &[usize], values: &[f32]) -> String {
        match self.precision {
            Precision::Fp32 => self.initializer_f32(name, dims, values),
            Precision::Fp16 => {
                let raw = values
                    .iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect();
                self.push_initializer(name, dims, DataType::Float16, raw)
            }
        }
    }

    fn initializer_f32(&mut self, name: String, dims: &[usize], values: &[f32]) -> String {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.push_initializer(name, dims, DataType::Float, raw)
    }

    fn push_initializer(
        &mut self,
        name: String,
        dims: &[usize],
        data_type: DataType,
        raw_data: Vec<u8>,
    ) -> String {
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: data_type as i32,
            name: name.clone(),
            raw_data,
            ..Default::default()
        });
        name
    }
}

fn dim_value(v: i64) -> tensor_shape_proto::Dimension {
    tensor_shape_proto::Dimension {
        value: Some(tensor_shape_proto::dimension::Value::DimValue(v)),
        denotation: String::new(),
    }
}

fn dim_param(p: &str) -> tensor_shape_proto::Dimension {
    tensor_shape_proto::Dimension {
        value: Some(tensor_shape_proto::dimension::Value::DimParam(p.into())),
        denotation: String::new(),
    }
}

fn attr(name: &str, ty: AttributeType) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: ty as i32,
        ..Default::default()
    }
}

fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        i: v,
        ..attr(name, AttributeType::Int)
    }
}

fn attr_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        f: v,
        ..attr(name, AttributeType::Float)
    }
}

fn attr_str(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        s: v.as_bytes().to_vec(),
        ..attr(name, AttributeType::String)
    }
}

fn attr_ints(name: &str, v: &[usize]) -> AttributeProto {
    AttributeProto {
        ints: v.iter().map(|&x| x as i64).collect(),
        ..attr(name, AttributeType::Ints)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{Conv, Node};
    use prost::Message;

    fn net() -> Network {
        Network {
            input: "data".into(),
            input_channels: 3,
            output: "output".into(),
            nodes: vec![
                Node {
                    name: "c".into(),
                    op: Op::Conv(Conv {
                        out_channels: 12,
                        in_channels: 3,
                        kernel_h: 3,
                        kernel_w: 3,
                        dilation_h: 1,
                        dilation_w: 1,
                        pads: [1; 4],
                        weights: (0..324).map(|i| i as f32 / 512.0).collect(),
                        bias: Some(vec![0.5; 12]),
                        activation: Activation::LeakyRelu { slope: 0.2 },
                    }),
                    inputs: vec!["data".into()],
                    output: "x".into(),
                },
                Node {
                    name: "ps".into(),
                    op: Op::PixelShuffle { factor: 2 },
                    inputs: vec!["x".into()],
                    output: "y".into(),
                },
                Node {
                    name: "up".into(),
                    op: Op::Resize {
                        mode: ResizeMode::Nearest,
                        scale_h: 2.0,
                        scale_w: 2.0,
                    },
                    inputs: vec!["data".into()],
                    output: "z".into(),
                },
                Node {
                    name: "sum".into(),
                    op: Op::WeightedSum {
                        coeffs: vec![0.2, 1.0],
                    },
                    inputs: vec!["y".into(), "z".into()],
                    output: "output".into(),
                },
            ],
        }
    }

    #[test]
    fn writes_a_decodable_opset17_model() {
        let bytes = export(
            &net(),
            Precision::Fp32,
            &vec![("aiprod.model".into(), "t".into())],
        )
        .unwrap();
        let m = ModelProto::decode(&bytes[..]).unwrap();
        assert_eq!((m.ir_version, m.opset_import[0].version), (8, 17));
        let g = m.graph.unwrap();
        let ops: Vec<&str> = g.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(
            ops,
            ["Conv", "LeakyRelu", "DepthToSpace", "Resize", "Mul", "Add"]
        );
        assert_eq!(g.input[0].name, "input");
        assert_eq!(g.output[0].name, "output");
        assert_eq!(g.node[0].input, ["input", "c.weight", "c.bias"]);
        assert_eq!(g.node.last().unwrap().output, ["output"]);
        let w = &g.initializer[0];
        assert_eq!(w.dims, [12, 3, 3, 3]);
        assert_eq!(w.raw_data.len(), 324 * 4);
        assert_eq!(
            f32::from_le_bytes(w.raw_data[4..8].try_into().unwrap()),
            1.0 / 512.0
        );
        let keys: Vec<&str> = m.metadata_props.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "aiprod.model",
                "aiprod.precision",
                "aiprod.receptive_radius_px",
                "aiprod.scale"
            ]
        );
        assert_eq!(m.metadata_props[3].value, "2");
    }

    #[test]
    fn fp16_variant_casts_at_both_ends() {
        let bytes = export(&net(), Precision::Fp16, &vec![]).unwrap();
        let g = ModelProto::decode(&bytes[..]).unwrap().graph.unwrap();
        assert_eq!(g.node[0].op_type, "Cast");
        assert_eq!(g.node[0].input, ["input"]);
        let last = g.node.last().unwrap();
        assert_eq!(
            (last.op_type.as_str(), last.output[0].as_str()),
            ("Cast", "output")
        );
        let w = g.initializer.iter().find(|t| t.name == "c.weight").unwrap();
        assert_eq!(w.data_type, DataType::Float16 as i32);
        assert_eq!(w.raw_data.len(), 324 * 2);
        let scales = g
            .initializer
            .iter()
            .find(|t| t.name == "up.scales")
            .unwrap();
        assert_eq!(scales.data_type, DataType::Float as i32);
    }

    #[test]
    fn export_is_deterministic() {
        let a = export(&net(), Precision::Fp32, &vec![]).unwrap();
        let b = export(&net(), Precision::Fp32, &vec![]).unwrap();
        assert_eq!(a, b);
    }
}
