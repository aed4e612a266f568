//! This node's hardware as GetNodeStatus and admission control see it: the CPU, every wgpu
//! adapter, the NVIDIA GPUs, and which engines run on each. Detected once at start (it loads the
//! Vulkan drivers and ONNX Runtime: tens to hundreds of milliseconds), then only read.
//!
//! The merging of what was found into adapters ([`assemble`]) is pure and unit-tested; the
//! probes (`/proc`, wgpu, ONNX Runtime, NVML) are at the edge and never fail the daemon: what
//! cannot be read is reported as absent or unknown.

use std::path::Path;

use aiprod_kernels::AdapterKind;
use aiprod_models::Provider;

use crate::proto;

/// The GStreamer pipelines (decode, scale, encode): always on the CPU.
pub const ENGINE_GSTREAMER: &str = "gstreamer";
pub const ENGINE_ORT_CPU: &str = "ort-cpu";
pub const ENGINE_ORT_CUDA: &str = "ort-cuda";
pub const ENGINE_ORT_TENSORRT: &str = "ort-tensorrt";
pub const ENGINE_WGPU: &str = "wgpu";

/// Where the NVIDIA kernel driver lists its GPUs, one directory per PCI bus id.
const NVIDIA_GPUS_DIR: &str = "/proc/driver/nvidia/gpus";
const NVIDIA_VERSION_FILE: &str = "/proc/driver/nvidia/version";
/// NVML, the NVIDIA driver's management library: the only native source of a GPU's memory size.
const NVML_LIBRARY: &str = "libnvidia-ml.so.1";

/// One adapter: the CPU, a GPU, or a software rasteriser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adapter {
    pub name: String,
    /// "cpu", "discrete-gpu", "integrated-gpu", "virtual-gpu", "software", "other".
    pub kind: &'static str,
    /// 0 = unknown.
    pub memory_bytes: u64,
    /// "vulkan", "metal", "dx12" (wgpu), "nvidia" (the kernel driver); empty for the CPU.
    pub backend: String,
    pub driver: String,
    pub engines: Vec<&'static str>,
}

impl Adapter {
    /// A real GPU that runs at least one GPU engine (lavapipe runs wgpu, but on the CPU).
    pub fn is_usable_gpu(&self) -> bool {
        self.engines.iter().any(|e| match *e {
            ENGINE_ORT_CUDA | ENGINE_ORT_TENSORRT => true,
            ENGINE_WGPU => is_gpu_kind(self.kind),
            _ => false,
        })
    }

    fn to_proto(&self) -> proto::Adapter {
        proto::Adapter {
            name: self.name.clone(),
            kind: self.kind.into(),
            memory_bytes: self.memory_bytes,
            engines: self.engines.iter().map(|e| e.to_string()).collect(),
            backend: self.backend.clone(),
            driver: self.driver.clone(),
            gpu: self.is_usable_gpu(),
        }
    }
}

fn is_gpu_kind(kind: &str) -> bool {
    matches!(kind, "discrete-gpu" | "integrated-gpu" | "virtual-gpu")
}

fn kind_name(kind: AdapterKind) -> &'static str {
    match kind {
        AdapterKind::Discrete => "discrete-gpu",
        AdapterKind::Integrated => "integrated-gpu",
        AdapterKind::Virtual => "virtual-gpu",
        AdapterKind::Software => "software",
        AdapterKind::Other => "other",
    }
}

/// What the node has, detected once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hardware {
    /// The CPU first, then GPUs, then software adapters.
    pub adapters: Vec<Adapter>,
}

