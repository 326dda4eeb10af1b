#include "irene/measure/sensor_nvml.hpp"

#include <dlfcn.h>
#include <fmt/format.h>

#include <mutex>
#include <vector>

#include "irene/measure/sensor_internal.hpp"

namespace irene::measure {

namespace {

class NvmlSensor final : public Sensor {
 public:
  NvmlSensor(NvmlApi api, std::shared_ptr<void> lib, std::vector<void*> devices,
             std::vector<std::string> names, std::string covers)
      : api_(api), lib_(std::move(lib)), devices_(std::move(devices)),
        names_(std::move(names)), covers_(std::move(covers)) {}
  ~NvmlSensor() override {
    if (api_.shutdown) api_.shutdown();
  }
  std::string name() const override { return "nvml"; }
  std::string covers() const override { return covers_; }
  std::vector<std::string> parts() const override {
    std::vector<std::string> out;
    for (size_t i = 0; i < devices_.size(); ++i) out.push_back(fmt::format("gpu{}", i));
    return out;
  }

 protected:
  std::vector<double> read_joules() override {
    std::lock_guard lock(mutex_);
    std::vector<double> out;
    for (size_t i = 0; i < devices_.size(); ++i) {
      unsigned long long mj = 0;
      const int rc = api_.total_energy_mj(devices_[i], &mj);
      if (rc != kNvmlSuccess)
        throw SensorError(SensorFailure::broken,
                          fmt::format("nvml: reading the energy of GPU {} ({}) failed: {}", i,
                                      names_[i], api_.error_string ? api_.error_string(rc) : "error"));
      out.push_back(static_cast<double>(mj) * 1e-3);
    }
    return out;
  }

