//! Which burn device the models run on. burn 0.23 has no backend type parameter: a tensor's
//! [`Device`] says where it lives, and `device.autodiff()` makes the tensors created on it
//! record gradients. The cargo feature picks the device here, so the rest of the code is the
//! same on every backend.

use burn::tensor::Device;

/// The device inference runs on: CUDA GPU 0 when built with the `cuda` feature, else the
/// first wgpu adapter with `wgpu`, else burn's pure-Rust CPU backend `Flex` (the default
/// feature). With several features, the first of that list wins.
pub fn device() -> Device {
    #[cfg(feature = "cuda")]
    return Device::cuda(0);
    #[cfg(all(feature = "wgpu", not(feature = "cuda")))]
    return Device::wgpu(Default::default());
    #[cfg(all(feature = "flex", not(any(feature = "cuda", feature = "wgpu"))))]
    return Device::flex();
    #[cfg(not(any(feature = "flex", feature = "cuda", feature = "wgpu")))]
    compile_error!("iotids-model needs a backend feature: flex (default), cuda or wgpu");
}

/// The same device with gradients: modules initialised on it are trainable (burn's former
/// `Autodiff<B>` backend). `module.valid()` returns a copy on the plain [`device`].
pub fn training_device() -> Device {
    device().autodiff()
}
