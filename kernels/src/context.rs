//! The device context: adapter choice, the pipeline cache, the buffer pool, uploads, downloads and
//! batched dispatches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::error::{KernelError, Result};

/// How long a download waits for the device before giving up (a hung driver must not hang us).
const DEVICE_WAIT: Duration = Duration::from_secs(120);

/// What kind of adapter it is, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AdapterKind {
    Discrete,
    Integrated,
    Virtual,
    Software,
    Other,
}

impl AdapterKind {
    fn of(device_type: wgpu::DeviceType) -> Self {
        match device_type {
            wgpu::DeviceType::DiscreteGpu => Self::Discrete,
            wgpu::DeviceType::IntegratedGpu => Self::Integrated,
            wgpu::DeviceType::VirtualGpu => Self::Virtual,
            wgpu::DeviceType::Cpu => Self::Software,
            wgpu::DeviceType::Other => Self::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Discrete => "discrete",
            Self::Integrated => "integrated",
            Self::Virtual => "virtual",
            Self::Software => "software",
            Self::Other => "other",
        }
    }

    /// A real GPU (not a CPU rasteriser such as lavapipe).
    pub fn is_gpu(self) -> bool {
        matches!(self, Self::Discrete | Self::Integrated | Self::Virtual)
    }
}

/// One adapter as an operator (and `GetNodeStatus`) sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterSummary {
    pub name: String,
    pub kind: AdapterKind,
    /// "vulkan", "metal", "dx12", ...
    pub backend: String,
    pub driver: String,
    pub shader_f16: bool,
    /// Largest storage buffer binding the adapter allows.
    pub max_buffer_bytes: u64,
}

impl AdapterSummary {
    fn of(adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        let limits = adapter.limits();
        Self {
            name: info.name,
            kind: AdapterKind::of(info.device_type),
            backend: info.backend.to_str().to_string(),
            driver: if info.driver_info.is_empty() {
                info.driver
            } else {
                format!("{} {}", info.driver, info.driver_info)
            },
            shader_f16: adapter.features().contains(wgpu::Features::SHADER_F16),
            max_buffer_bytes: limits
                .max_storage_buffer_binding_size
                .min(limits.max_buffer_size),
        }
    }
}

impl std::fmt::Display for AdapterSummary {
    /// `NAME (kind, backend, driver)`: how benches and logs name the adapter behind a figure.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}, {}, {})",
            self.name,
            self.kind.as_str(),
            self.backend,
            self.driver
        )
    }
}

/// Which adapter to open.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AdapterChoice {
    /// Discrete > integrated > virtual > software.
    #[default]
    Auto,
    /// Only a real GPU; software adapters are refused.
    GpuOnly,
    /// Only a software adapter (lavapipe): for tests.
    Software,
    /// The first adapter whose name contains this text (case-insensitive).
    NameContains(String),
}

impl std::str::FromStr for AdapterChoice {
    type Err = KernelError;

    /// `auto`, `gpu`, `software` (or `cpu`), or `name:<text>`.
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim();
        match t.to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(Self::Auto),
            "gpu" => Ok(Self::GpuOnly),
            "software" | "cpu" | "lavapipe" => Ok(Self::Software),
            _ => match t.strip_prefix("name:") {
                Some(name) if !name.is_empty() => Ok(Self::NameContains(name.to_string())),
                _ => Err(KernelError::InvalidInput(format!(
                    "adapter choice {t:?}: expected auto, gpu, software or name:<text>"
                ))),
            },
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ContextOptions {
    pub adapter: AdapterChoice,
    /// Use fp16 storage where the adapter has `shader-f16` (kernels that support it).
    pub allow_f16: bool,
}

impl ContextOptions {
    /// Defaults overridden by `AIPROD_WGPU_ADAPTER` (see [`AdapterChoice`]) and `AIPROD_WGPU_F16`
    /// (`0` disables fp16).
    pub fn from_env() -> Result<Self> {
        let adapter = match std::env::var("AIPROD_WGPU_ADAPTER") {
            Ok(v) => v.parse()?,
            Err(_) => AdapterChoice::Auto,
        };
        let allow_f16 = std::env::var("AIPROD_WGPU_F16").map_or(true, |v| v != "0");
        Ok(Self { adapter, allow_f16 })
    }
}

fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

/// Every adapter wgpu finds, best first. Empty when there is none (no driver, no lavapipe).
pub fn adapters() -> Vec<AdapterSummary> {
    let instance = instance();
    let mut found: Vec<AdapterSummary> =
        pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
            .iter()
            .map(AdapterSummary::of)
            .collect();
    found.sort_by_key(|a| a.kind);
    found
}

/// Whether this machine has a real GPU adapter (not a software one); enumerated once per process
/// without opening a device, so callers that prefer the CPU on software adapters pay little.
pub fn gpu_present() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    *PRESENT.get_or_init(|| adapters().iter().any(|a| a.kind.is_gpu()))
}