 private:
  std::mutex mutex_;
  NvmlApi api_;
  std::shared_ptr<void> lib_;
  std::vector<void*> devices_;
  std::vector<std::string> names_;
  std::string covers_;
};

}  // namespace

std::unique_ptr<Sensor> make_nvml_sensor(const NvmlApi& api, std::shared_ptr<void> keep_alive) {
  auto err = [&](int rc) -> std::string {
    return api.error_string ? fmt::format("{} (NVML error {})", api.error_string(rc), rc)
                            : fmt::format("NVML error {}", rc);
  };
  if (!api.init || !api.device_count || !api.device_handle || !api.total_energy_mj)
    throw SensorError(SensorFailure::broken, "nvml: the NVML library lacks required functions");
  int rc = api.init();
  if (rc != kNvmlSuccess) {
    SensorFailure f = SensorFailure::broken;
    std::string hint;
    if (rc == kNvmlErrorDriverNotLoaded || rc == kNvmlErrorLibraryNotFound) {
      f = SensorFailure::absent;
      hint = "; no NVIDIA driver is running here";
    } else if (rc == kNvmlErrorNoPermission) {
      f = SensorFailure::no_permission;
      hint = "; run irene as a user allowed to use the GPUs (e.g. in group video) or as root";
    }
    throw SensorError(f, fmt::format("nvml: nvmlInit_v2 failed: {}{}", err(rc), hint));
  }
  // From here on, shut NVML down again on every error.
  struct Shutdown {
    const NvmlApi& api;
    bool armed = true;
    ~Shutdown() {
      if (armed && api.shutdown) api.shutdown();
    }
  } guard{api};
  unsigned count = 0;
  rc = api.device_count(&count);
  if (rc != kNvmlSuccess)
    throw SensorError(SensorFailure::broken,
                      fmt::format("nvml: nvmlDeviceGetCount_v2 failed: {}", err(rc)));
  if (count == 0) throw SensorError(SensorFailure::absent, "nvml: NVML reports no GPU");
  std::vector<void*> devices;
  std::vector<std::string> names;
  for (unsigned i = 0; i < count; ++i) {
    void* dev = nullptr;
    rc = api.device_handle(i, &dev);
    if (rc != kNvmlSuccess)
      throw SensorError(rc == kNvmlErrorNoPermission ? SensorFailure::no_permission
                                                     : SensorFailure::broken,
                        fmt::format("nvml: nvmlDeviceGetHandleByIndex_v2({}) failed: {}", i, err(rc)));
    char name[96] = "GPU";
    if (api.device_name && api.device_name(dev, name, sizeof name) != kNvmlSuccess)
      std::snprintf(name, sizeof name, "GPU");
    name[sizeof name - 1] = '\0';
    unsigned long long mj = 0;
    rc = api.total_energy_mj(dev, &mj);
    if (rc == kNvmlErrorNotSupported)
      throw SensorError(SensorFailure::absent,
                        fmt::format("nvml: GPU {} ({}) has no energy counter "
                                    "(nvmlDeviceGetTotalEnergyConsumption needs Volta or newer)",
                                    i, name));
    if (rc != kNvmlSuccess)
      throw SensorError(rc == kNvmlErrorNoPermission ? SensorFailure::no_permission
                                                     : SensorFailure::broken,
                        fmt::format("nvml: reading the energy of GPU {} ({}) failed: {}", i, name,
                                    err(rc)));
    devices.push_back(dev);
    names.emplace_back(name);
  }
  std::string covers = count == 1 ? fmt::format("1 NVIDIA GPU: {}", names[0])
                                  : fmt::format("{} NVIDIA GPUs:", count);
  if (count > 1)
    for (unsigned i = 0; i < count; ++i) covers += fmt::format("{} {}", i ? "," : "", names[i]);
  char driver[96] = "";
  if (api.driver_version && api.driver_version(driver, sizeof driver) == kNvmlSuccess) {
    driver[sizeof driver - 1] = '\0';
    covers += fmt::format(" (NVML total energy, driver {})", driver);
  } else {
    covers += " (NVML total energy)";
  }
  guard.armed = false;
  return std::make_unique<NvmlSensor>(api, std::move(keep_alive), std::move(devices),
                                      std::move(names), std::move(covers));
}

std::unique_ptr<Sensor> make_nvml_sensor(const SensorOptions& options) {
  void* handle = ::dlopen(options.nvml_library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* why = ::dlerror();
    throw SensorError(SensorFailure::absent,
                      fmt::format("nvml: cannot load {} ({}): no NVIDIA driver here",
                                  options.nvml_library, why ? why : "not found"));
  }
  std::shared_ptr<void> lib(handle, [](void* h) { ::dlclose(h); });
  auto sym = [&](const char* name, bool required) -> void* {
    void* p = ::dlsym(handle, name);
    if (!p && required)
      throw SensorError(SensorFailure::broken,
                        fmt::format("nvml: {} has no {} (driver too old?)", options.nvml_library, name));
    return p;
  };
  NvmlApi api;
  api.init = reinterpret_cast<int (*)()>(sym("nvmlInit_v2", true));
  api.shutdown = reinterpret_cast<int (*)()>(sym("nvmlShutdown", true));
  api.error_string = reinterpret_cast<const char* (*)(int)>(sym("nvmlErrorString", false));
  api.device_count = reinterpret_cast<int (*)(unsigned*)>(sym("nvmlDeviceGetCount_v2", true));
  api.device_handle =
      reinterpret_cast<int (*)(unsigned, void**)>(sym("nvmlDeviceGetHandleByIndex_v2", true));
  api.device_name = reinterpret_cast<int (*)(void*, char*, unsigned)>(sym("nvmlDeviceGetName", false));
  api.total_energy_mj = reinterpret_cast<int (*)(void*, unsigned long long*)>(
      sym("nvmlDeviceGetTotalEnergyConsumption", true));
  api.driver_version =
      reinterpret_cast<int (*)(char*, unsigned)>(sym("nvmlSystemGetDriverVersion", false));
  return make_nvml_sensor(api, std::move(lib));
}

}  // namespace irene::measure
