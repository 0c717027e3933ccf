// settings.h: the suite's knobs come from the environment (SFS_FAULTS_*),
// so CI runs the short default and a person can run it longer or repeat a
// seed without rebuilding.
#pragma once

#include <cstdint>
#include <cstdlib>

namespace faults {

inline std::uint64_t env_number(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

}  // namespace faults