fn choose(adapters: Vec<wgpu::Adapter>, choice: &AdapterChoice) -> Result<wgpu::Adapter> {
    let names: Vec<String> = adapters
        .iter()
        .map(|a| {
            let s = AdapterSummary::of(a);
            format!("{} ({}, {})", s.name, s.kind.as_str(), s.backend)
        })
        .collect();
    let found = if names.is_empty() {
        "none found (no Vulkan/Metal/DX12 driver; install mesa-vulkan-drivers for lavapipe)"
            .to_string()
    } else {
        format!("found {}", names.join(", "))
    };
    let mut candidates: Vec<(AdapterKind, wgpu::Adapter)> = adapters
        .into_iter()
        .map(|a| (AdapterKind::of(a.get_info().device_type), a))
        .filter(|(kind, a)| match choice {
            AdapterChoice::Auto => true,
            AdapterChoice::GpuOnly => kind.is_gpu(),
            AdapterChoice::Software => *kind == AdapterKind::Software,
            AdapterChoice::NameContains(text) => a
                .get_info()
                .name
                .to_ascii_lowercase()
                .contains(&text.to_ascii_lowercase()),
        })
        .collect();
    // Stable: among equals, the driver's order (Vulkan first on Linux).
    candidates.sort_by_key(|(kind, _)| *kind);
    candidates
        .into_iter()
        .next()
        .map(|(_, a)| a)
        .ok_or_else(|| KernelError::NoAdapter(format!("none matches {choice:?}; {found}")))
}

/// A storage buffer from the pool; goes back to the pool when dropped.
pub struct PooledBuffer {
    buffer: Option<wgpu::Buffer>,
    len_bytes: u64,
    pool: Arc<Mutex<Pool>>,
}

impl PooledBuffer {
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("present until drop")
    }

    /// The length asked for (the buffer itself may be larger).
    pub fn len_bytes(&self) -> u64 {
        self.len_bytes
    }

    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: self.buffer(),
            offset: 0,
            size: wgpu::BufferSize::new(self.len_bytes.max(4).next_multiple_of(4)),
        })
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let (Some(buffer), Ok(mut pool)) = (self.buffer.take(), self.pool.lock()) {
            pool.give(buffer);
        }
    }
}

/// Free buffers by (capacity, usage). Capacities are powers of two (≥ 256 B), so a frame of a
/// slightly different size reuses a buffer; the pool keeps at most `MAX_FREE_BYTES` idle.
#[derive(Default)]
struct Pool {
    free: HashMap<(u64, u32), Vec<wgpu::Buffer>>,
    free_bytes: u64,
}

const MAX_FREE_BYTES: u64 = 1 << 30;

impl Pool {
    fn take(&mut self, capacity: u64, usage: wgpu::BufferUsages) -> Option<wgpu::Buffer> {
        let b = self.free.get_mut(&(capacity, usage.bits()))?.pop()?;
        self.free_bytes -= capacity;
        Some(b)
    }

    fn give(&mut self, buffer: wgpu::Buffer) {
        let capacity = buffer.size();
        if self.free_bytes + capacity > MAX_FREE_BYTES {
            return; // dropped: freed by wgpu
        }
        self.free_bytes += capacity;
        self.free
            .entry((capacity, buffer.usage().bits()))
            .or_default()
            .push(buffer);
    }
}

