#pragma once

#include <cstdint>

namespace deeprc {

// SplitMix64's finalizer: a well-mixed 64-bit value for each input, so that
// SplitMix64(seed ^ SplitMix64(index)) gives reproducible, independent-looking values per
// (seed, index) without generator state — how benchmark workloads and the simulator draw
// their numbers, the same on every rank and every run.
inline uint64_t SplitMix64(uint64_t value) {
  value += 0x9E3779B97F4A7C15ull;
  value = (value ^ (value >> 30)) * 0xBF58476D1CE4E5B9ull;
  value = (value ^ (value >> 27)) * 0x94D049BB133111EBull;
  return value ^ (value >> 31);
}

}  // namespace deeprc