impl Hardware {
    /// Probes the machine. Blocking; call once at start.
    pub fn detect() -> Hardware {
        let started = std::time::Instant::now();
        let hw = Hardware {
            adapters: assemble(Found {
                cpu: Cpu {
                    model: cpu_model(),
                    memory_bytes: meminfo_total_bytes(),
                },
                wgpu: aiprod_kernels::adapters()
                    .into_iter()
                    .map(|a| WgpuAdapter {
                        name: a.name,
                        kind: a.kind,
                        backend: a.backend,
                        driver: a.driver,
                    })
                    .collect(),
                nvidia: nvidia_gpus(Path::new(NVIDIA_GPUS_DIR)),
                ort: ort_providers(),
            }),
        };
        for a in &hw.adapters {
            tracing::info!(
                name = %a.name, kind = a.kind, memory_bytes = a.memory_bytes,
                engines = %a.engines.join(","), "adapter"
            );
        }
        tracing::info!(
            gpus = hw.usable_gpus(),
            took_ms = started.elapsed().as_secs_f64() * 1e3,
            "hardware detected"
        );
        hw
    }

    /// The CPU alone, with GStreamer (for tests and for nodes that skip detection).
    pub fn cpu_only() -> Hardware {
        Hardware {
            adapters: assemble(Found {
                cpu: Cpu {
                    model: cpu_model(),
                    memory_bytes: meminfo_total_bytes(),
                },
                ..Found::default()
            }),
        }
    }

    /// GPUs that run at least one GPU engine: the default number of GPU slots.
    pub fn usable_gpus(&self) -> usize {
        self.adapters.iter().filter(|a| a.is_usable_gpu()).count()
    }

    /// Whether some usable GPU runs one of `engines`.
    pub fn gpu_with_any(&self, engines: &[&str]) -> bool {
        self.adapters
            .iter()
            .filter(|a| a.is_usable_gpu())
            .any(|a| a.engines.iter().any(|e| engines.contains(e)))
    }