/// The device context; build once ([`Context::shared`]) and reuse.
pub struct Context {
    adapter: AdapterSummary,
    device: wgpu::Device,
    queue: wgpu::Queue,
    f16: bool,
    limits: wgpu::Limits,
    pipelines: Mutex<HashMap<String, Arc<wgpu::ComputePipeline>>>,
    pool: Arc<Mutex<Pool>>,
    errors: Arc<Mutex<Vec<String>>>,
}

static SHARED: OnceLock<std::result::Result<Arc<Context>, String>> = OnceLock::new();

pub const STORAGE_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl Context {
    /// The process-wide context from [`ContextOptions::from_env`]; the first call opens the device,
    /// later calls share it (and its pipeline cache). A failure is remembered and repeated.
    pub fn shared() -> Result<Arc<Context>> {
        SHARED
            .get_or_init(|| {
                ContextOptions::from_env()
                    .and_then(|o| Context::new(&o))
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(KernelError::NoAdapter)
    }

    pub fn new(options: &ContextOptions) -> Result<Self> {
        let instance = instance();
        let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        let adapter = choose(adapters, &options.adapter)?;
        let summary = AdapterSummary::of(&adapter);
        let f16 = options.allow_f16 && summary.shader_f16;
        let mut features = wgpu::Features::empty();
        if f16 {
            features |= wgpu::Features::SHADER_F16;
        }
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("aiprod-kernels"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| KernelError::DeviceRequest {
            adapter: summary.name.clone(),
            reason: e.to_string(),
        })?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        let lost = errors.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut v) = lost.lock() {
                v.push(format!("device lost ({reason:?}): {message}"));
            }
        });
        tracing::info!(
            adapter = %summary.name,
            kind = summary.kind.as_str(),
            backend = %summary.backend,
            f16,
            "wgpu context ready"
        );
        Ok(Self {
            adapter: summary,
            device,
            queue,
            f16,
            limits,
            pipelines: Mutex::new(HashMap::new()),
            pool: Arc::new(Mutex::new(Pool::default())),
            errors,
        })
    }

    pub fn adapter(&self) -> &AdapterSummary {
        &self.adapter
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// fp16 storage is available and allowed.
    pub fn has_f16(&self) -> bool {
        self.f16
    }

    /// Errors the device reported since the last call, as one error.
    pub fn check(&self) -> Result<()> {
        let mut errors = self
            .errors
            .lock()
            .map_err(|_| KernelError::Device("error log poisoned".into()))?;
        if errors.is_empty() {
            return Ok(());
        }
        let joined = errors.join("; ");
        errors.clear();
        Err(KernelError::Device(joined))
    }

    /// The compute pipeline for `entry` in `source`, compiled on first use and cached under `key`
    /// (include specialisations such as the precision in the key). The layout is derived from the
    /// shader (`get_bind_group_layout(0)`).
    pub fn pipeline(
        &self,
        key: &str,
        source: &str,
        entry: &str,
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        let mut cache = self
            .pipelines
            .lock()
            .map_err(|_| KernelError::Device("pipeline cache poisoned".into()))?;
        if let Some(p) = cache.get(key) {
            return Ok(p.clone());
        }
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(key),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(key),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            });
        self.check()
            .map_err(|e| KernelError::Device(format!("compiling {key}: {e}")))?;
        let pipeline = Arc::new(pipeline);
        cache.insert(key.to_string(), pipeline.clone());
        Ok(pipeline)
    }

    /// A storage buffer of at least `len_bytes` from the pool (contents undefined). Refused before
    /// allocating when larger than the adapter allows.
    pub fn storage(&self, what: &str, len_bytes: u64) -> Result<PooledBuffer> {
        self.pooled(what, len_bytes, STORAGE_USAGE)
    }

    fn pooled(
        &self,
        what: &str,
        len_bytes: u64,
        usage: wgpu::BufferUsages,
    ) -> Result<PooledBuffer> {
        let limit = self
            .limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size);
        if len_bytes > limit {
            return Err(KernelError::TooLarge {
                what: what.to_string(),
                needed_bytes: len_bytes,
                limit_bytes: limit,
            });
        }
        let capacity = len_bytes.max(256).next_power_of_two().min(limit.max(256));
        let capacity = capacity.max(len_bytes.next_multiple_of(4));
        let reused = self
            .pool
            .lock()
            .map_err(|_| KernelError::Device("buffer pool poisoned".into()))?
            .take(capacity, usage);
        let buffer = match reused {
            Some(b) => b,
            None => self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(what),
                size: capacity,
                usage,
                mapped_at_creation: false,
            }),
        };
        Ok(PooledBuffer {
            buffer: Some(buffer),
            len_bytes,
            pool: self.pool.clone(),
        })
    }

    /// Uploads `data` into a pooled storage buffer.
    pub fn upload<T: bytemuck::Pod>(&self, what: &str, data: &[T]) -> Result<PooledBuffer> {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let buf = self.storage(what, bytes.len() as u64)?;
        self.write(&buf, bytes);
        Ok(buf)
    }

    /// Writes bytes at the start of `buf` (padded to 4 bytes).
    pub fn write(&self, buf: &PooledBuffer, bytes: &[u8]) {
        if bytes.len().is_multiple_of(4) {
            self.queue.write_buffer(buf.buffer(), 0, bytes);
        } else {
            let mut padded = bytes.to_vec();
            padded.resize(bytes.len().next_multiple_of(4), 0);
            self.queue.write_buffer(buf.buffer(), 0, &padded);
        }
    }

    /// A uniform buffer holding `params` (not pooled: small).
    pub fn uniform<T: bytemuck::Pod>(&self, params: &T) -> wgpu::Buffer {
        let bytes = bytemuck::bytes_of(params);
        let size = (bytes.len() as u64).next_multiple_of(16).max(16);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("params"),
            size,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut padded = bytes.to_vec();
        padded.resize(size as usize, 0);
        self.queue.write_buffer(&buffer, 0, &padded);
        buffer
    }

    /// Starts a batch of dispatches recorded into one command buffer.
    pub fn batch(&self) -> Batch<'_> {
        Batch {
            ctx: self,
            encoder: self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("batch"),
                }),
        }
    }

    /// Copies the first `len_bytes` of `buf` back to the host (waits for all work before it).
    pub fn download(&self, buf: &PooledBuffer, len_bytes: u64) -> Result<Vec<u8>> {
        if len_bytes > buf.len_bytes() {
            return Err(KernelError::InvalidInput(format!(
                "download of {len_bytes} bytes from a {}-byte buffer",
                buf.len_bytes()
            )));
        }
        let padded = len_bytes.next_multiple_of(4).max(4);
        let staging = self.pooled(
            "staging",
            padded,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        )?;
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("download"),
            });
        encoder.copy_buffer_to_buffer(buf.buffer(), 0, staging.buffer(), 0, padded);
        self.queue.submit([encoder.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging
            .buffer()
            .map_async(wgpu::MapMode::Read, 0..padded, move |r| {
                let _ = tx.send(r);
            });
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(DEVICE_WAIT),
            })
            .map_err(|e| KernelError::Device(format!("waiting for the device: {e}")))?;
        rx.recv_timeout(DEVICE_WAIT)
            .map_err(|_| KernelError::Device("buffer map never completed".into()))?
            .map_err(|e| KernelError::Device(format!("mapping a buffer for download: {e}")))?;
        self.check()?;
        let out = {
            let view = staging
                .buffer()
                .get_mapped_range(0..padded)
                .map_err(|e| KernelError::Device(format!("reading a mapped buffer: {e}")))?;
            view[..len_bytes as usize].to_vec()
        };
        staging.buffer().unmap();
        Ok(out)
    }

    /// [`Context::download`] as `T`s (`count` of them).
    pub fn download_as<T: bytemuck::Pod>(
        &self,
        buf: &PooledBuffer,
        count: usize,
    ) -> Result<Vec<T>> {
        let bytes = self.download(buf, (count * std::mem::size_of::<T>()) as u64)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Waits until the device has finished all submitted work.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(DEVICE_WAIT),
            })
            .map_err(|e| KernelError::Device(format!("waiting for the device: {e}")))?;
        self.check()
    }

    /// Splits `count` workgroups into a 2-D grid within the adapter's per-dimension limit; shaders
    /// recover the linear index as `id.x + id.y * grid_x * workgroup_size` (see `linear_index`
    /// in the shaders).
    pub fn grid(&self, count: u32) -> (u32, u32) {
        let max = self.limits.max_compute_workgroups_per_dimension.max(1);
        if count <= max {
            (count.max(1), 1)
        } else {
            (max, count.div_ceil(max))
        }
    }
}

