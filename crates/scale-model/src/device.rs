//! Run-time device selection. burn 0.22 has no backend type parameter: a tensor's backend is the one of
//! the [`Device`] it lives on, so the model code takes any `Device` and this module only maps a name
//! (`--device cpu|wgpu|cuda`) to one. `cpu` (burn's `flex` backend) is always compiled; `wgpu` and `cuda`
//! exist only when scale is built with the cargo feature of the same name, and asking for one that is
//! not compiled in is a named error, not a panic.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

use crate::ModelError;

/// A compute backend, chosen at run time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    /// burn's `flex` CPU backend (always available).
    #[default]
    Cpu,
    /// The default adapter of burn's wgpu backend (Vulkan on Linux, Metal on macOS, DX12 on Windows).
    /// `CUBECL_WGPU_DEFAULT_DEVICE` (e.g. `DiscreteGpu(1)`, `Cpu`) overrides which adapter.
    Wgpu,
    /// CUDA device 0, through burn's CUDA backend.
    Cuda,
}

impl DeviceChoice {
    /// Every choice, in the order `--help` lists them.
    pub const ALL: [DeviceChoice; 3] = [DeviceChoice::Cpu, DeviceChoice::Wgpu, DeviceChoice::Cuda];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Wgpu => "wgpu",
            DeviceChoice::Cuda => "cuda",
        }
    }

    /// Whether this binary was built with the backend (its cargo feature).
    pub fn is_compiled(self) -> bool {
        match self {
            DeviceChoice::Cpu => true,
            DeviceChoice::Wgpu => cfg!(feature = "wgpu"),
            DeviceChoice::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// The burn device (without autodiff; the trainer adds it). Fails when the backend is not compiled
    /// in, or, for wgpu, when no adapter is found. A CUDA device is opened lazily by burn: a machine
    /// without a usable driver fails at the first tensor operation.
    pub fn device(self) -> Result<Device, ModelError> {
        if !self.is_compiled() {
            return Err(ModelError::Device(format!(
                "`--device {0}`: this binary was built without the `{0}` cargo feature; rebuild with \
                 `cargo build --release --features {0}` (see README, \"Backends\")",
                self.name()
            )));
        }
        match self {
            DeviceChoice::Cpu => Ok(Device::flex()),
            DeviceChoice::Wgpu => wgpu_device(),
            DeviceChoice::Cuda => cuda_device(),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" | "flex" => Ok(DeviceChoice::Cpu),
            "wgpu" | "vulkan" => Ok(DeviceChoice::Wgpu),
            "cuda" => Ok(DeviceChoice::Cuda),
            _ => Err(format!("unknown device {s:?} (expected cpu, wgpu or cuda)")),
        }
    }
}

/// Whether a wgpu adapter (a Vulkan/Metal/DX12 driver, software ones such as lavapipe included) is
/// present. Always false without the `wgpu` feature.
pub fn wgpu_adapter_available() -> bool {
    #[cfg(feature = "wgpu")]
    {
        !Device::enumerate(burn::tensor::DeviceType::Wgpu).is_empty()
    }
    #[cfg(not(feature = "wgpu"))]
    {
        false
    }
}

#[cfg(feature = "wgpu")]
fn wgpu_device() -> Result<Device, ModelError> {
    if !wgpu_adapter_available() {
        return Err(ModelError::Device(
            "`--device wgpu`: no wgpu adapter found (no Vulkan, Metal or DX12 driver; on Debian/Ubuntu the \
             software Vulkan driver is the `mesa-vulkan-drivers` package)"
                .into(),
        ));
    }
    Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_device() -> Result<Device, ModelError> {
    unreachable!("checked by is_compiled")
}

#[cfg(feature = "cuda")]
fn cuda_device() -> Result<Device, ModelError> {
    Ok(Device::cuda(0))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device() -> Result<Device, ModelError> {
    unreachable!("checked by is_compiled")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in DeviceChoice::ALL {
            assert_eq!(d.name().parse::<DeviceChoice>().unwrap(), d);
        }
        assert!("tpu".parse::<DeviceChoice>().is_err());
    }

    #[test]
    fn cpu_is_always_there_and_missing_features_are_named() {
        assert!(DeviceChoice::Cpu.device().is_ok());
        for d in [DeviceChoice::Wgpu, DeviceChoice::Cuda] {
            if !d.is_compiled() {
                let msg = d.device().unwrap_err().to_string();
                assert!(msg.contains("built without") && msg.contains(d.name()), "{msg}");
            }
        }
    }
}
