#pragma once

#include <cstdint>
#include <cstring>

namespace deeprc::bitmap {

// Bit-packed bitmaps in Arrow's layout: bit i is (bytes[i / 8] >> (i % 8)) & 1.

inline bool GetBit(const uint8_t* bits, int64_t i) { return (bits[i >> 3] >> (i & 7)) & 1; }
inline void SetBit(uint8_t* bits, int64_t i) { bits[i >> 3] |= static_cast<uint8_t>(1u << (i & 7)); }
inline void ClearBit(uint8_t* bits, int64_t i) {
  bits[i >> 3] &= static_cast<uint8_t>(~(1u << (i & 7)));
}
inline void SetBitTo(uint8_t* bits, int64_t i, bool value) {
  bits[i >> 3] = static_cast<uint8_t>((bits[i >> 3] & ~(1u << (i & 7))) |
                                      (static_cast<unsigned>(value) << (i & 7)));
}
inline int64_t BytesForBits(int64_t bits) { return (bits + 7) / 8; }

// Number of set bits in [offset, offset + length).
int64_t CountSetBits(const uint8_t* bits, int64_t offset, int64_t length);

// Copies `length` bits starting at src_offset into dest starting at dest_offset.
void CopyBits(const uint8_t* src, int64_t src_offset, int64_t length, uint8_t* dest,
              int64_t dest_offset);

// Sets [offset, offset + length) to value.
void SetBitsTo(uint8_t* bits, int64_t offset, int64_t length, bool value);

// Reads 64 bits starting at bit `offset` (may be unaligned); bits past the end of the bitmap
// must be readable (buffers are padded to 64 bytes).
inline uint64_t LoadWord(const uint8_t* bits, int64_t offset) {
  const uint8_t* p = bits + (offset >> 3);
  const int shift = static_cast<int>(offset & 7);
  uint64_t low;
  std::memcpy(&low, p, 8);
  if (shift == 0) return low;
  return (low >> shift) | (static_cast<uint64_t>(p[8]) << (64 - shift));
}

}  // namespace deeprc::bitmap