    /// "name (kind: engines)" of every adapter, for error messages.
    pub fn describe(&self) -> String {
        self.adapters
            .iter()
            .map(|a| format!("{} ({}: {})", a.name, a.kind, a.engines.join(", ")))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn to_proto(&self) -> Vec<proto::Adapter> {
        self.adapters.iter().map(Adapter::to_proto).collect()
    }
}

/// Everything the probes found, before merging.
#[derive(Debug, Clone, Default)]
pub struct Found {
    pub cpu: Cpu,
    pub wgpu: Vec<WgpuAdapter>,
    pub nvidia: Vec<NvidiaGpu>,
    /// None: ONNX Runtime is not loaded (no `ORT_DYLIB_PATH`, or it failed to load).
    pub ort: Option<Vec<Provider>>,
}

#[derive(Debug, Clone, Default)]
pub struct Cpu {
    pub model: String,
    pub memory_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct WgpuAdapter {
    pub name: String,
    pub kind: AdapterKind,
    pub backend: String,
    pub driver: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NvidiaGpu {
    /// "Model:" of /proc/driver/nvidia/gpus/<bus>/information.
    pub model: String,
    /// PCI bus id, e.g. "0000:00:06.0".
    pub bus_id: String,
    pub driver: String,
    /// 0 = unknown (NVML not installed).
    pub memory_bytes: u64,
}

/// Merges the probes into adapters: the CPU; each NVIDIA GPU with the ONNX Runtime GPU providers
/// that can register and, when wgpu lists a GPU of the same name, "wgpu" (that wgpu adapter is
/// then not listed again); every other wgpu adapter with "wgpu".
pub fn assemble(found: Found) -> Vec<Adapter> {
    let mut cpu_engines = vec![ENGINE_GSTREAMER];
    if found.ort.is_some() {
        cpu_engines.push(ENGINE_ORT_CPU);
    }
    let mut adapters = vec![Adapter {
        name: if found.cpu.model.is_empty() {
            "cpu".into()
        } else {
            found.cpu.model
        },
        kind: "cpu",
        memory_bytes: found.cpu.memory_bytes,
        backend: String::new(),
        driver: String::new(),
        engines: cpu_engines,
    }];
    let ort = found.ort.unwrap_or_default();
    let mut wgpu: Vec<Option<WgpuAdapter>> = found.wgpu.into_iter().map(Some).collect();
    for gpu in found.nvidia {
        let mut engines = Vec::new();
        if ort.contains(&Provider::TensorRt) {
            engines.push(ENGINE_ORT_TENSORRT);
        }
        if ort.contains(&Provider::Cuda) {
            engines.push(ENGINE_ORT_CUDA);
        }
        // The same GPU as wgpu sees it (one to one, in order, for several identical cards).
        let twin = wgpu.iter_mut().find(|w| {
            w.as_ref().is_some_and(|w| {
                w.kind.is_gpu() && w.name.trim().eq_ignore_ascii_case(gpu.model.trim())
            })
        });
        if let Some(twin) = twin.and_then(Option::take) {
            engines.push(ENGINE_WGPU);
            tracing::debug!(name = %twin.name, backend = %twin.backend, "wgpu adapter is an NVIDIA GPU");
        }
        adapters.push(Adapter {
            name: gpu.model,
            kind: "discrete-gpu",
            memory_bytes: gpu.memory_bytes,
            backend: "nvidia".into(),
            driver: gpu.driver,
            engines,
        });
    }
    let mut rest: Vec<WgpuAdapter> = wgpu.into_iter().flatten().collect();
    rest.sort_by_key(|w| w.kind);
    adapters.extend(rest.into_iter().map(|w| Adapter {
        name: w.name,
        kind: kind_name(w.kind),
        memory_bytes: 0,
        backend: w.backend,
        driver: w.driver,
        engines: vec![ENGINE_WGPU],
    }));
    adapters
}

/// The ONNX Runtime providers, when `ORT_DYLIB_PATH` names a library that loads.
fn ort_providers() -> Option<Vec<Provider>> {
    aiprod_models::runtime::ort_dylib_path().ok()?;
    match aiprod_models::runtime::registrable_providers() {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!("ONNX Runtime is configured but unusable: {e}");
            None
        }
    }
}

/// The NVIDIA GPUs the kernel driver lists under `dir`, with their memory from NVML.
pub fn nvidia_gpus(dir: &Path) -> Vec<NvidiaGpu> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let driver = std::fs::read_to_string(NVIDIA_VERSION_FILE)
        .map(|t| nvidia_driver_version(&t))
        .unwrap_or_default();
    let mut gpus: Vec<NvidiaGpu> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let bus_id = e.file_name().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(e.path().join("information")).ok()?;
            let info = parse_nvidia_information(&text);
            if info.excluded {
                return None;
            }
            Some(NvidiaGpu {
                model: info.model,
                bus_id,
                driver: driver.clone(),
                memory_bytes: 0,
            })
        })
        .collect();
    gpus.sort_by(|a, b| a.bus_id.cmp(&b.bus_id));
    if !gpus.is_empty() {
        match nvml::memory_by_bus_id(gpus.iter().map(|g| g.bus_id.as_str())) {
            Ok(memory) => {
                for (g, m) in gpus.iter_mut().zip(memory) {
                    g.memory_bytes = m.unwrap_or(0);
                }
            }
            Err(e) => tracing::info!("GPU memory unknown: {e}"),
        }
    }
    gpus
}

/// What /proc/driver/nvidia/gpus/<bus>/information says that matters here.
#[derive(Debug, PartialEq, Eq)]
pub struct NvidiaInformation {
    pub model: String,
    /// "GPU Excluded: Yes": the driver will not use it.
    pub excluded: bool,
}

pub fn parse_nvidia_information(text: &str) -> NvidiaInformation {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim().to_string())
        })
    };
    NvidiaInformation {
        model: field("Model").unwrap_or_else(|| "NVIDIA GPU".into()),
        excluded: field("GPU Excluded").is_some_and(|v| v.eq_ignore_ascii_case("yes")),
    }
}

/// "NVIDIA <version>" from /proc/driver/nvidia/version's first line
/// ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.159.04  <date>").
pub fn nvidia_driver_version(text: &str) -> String {
    let first = text.lines().next().unwrap_or_default();
    first
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()) && w.contains('.'))
        .map(|v| format!("NVIDIA {v}"))
        .unwrap_or_default()
}

