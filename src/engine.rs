//! Where teacher models run: `--device auto|cpu|gpu`.
//!
//! * `cpu`: burn-flex, burn's pure-Rust CPU backend (gemm with its AVX-512 kernels where the CPU has them, SIMD,
//!   rayon). Chosen by measurement over burn-ndarray (deprecated in 0.22), which a build with the `ndarray` cargo
//!   feature offers as `--device ndarray` for that comparison: AST-base forward 0.80 vs 0.37 segments/s on a 2-core
//!   AVX-512 Xeon (`dams bench ast --device ndarray`, release).
//! * `gpu`: a wgpu adapter (Vulkan / Metal / DX12) that is a real GPU; an error if there is none.
//! * `auto`: the GPU if one works, else the CPU with a one-line notice. A software adapter (llvmpipe, a "CPU"
//!   device type) counts as no GPU: it is far slower than burn-flex.
//! * `gpu:software`, or `DAMS_WGPU_ALLOW_SOFTWARE=1` with `gpu`/`auto`: a software Vulkan adapter (Mesa's lavapipe)
//!   is used as the GPU. It runs the same WGSL/SPIR-V kernels burn sends to a real card, on the CPU: slow, but it
//!   proves the GPU path's numbers on machines without a GPU (the parity tests do this in CI). The notice names the
//!   adapter.
//!
//! Probing never panics: no Vulkan loader, no adapter or a failing adapter is an error value (the probe also runs
//! under `catch_unwind`, in case a driver misbehaves), and the result is cached for the process because a wgpu
//! runtime can only be initialised once.

use std::str::FromStr;
use std::sync::OnceLock;

use burn::tensor::Device;

/// The user's choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    #[default]
    Auto,
    Cpu,
    Gpu,
    /// A wgpu adapter, a software one (lavapipe) included: `gpu:software`.
    GpuSoftware,
    /// burn-ndarray on the CPU (builds with the `ndarray` feature; for comparisons).
    Ndarray,
}

impl FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "gpu" | "wgpu" => Ok(DeviceChoice::Gpu),
            "gpu:software" | "software" => Ok(DeviceChoice::GpuSoftware),
            "ndarray" => Ok(DeviceChoice::Ndarray),
            other => Err(format!("unknown device '{other}' (auto, cpu, gpu or gpu:software)")),
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeviceChoice::Auto => "auto",
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Gpu => "gpu",
            DeviceChoice::GpuSoftware => "gpu:software",
            DeviceChoice::Ndarray => "ndarray",
        })
    }
}

/// A device models can run on.
#[derive(Debug, Clone)]
pub struct Engine {
    pub device: Device,
    /// `cpu (burn-flex)` or `gpu (NVIDIA ..., Vulkan)`.
    pub description: String,
    /// Whether this is the GPU.
    pub gpu: bool,
    /// One line for the user when `auto` fell back to the CPU.
    pub notice: Option<String>,
    /// On a GPU: the largest buffer one kernel may bind (`max_storage_buffer_binding_size`, capped by
    /// `max_buffer_size`), as the device was created with the adapter's limits. What a batch must fit.
    pub max_binding: Option<u64>,
}

impl Engine {
    pub fn cpu() -> Engine {
        Engine {
            device: Device::flex(),
            description: "cpu (burn-flex)".into(),
            gpu: false,
            notice: None,
            max_binding: None,
        }
    }

    /// The batch size for a model whose largest single buffer grows by `bytes_per_item` per batch item: `cpu` on
    /// the CPU; on a GPU the most items whose largest buffer fits one storage binding of this device (with 1/8
    /// headroom), at most `cap`, at least 1. `DAMS_GPU_BATCH` overrides it on a GPU (e.g. to trade memory for
    /// speed). wgpu does not report a device's free memory, so the binding limit is the bound dams can know; an
    /// out-of-memory error on a smaller card is reported by the job, and `--batch-size` lowers it.
    pub fn batch_for(&self, cpu: usize, bytes_per_item: u64, cap: usize) -> usize {
        if !self.gpu {
            return cpu.max(1);
        }
        if let Some(n) = std::env::var("DAMS_GPU_BATCH").ok().and_then(|v| v.trim().parse::<usize>().ok()) {
            return n.max(1);
        }
        let fit = match self.max_binding {
            Some(limit) if bytes_per_item > 0 => (limit - limit / 8) / bytes_per_item,
            _ => cap as u64,
        };
        (fit.min(cap as u64) as usize).max(1)
    }

