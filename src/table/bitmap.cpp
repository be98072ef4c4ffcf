#include "deeprc/table/bitmap.h"

#include <bit>

namespace deeprc::bitmap {

int64_t CountSetBits(const uint8_t* bits, int64_t offset, int64_t length) {
  int64_t count = 0;
  int64_t i = 0;
  // Leading bits up to a byte boundary, then whole words, then the tail.
  for (; i < length && ((offset + i) & 7) != 0; ++i) count += GetBit(bits, offset + i);
  const uint8_t* bytes = bits + ((offset + i) >> 3);
  for (; i + 64 <= length; i += 64, bytes += 8) {
    uint64_t word;
    std::memcpy(&word, bytes, 8);
    count += std::popcount(word);
  }
  for (; i < length; ++i) count += GetBit(bits, offset + i);
  return count;
}

void CopyBits(const uint8_t* src, int64_t src_offset, int64_t length, uint8_t* dest,
              int64_t dest_offset) {
  if ((src_offset & 7) == 0 && (dest_offset & 7) == 0) {
    const int64_t whole = length / 8;
    std::memcpy(dest + dest_offset / 8, src + src_offset / 8, static_cast<size_t>(whole));
    for (int64_t i = whole * 8; i < length; ++i) {
      SetBitTo(dest, dest_offset + i, GetBit(src, src_offset + i));
    }
    return;
  }
  for (int64_t i = 0; i < length; ++i) {
    SetBitTo(dest, dest_offset + i, GetBit(src, src_offset + i));
  }
}

void SetBitsTo(uint8_t* bits, int64_t offset, int64_t length, bool value) {
  int64_t i = 0;
  for (; i < length && ((offset + i) & 7) != 0; ++i) SetBitTo(bits, offset + i, value);
  const int64_t whole = (length - i) / 8;
  std::memset(bits + (offset + i) / 8, value ? 0xFF : 0, static_cast<size_t>(whole));
  for (i += whole * 8; i < length; ++i) SetBitTo(bits, offset + i, value);
}

}  // namespace deeprc::bitmap
