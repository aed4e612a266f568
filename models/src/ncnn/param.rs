//! Parser for ncnn's text `.param` format: a magic line, `layer_count blob_count`, then one line
//! per layer: `Type name n_in n_out in… out… key=value…` (arrays as `-233xx=count,v,v…`).

use std::collections::BTreeMap;

use crate::error::{ModelError, Result};

/// First line of every text `.param` file.
pub const PARAM_MAGIC: &str = "7767517";
/// Refuse absurd files before building anything: the largest official export (RRDBNet) has
/// 999 layers and 1782 blobs.
pub const MAX_LAYERS: usize = 100_000;
/// ncnn's own limit on parameter ids (`NCNN_MAX_PARAM_COUNT`).
pub const MAX_PARAM_ID: i32 = 32;
/// Ids at or below this are arrays: `-23300 - id`.
const ARRAY_ID_BASE: i32 = -23300;

/// A parameter value as ncnn writes it: an int, a float, or an array of them.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    Int(i32),
    Float(f32),
    Array(Vec<f32>),
}

/// `key=value` parameters of one layer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParamDict(BTreeMap<i32, ParamValue>);

impl ParamDict {
    pub fn int(&self, id: i32, default: i32) -> std::result::Result<i32, String> {
        match self.0.get(&id) {
            None => Ok(default),
            Some(ParamValue::Int(v)) => Ok(*v),
            Some(other) => Err(format!("param {id} should be an int, found {other:?}")),
        }
    }

    pub fn float(&self, id: i32, default: f32) -> std::result::Result<f32, String> {
        match self.0.get(&id) {
            None => Ok(default),
            Some(ParamValue::Float(v)) => Ok(*v),
            // ncnn writes whole floats like 2 without a dot
            Some(ParamValue::Int(v)) => Ok(*v as f32),
            Some(other) => Err(format!("param {id} should be a float, found {other:?}")),
        }
    }

    pub fn floats(&self, id: i32) -> std::result::Result<Vec<f32>, String> {
        match self.0.get(&id) {
            None => Ok(Vec::new()),
            Some(ParamValue::Array(v)) => Ok(v.clone()),
            Some(other) => Err(format!("param {id} should be an array, found {other:?}")),
        }
    }

    /// Ids present, to reject parameters the importer does not understand.
    pub fn ids(&self) -> impl Iterator<Item = i32> + '_ {
        self.0.keys().copied()
    }
}

/// One layer line.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub kind: String,
    pub name: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub params: ParamDict,
    /// 1-based line in the file, for error messages.
    pub line: usize,
}

/// A parsed `.param` file.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamFile {
    pub layers: Vec<Layer>,
    pub blob_count: usize,
}

/// Parses `.param` text; `file` names it in errors.
pub fn parse_param(file: &str, text: &str) -> Result<ParamFile> {
    let err = |line: usize, reason: String| ModelError::Param {
        file: file.to_string(),
        line,
        reason,
    };
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty());

    match lines.next() {
        Some((_, PARAM_MAGIC)) => {}
        Some((n, other)) => {
            return Err(err(
                n,
                format!("expected magic {PARAM_MAGIC}, found {other:?} (binary .param files are not supported)"),
            ))
        }
        None => return Err(err(1, "empty file".into())),
    }
    let (n, counts) = lines
        .next()
        .ok_or_else(|| err(2, "missing `layer_count blob_count`".into()))?;
    let counts: Vec<usize> = counts
        .split_whitespace()
        .map(|t| t.parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| err(n, format!("layer/blob counts: {e}")))?;
    let [layer_count, blob_count] = counts[..] else {
        return Err(err(n, "expected `layer_count blob_count`".into()));
    };
    if layer_count > MAX_LAYERS || blob_count > MAX_LAYERS * 4 {
        return Err(err(
            n,
            format!(
                "{layer_count} layers / {blob_count} blobs exceed the limit of {MAX_LAYERS} layers"
            ),
        ));
    }

    let mut layers = Vec::with_capacity(layer_count);
    for (n, line) in lines {
        layers.push(
            parse_layer(line)
                .map_err(|reason| err(n, reason))
                .map(|mut l| {
                    l.line = n;
                    l
                })?,
        );
    }
    if layers.len() != layer_count {
        return Err(err(
            0,
            format!(
                "header says {layer_count} layers, file has {}",
                layers.len()
            ),
        ));
    }
    Ok(ParamFile { layers, blob_count })
}

