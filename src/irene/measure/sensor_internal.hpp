// Helpers shared by the sensor implementations (not part of the public API).
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <system_error>

#include "irene/measure/sensor.hpp"

namespace irene::measure::detail {

/// Reads a small text file; throws std::system_error carrying errno on failure.
std::string default_read_text(const std::filesystem::path& path);

/// options.read_text, or default_read_text when unset.
std::function<std::string(const std::filesystem::path&)> reader(const SensorOptions& options);

/// Trims spaces, tabs, CR and LF at both ends.
std::string trim(std::string_view text);

/// Parses a whole string as a double / unsigned integer; false when malformed.
bool parse_double(std::string_view text, double& value);
bool parse_u64(std::string_view text, unsigned long long& value);

/// True for errno values meaning "not allowed" (EACCES, EPERM).
bool is_permission_error(const std::error_code& ec);

/// Formats a list of part indices as "0-1" / "0,2" / "0".
std::string index_ranges(const std::vector<int>& indices);

}  // namespace irene::measure::detail
