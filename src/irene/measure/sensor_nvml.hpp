// `nvml`: NVIDIA's total energy counter (nvmlDeviceGetTotalEnergyConsumption, millijoules since
// the driver loaded, Volta or newer), all GPUs summed. libnvidia-ml is loaded at run time with
// dlopen, so irene builds and runs without any NVIDIA package.
#pragma once

#include <memory>
#include <string>

#include "irene/measure/sensor.hpp"

namespace irene::measure {

/// The NVML entry points irene uses (NVML's C signatures; nvmlReturn_t is int, 0 = success,
/// nvmlDevice_t is an opaque pointer). make_nvml_sensor fills it from the library; tests
/// provide fakes.
struct NvmlApi {
  int (*init)() = nullptr;                                             ///< nvmlInit_v2
  int (*shutdown)() = nullptr;                                         ///< nvmlShutdown
  const char* (*error_string)(int) = nullptr;                          ///< nvmlErrorString
  int (*device_count)(unsigned*) = nullptr;                            ///< nvmlDeviceGetCount_v2
  int (*device_handle)(unsigned, void**) = nullptr;                    ///< nvmlDeviceGetHandleByIndex_v2
  int (*device_name)(void*, char*, unsigned) = nullptr;                ///< nvmlDeviceGetName
  int (*total_energy_mj)(void*, unsigned long long*) = nullptr;        ///< nvmlDeviceGetTotalEnergyConsumption
  int (*driver_version)(char*, unsigned) = nullptr;                    ///< nvmlSystemGetDriverVersion (may be null)
};

/// NVML return codes irene distinguishes.
inline constexpr int kNvmlSuccess = 0;
inline constexpr int kNvmlErrorNotSupported = 3;
inline constexpr int kNvmlErrorNoPermission = 4;
inline constexpr int kNvmlErrorDriverNotLoaded = 9;
inline constexpr int kNvmlErrorLibraryNotFound = 12;

/// An nvml sensor over an already loaded API (the library handle, if any, is owned by the
/// caller or by `keep_alive`). Throws SensorError: init failing (driver not loaded -> absent,
/// no permission -> no_permission), no GPU -> absent, a GPU without an energy counter -> absent.
std::unique_ptr<Sensor> make_nvml_sensor(const NvmlApi& api, std::shared_ptr<void> keep_alive = {});

}  // namespace irene::measure
