#pragma once

namespace deeprc::train {

// Makes glibc's malloc keep freed memory for reuse instead of returning it to the kernel: no
// mmap for large blocks (M_MMAP_MAX 0) and no trimming of the heap's top (M_TRIM_THRESHOLD).
//
// Why: LibTorch's CPU allocator is plain malloc, and a training step allocates and frees the
// same large tensors every step (an LSTM's gate activations for 128 windows of 96 points are
// ~40 MB, above the 32 MiB that glibc's adaptive mmap threshold can reach). By default each one
// is a fresh mmap, page-faulted and zeroed by the kernel, then unmapped: 15% of an LSTM
// training run on this machine (perf), 5% with this setting. The cost: the process keeps its
// peak heap, which a training process (`deeprc train`, a training pool's rank) needs again at
// the next step anyway. Process-wide; called by the plugin's entries, never by the library.
void KeepFreedMemoryForReuse();

}  // namespace deeprc::train