    /// burn-ndarray, when this build has it.
    pub fn ndarray() -> Result<Engine, String> {
        #[cfg(feature = "ndarray")]
        {
            #[allow(deprecated)]
            let device = Device::ndarray();
            Ok(Engine { device, description: "cpu (burn-ndarray)".into(), gpu: false, notice: None, max_binding: None })
        }
        #[cfg(not(feature = "ndarray"))]
        Err("this build has no burn-ndarray backend (rebuild with `--features ndarray`; `cpu` is burn-flex)".into())
    }

    /// Select a device for `choice`.
    pub fn select(choice: DeviceChoice) -> Result<Engine, String> {
        let allow_software = choice == DeviceChoice::GpuSoftware || software_allowed_by_env();
        let gpu = match probe_gpu() {
            Ok(p) if p.software && !allow_software => Err(format!(
                "the only adapter is the software renderer {} (use it with --device gpu:software or \
                 DAMS_WGPU_ALLOW_SOFTWARE=1: correct but slow)",
                p.adapter
            )),
            Ok(p) => Ok(p.engine.clone()),
            Err(e) => Err(e.clone()),
        };
        match choice {
            DeviceChoice::Cpu => Ok(Engine::cpu()),
            DeviceChoice::Ndarray => Engine::ndarray(),
            DeviceChoice::Gpu | DeviceChoice::GpuSoftware => {
                gpu.map_err(|e| format!("no usable GPU: {e} (use --device cpu)"))
            }
            DeviceChoice::Auto => Ok(match gpu {
                Ok(g) => g,
                Err(e) => Engine { notice: Some(format!("no usable GPU ({e}); running on the CPU")), ..Engine::cpu() },
            }),
        }
    }
}

/// `DAMS_WGPU_ALLOW_SOFTWARE=1`: a software adapter counts as a GPU for `gpu` and `auto` too.
fn software_allowed_by_env() -> bool {
    std::env::var("DAMS_WGPU_ALLOW_SOFTWARE").is_ok_and(|v| matches!(v.trim(), "1" | "true" | "yes"))
}

/// What the one wgpu probe of the process found.
struct Probe {
    engine: Engine,
    adapter: String,
    software: bool,
}

/// Whether `device` is a plain CPU device (burn-flex or burn-ndarray, without autodiff), whose tensors live in host
/// memory: code may then work on their data in place.
pub fn is_host_inference_device(device: &Device) -> bool {
    // Device equality ignores autodiff.
    if device.is_autodiff() {
        return false;
    }
    if *device == Device::flex() {
        return true;
    }
    #[cfg(feature = "ndarray")]
    {
        #[allow(deprecated)]
        let ndarray = Device::ndarray();
        if *device == ndarray {
            return true;
        }
    }
    false
}

/// The storage-binding limit of the GPU the probe found (see [`Engine::max_binding`]).
pub fn probed_max_binding() -> Option<u64> {
    probe_gpu().as_ref().ok().and_then(|p| p.engine.max_binding)
}

/// The wgpu probe, once per process.
fn probe_gpu() -> &'static Result<Probe, String> {
    static PROBE: OnceLock<Result<Probe, String>> = OnceLock::new();
    PROBE.get_or_init(|| {
        if std::env::var_os("DAMS_NO_GPU").is_some() {
            return Err("DAMS_NO_GPU is set".into());
        }
        let _quiet = QuietStderr::new();
        match std::panic::catch_unwind(probe_wgpu) {
            Ok(r) => r,
            Err(_) => Err("the GPU driver failed while probing".into()),
        }
    })
}

/// Silences fd 2 while it lives: GPU drivers and the Vulkan loader print to stderr while probing (e.g.
/// "XDG_RUNTIME_DIR is invalid" on a headless machine), which would break the one-line notice and a TUI.
struct QuietStderr {
    #[cfg(unix)]
    saved: Option<i32>,
}

impl QuietStderr {
    fn new() -> QuietStderr {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: plain fd calls on valid descriptors; the saved copy is restored and closed in `drop`.
            let saved = unsafe {
                let null = std::fs::OpenOptions::new().write(true).open("/dev/null").ok();
                match null {
                    Some(n) => {
                        let saved = libc::dup(2);
                        if saved >= 0 && libc::dup2(n.as_raw_fd(), 2) >= 0 {
                            Some(saved)
                        } else {
                            if saved >= 0 {
                                libc::close(saved);
                            }
                            None
                        }
                    }
                    None => None,
                }
            };
            QuietStderr { saved }
        }
        #[cfg(not(unix))]
        QuietStderr {}
    }
}