fn parse_layer(line: &str) -> std::result::Result<Layer, String> {
    let mut tokens = line.split_whitespace();
    let mut next = |what: &str| tokens.next().ok_or_else(|| format!("missing {what}"));
    let kind = next("layer type")?.to_string();
    let name = next("layer name")?.to_string();
    let n_in: usize = next("input count")?
        .parse()
        .map_err(|e| format!("input count: {e}"))?;
    let n_out: usize = next("output count")?
        .parse()
        .map_err(|e| format!("output count: {e}"))?;
    if n_in > 1024 || n_out > 1024 {
        return Err(format!(
            "{n_in} inputs / {n_out} outputs is beyond any real layer"
        ));
    }
    let mut inputs = Vec::with_capacity(n_in);
    for _ in 0..n_in {
        inputs.push(next("input blob")?.to_string());
    }
    let mut outputs = Vec::with_capacity(n_out);
    for _ in 0..n_out {
        outputs.push(next("output blob")?.to_string());
    }
    let mut params = BTreeMap::new();
    for token in tokens {
        let (key, value) = token
            .split_once('=')
            .ok_or_else(|| format!("parameter {token:?} is not key=value"))?;
        let id: i32 = key
            .parse()
            .map_err(|e| format!("parameter id {key:?}: {e}"))?;
        let parsed = if id <= ARRAY_ID_BASE {
            let id = ARRAY_ID_BASE - id;
            let mut items = value.split(',');
            let count: usize = items
                .next()
                .unwrap_or_default()
                .parse()
                .map_err(|e| format!("array {id} count: {e}"))?;
            let values = items
                .map(|v| parse_number(v).map(|n| n.as_f32()))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| format!("array {id}: {e}"))?;
            if values.len() != count {
                return Err(format!(
                    "array {id} says {count} values, has {}",
                    values.len()
                ));
            }
            params.insert(id, ParamValue::Array(values));
            continue;
        } else {
            parse_number(value).map_err(|e| format!("parameter {id}: {e}"))?
        };
        if !(0..MAX_PARAM_ID).contains(&id) {
            return Err(format!("parameter id {id} out of range 0..{MAX_PARAM_ID}"));
        }
        params.insert(id, parsed);
    }
    Ok(Layer {
        kind,
        name,
        inputs,
        outputs,
        params: ParamDict(params),
        line: 0,
    })
}

impl ParamValue {
    fn as_f32(&self) -> f32 {
        match self {
            ParamValue::Int(v) => *v as f32,
            ParamValue::Float(v) => *v,
            ParamValue::Array(_) => f32::NAN,
        }
    }
}

/// ncnn's rule: a value with `.`, `e` or `E` is a float, anything else an int.
fn parse_number(s: &str) -> std::result::Result<ParamValue, String> {
    if s.contains(['.', 'e', 'E']) {
        s.parse::<f32>()
            .map(ParamValue::Float)
            .map_err(|e| format!("{s:?}: {e}"))
    } else {
        s.parse::<i32>()
            .map(ParamValue::Int)
            .map_err(|e| format!("{s:?}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = "7767517\n3 4\n\
        Input            input.1   0 1 data\n\
        Convolution      Conv_0    1 1 data 54 0=64 1=3 4=1 5=1 6=1728 9=2 -23310=1,2.000000e-01\n\
        Interp           Resize_40 1 1 54 output 0=3 1=5.000000e-01 2=5.000000e-01\n";

    #[test]
    fn parses_layers_params_and_arrays() {
        let p = parse_param("t.param", SMALL).unwrap();
        assert_eq!(p.layers.len(), 3);
        assert_eq!(p.blob_count, 4);
        let conv = &p.layers[1];
        assert_eq!(conv.kind, "Convolution");
        assert_eq!(conv.inputs, ["data"]);
        assert_eq!(conv.outputs, ["54"]);
        assert_eq!(conv.params.int(0, 0), Ok(64));
        assert_eq!(conv.params.int(11, -1), Ok(-1));
        assert_eq!(conv.params.floats(10), Ok(vec![0.2]));
        assert_eq!(conv.line, 4);
        let interp = &p.layers[2];
        assert_eq!(interp.params.float(1, 1.0), Ok(0.5));
        assert_eq!(interp.params.int(0, 0), Ok(3));
        assert!(interp.params.int(1, 0).is_err(), "a float is not an int");
    }

    #[test]
    fn rejects_bad_files_with_the_line() {
        let e = parse_param("x.param", "7767518\n").unwrap_err().to_string();
        assert!(e.contains("x.param: line 1") && e.contains("magic"), "{e}");
        let e = parse_param("x.param", "7767517\n2 2\nInput a 0 1 data\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("2 layers"), "{e}");
        let e = parse_param("x.param", "7767517\n1 1\nInput a 0 1 data 0=abc\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3"), "{e}");
        let e = parse_param("x.param", "7767517\n1 1\nInput a 0 1 data -23310=3,1.0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("says 3 values"), "{e}");
        let e = parse_param("x.param", "7767517\n99999999 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("limit"), "{e}");
        let e = parse_param("x.param", "7767517\n1 1\nInput a 0 5 data\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing output blob"), "{e}");
    }
}