/// Dispatches recorded into one command buffer; frames stay on the device between them.
pub struct Batch<'a> {
    ctx: &'a Context,
    encoder: wgpu::CommandEncoder,
}

impl Batch<'_> {
    /// One dispatch: `bindings[i]` is bound at `@group(0) @binding(i)`.
    pub fn dispatch(
        &mut self,
        pipeline: &wgpu::ComputePipeline,
        bindings: &[wgpu::BindingResource<'_>],
        workgroups: (u32, u32, u32),
    ) {
        let layout = pipeline.get_bind_group_layout(0);
        let entries: Vec<wgpu::BindGroupEntry<'_>> = bindings
            .iter()
            .enumerate()
            .map(|(i, r)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: r.clone(),
            })
            .collect();
        let group = self
            .ctx
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &layout,
                entries: &entries,
            });
        let mut pass = self
            .encoder
            .begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: None,
            });
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &group, &[]);
        pass.dispatch_workgroups(workgroups.0, workgroups.1, workgroups.2);
    }

    /// Copies `len_bytes` from one buffer to another inside the batch.
    pub fn copy(&mut self, from: &PooledBuffer, to: &PooledBuffer, len_bytes: u64) {
        self.encoder.copy_buffer_to_buffer(
            from.buffer(),
            0,
            to.buffer(),
            0,
            len_bytes.next_multiple_of(4),
        );
    }

    /// Submits the batch (does not wait; a download or [`Context::wait`] does).
    pub fn submit(self) -> Result<()> {
        self.ctx.queue.submit([self.encoder.finish()]);
        self.ctx.check()
    }
}