fn meminfo_total_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn cpu_model() -> String {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    text.lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "cpu".into())
}

pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The few NVML calls that give a GPU's memory, through the driver's own library opened at run
/// time (absent on machines without the NVIDIA driver: then an error, never a crash).
mod nvml {
    use std::ffi::{c_char, c_int, c_void, CString};

    /// nvmlMemory_t.
    #[repr(C)]
    #[derive(Default)]
    struct Memory {
        total: u64,
        free: u64,
        used: u64,
    }

    type Device = *mut c_void;
    const NVML_SUCCESS: c_int = 0;

    /// Total memory of each GPU (by PCI bus id, in order); None where NVML does not know it.
    pub fn memory_by_bus_id<'a>(
        bus_ids: impl Iterator<Item = &'a str>,
    ) -> Result<Vec<Option<u64>>, String> {
        // SAFETY: loading the NVIDIA driver's library runs its initialisers, which have no
        // preconditions; the symbols below are declared with NVML's documented C signatures.
        unsafe {
            let lib = libloading::Library::new(super::NVML_LIBRARY)
                .map_err(|e| format!("{}: {e}", super::NVML_LIBRARY))?;
            let init = lib
                .get::<unsafe extern "C" fn() -> c_int>("nvmlInit_v2")
                .map_err(|e| e.to_string())?;
            let shutdown = lib
                .get::<unsafe extern "C" fn() -> c_int>("nvmlShutdown")
                .map_err(|e| e.to_string())?;
            let by_bus = lib
                .get::<unsafe extern "C" fn(*const c_char, *mut Device) -> c_int>(
                    "nvmlDeviceGetHandleByPciBusId_v2",
                )
                .map_err(|e| e.to_string())?;
            let memory_info = lib
                .get::<unsafe extern "C" fn(Device, *mut Memory) -> c_int>(
                    "nvmlDeviceGetMemoryInfo",
                )
                .map_err(|e| e.to_string())?;
            let rc = init();
            if rc != NVML_SUCCESS {
                return Err(format!("nvmlInit_v2 returned {rc}"));
            }
            let out = bus_ids
                .map(|bus| {
                    let bus = CString::new(bus).ok()?;
                    let mut device: Device = std::ptr::null_mut();
                    if by_bus(bus.as_ptr(), &mut device) != NVML_SUCCESS {
                        return None;
                    }
                    let mut m = Memory::default();
                    (memory_info(device, &mut m) == NVML_SUCCESS).then_some(m.total)
                })
                .collect();
            shutdown();
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wgpu(name: &str, kind: AdapterKind) -> WgpuAdapter {
        WgpuAdapter {
            name: name.into(),
            kind,
            backend: "vulkan".into(),
            driver: "d".into(),
        }
    }

    fn cpu() -> Cpu {
        Cpu {
            model: "AMD EPYC".into(),
            memory_bytes: 8 << 30,
        }
    }

    #[test]
    fn lavapipe_is_a_software_adapter_and_no_gpu() {
        let adapters = assemble(Found {
            cpu: cpu(),
            wgpu: vec![wgpu(
                "llvmpipe (LLVM 15.0.6, 256 bits)",
                AdapterKind::Software,
            )],
            nvidia: vec![],
            ort: Some(vec![Provider::Cpu]),
        });
        assert_eq!(adapters.len(), 2);
        assert_eq!(
            (adapters[0].kind, adapters[0].engines.clone()),
            ("cpu", vec![ENGINE_GSTREAMER, ENGINE_ORT_CPU])
        );
        assert_eq!(adapters[0].memory_bytes, 8 << 30);
        assert_eq!(
            (adapters[1].kind, adapters[1].engines.clone()),
            ("software", vec![ENGINE_WGPU])
        );
        let hw = Hardware { adapters };
        assert_eq!(hw.usable_gpus(), 0);
        assert!(!hw.gpu_with_any(&[ENGINE_WGPU, ENGINE_ORT_CUDA]));
        assert!(!hw.to_proto()[1].gpu);
    }

    #[test]
    fn an_nvidia_gpu_merges_with_its_wgpu_twin_and_gets_the_ort_providers() {
        let adapters = assemble(Found {
            cpu: cpu(),
            wgpu: vec![
                wgpu("llvmpipe", AdapterKind::Software),
                wgpu("NVIDIA H100 80GB HBM3", AdapterKind::Discrete),
            ],
            nvidia: vec![NvidiaGpu {
                model: "NVIDIA H100 80GB HBM3".into(),
                bus_id: "0000:00:06.0".into(),
                driver: "NVIDIA 580.159.04".into(),
                memory_bytes: 85_520_809_984,
            }],
            ort: Some(vec![Provider::TensorRt, Provider::Cuda, Provider::Cpu]),
        });
        let names: Vec<(&str, &str)> = adapters.iter().map(|a| (a.name.as_str(), a.kind)).collect();
        assert_eq!(
            names,
            vec![
                ("AMD EPYC", "cpu"),
                ("NVIDIA H100 80GB HBM3", "discrete-gpu"),
                ("llvmpipe", "software")
            ]
        );
        assert_eq!(
            adapters[1].engines,
            vec![ENGINE_ORT_TENSORRT, ENGINE_ORT_CUDA, ENGINE_WGPU]
        );
        assert_eq!(adapters[1].memory_bytes, 85_520_809_984);
        let hw = Hardware { adapters };
        assert_eq!(hw.usable_gpus(), 1);
        assert!(hw.gpu_with_any(&[ENGINE_ORT_CUDA]));
    }

    #[test]
    fn a_gpu_without_gpu_engines_is_listed_but_not_usable() {
        // onnxruntime (CPU build) and no Vulkan driver for the card.
        let hw = Hardware {
            adapters: assemble(Found {
                cpu: cpu(),
                wgpu: vec![],
                nvidia: vec![NvidiaGpu {
                    model: "NVIDIA A10G".into(),
                    ..Default::default()
                }],
                ort: Some(vec![Provider::Cpu]),
            }),
        };
        assert_eq!(hw.adapters.len(), 2);
        assert!(hw.adapters[1].engines.is_empty());
        assert_eq!(hw.usable_gpus(), 0);
        // A real GPU seen only through wgpu counts.
        let hw = Hardware {
            adapters: assemble(Found {
                cpu: cpu(),
                wgpu: vec![wgpu("AMD Radeon", AdapterKind::Discrete)],
                nvidia: vec![],
                ort: None,
            }),
        };
        assert_eq!(hw.adapters[0].engines, vec![ENGINE_GSTREAMER]);
        assert_eq!(hw.usable_gpus(), 1);
        assert!(hw.gpu_with_any(&[ENGINE_WGPU]));
        assert!(!hw.gpu_with_any(&[ENGINE_ORT_CUDA]));
    }

    #[test]
    fn nvidia_proc_files_parse() {
        let info = "Model: \t\t NVIDIA H100 80GB HBM3\nIRQ:   \t\t 41\nGPU UUID: \t GPU-4063ef52\n\
                    Bus Location: \t 0000:00:06.0\nDevice Minor: \t 0\nGPU Excluded:\t No\n";
        assert_eq!(
            parse_nvidia_information(info),
            NvidiaInformation {
                model: "NVIDIA H100 80GB HBM3".into(),
                excluded: false
            }
        );
        assert!(parse_nvidia_information("Model: X\nGPU Excluded: Yes\n").excluded);
        assert_eq!(
            nvidia_driver_version(
                "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.159.04  Tue Oct 7 2025\nGCC version: gcc 12\n"
            ),
            "NVIDIA 580.159.04"
        );
        // No driver: no GPUs, no error.
        assert!(nvidia_gpus(Path::new("/nonexistent/nvidia/gpus")).is_empty());
    }
}
