#include "train/plugin/malloc_tuning.h"

#include <malloc.h>

#include <climits>

namespace deeprc::train {

void KeepFreedMemoryForReuse() {
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
}

}  // namespace deeprc::train