impl Drop for QuietStderr {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(fd) = self.saved.take() {
            // SAFETY: `fd` is the descriptor saved in `new`.
            unsafe {
                libc::dup2(fd, 2);
                libc::close(fd);
            }
        }
    }
}

fn probe_wgpu() -> Result<Probe, String> {
    use burn::tensor::wgpu::WgpuBackend;
    use burn::tensor::wgpu::wgpu::DeviceType;
    // Ask for the platform's native API explicitly: `Auto` also tries OpenGL, which finds software renderers
    // (llvmpipe) and prints to stderr on headless machines.
    let api = if cfg!(target_os = "macos") {
        WgpuBackend::Metal
    } else if cfg!(target_os = "windows") {
        WgpuBackend::Dx12
    } else {
        WgpuBackend::Vulkan
    };
    let (device, setup) =
        Device::wgpu_options().graphics_api(api).init_with_setup().map_err(|e| first_line(&e.to_string()))?;
    let info = setup.adapter.get_info();
    let software = matches!(info.device_type, DeviceType::Cpu);
    let adapter = format!("{} ({:?}{})", info.name, info.backend, if software { ", software" } else { "" });
    let notice = software.then(|| format!("running on the software adapter {adapter}: correct but slow"));
    let limits = setup.device.limits();
    let max_binding = Some((limits.max_storage_buffer_binding_size as u64).min(limits.max_buffer_size));
    Ok(Probe {
        engine: Engine { device, description: format!("gpu ({adapter})"), gpu: true, notice, max_binding },
        adapter,
        software,
    })
}

fn first_line(s: &str) -> String {
    let l = s.lines().next().unwrap_or("").trim();
    if l.len() > 200 { format!("{}…", &l[..l.floor_char_boundary(200)]) } else { l.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_from_the_binding_limit() {
        let cpu = Engine::cpu();
        assert_eq!(cpu.batch_for(4, 1 << 30, 64), 4);
        let gpu = |limit: u64| Engine { gpu: true, max_binding: Some(limit), ..Engine::cpu() };
        // 128 MiB (lavapipe): AST-base's 12 × 1214² f32 attention scores (70.7 MB) fit once.
        assert_eq!(gpu(128 << 20).batch_for(4, 12 * 1214 * 1214 * 4, 64), 1);
        // 4 GiB − 1 (a desktop NVIDIA card): 53 of them, under the cap.
        assert_eq!(gpu(u32::MAX as u64).batch_for(4, 12 * 1214 * 1214 * 4, 64), 53);
        assert_eq!(gpu(u64::MAX).batch_for(4, 1, 64), 64);
        assert_eq!(gpu(10).batch_for(4, 1 << 20, 64), 1);
        assert_eq!(Engine { gpu: true, max_binding: None, ..Engine::cpu() }.batch_for(4, 1, 16), 16);
    }

    #[test]
    fn parse_choices() {
        assert_eq!("auto".parse::<DeviceChoice>(), Ok(DeviceChoice::Auto));
        assert_eq!("CPU".parse::<DeviceChoice>(), Ok(DeviceChoice::Cpu));
        assert_eq!("gpu".parse::<DeviceChoice>(), Ok(DeviceChoice::Gpu));
        assert_eq!("ndarray".parse::<DeviceChoice>(), Ok(DeviceChoice::Ndarray));
        assert_eq!(Engine::select(DeviceChoice::Ndarray).is_ok(), cfg!(feature = "ndarray"));
        assert!("tpu".parse::<DeviceChoice>().unwrap_err().contains("tpu"));
    }

    #[test]
    fn auto_always_gives_a_device_and_gpu_never_panics() {
        let e = Engine::select(DeviceChoice::Auto).unwrap();
        if !e.gpu {
            assert!(e.notice.as_deref().is_some_and(|n| n.contains("CPU") && !n.contains('\n')), "{:?}", e.notice);
        }
        match Engine::select(DeviceChoice::Gpu) {
            Ok(g) => assert!(g.gpu),
            Err(m) => assert!(m.contains("--device cpu"), "{m}"),
        }
        assert!(!Engine::select(DeviceChoice::Cpu).unwrap().gpu);
        assert!(is_host_inference_device(&Engine::cpu().device));
        assert!(!is_host_inference_device(&Engine::cpu().device.autodiff()));
        if let Ok(g) = Engine::select(DeviceChoice::Gpu) {
            assert!(!is_host_inference_device(&g.device));
        }
    }
}