/// The shared test context: lavapipe or a real adapter, or `None` with the reason printed so the
/// test can report itself skipped (never passed) where no adapter exists. With
/// `AIPROD_REQUIRE_WGPU=1` (CI, which installs lavapipe) a missing adapter fails the test instead.
pub fn test_context() -> Option<Arc<Context>> {
    match Context::shared() {
        Ok(c) => Some(c),
        Err(e) if std::env::var("AIPROD_REQUIRE_WGPU").is_ok_and(|v| v == "1") => {
            panic!("AIPROD_REQUIRE_WGPU=1 but no wgpu adapter: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: no wgpu adapter on this machine ({e})");
            None
        }
    }
}

/// The benches' context: the shared one, or `None` after printing `SKIPPED:` (a bench on a
/// machine without an adapter reports that and exits cleanly).
pub fn bench_context() -> Option<Arc<Context>> {
    match Context::shared() {
        Ok(c) => Some(c),
        Err(e) => {
            println!("SKIPPED: no wgpu adapter ({e})");
            None
        }
    }
}

/// Deterministic test and bench data: `n` values of xorshift32 in [-1, 1).
pub fn random_f32(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.max(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapter_choice_parses() {
        assert_eq!(
            "auto".parse::<AdapterChoice>().unwrap(),
            AdapterChoice::Auto
        );
        assert_eq!(
            "GPU".parse::<AdapterChoice>().unwrap(),
            AdapterChoice::GpuOnly
        );
        assert_eq!(
            "software".parse::<AdapterChoice>().unwrap(),
            AdapterChoice::Software
        );
        assert_eq!(
            "name:H100".parse::<AdapterChoice>().unwrap(),
            AdapterChoice::NameContains("H100".into())
        );
        let e = "fastest".parse::<AdapterChoice>().unwrap_err().to_string();
        assert!(e.contains("\"fastest\""), "{e}");
    }

    #[test]
    fn kinds_rank_gpu_first() {
        assert!(AdapterKind::Discrete < AdapterKind::Integrated);
        assert!(AdapterKind::Integrated < AdapterKind::Software);
        assert!(!AdapterKind::Software.is_gpu());
    }
}
