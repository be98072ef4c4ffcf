#pragma once

#include <sys/types.h>

namespace deeprc {

// CPU time (user + system, seconds) used so far by this process (all its threads) and by the
// calling thread. Their differences over an interval tell how much CPU the process's other
// threads took meanwhile — how the in-pilot overhead benchmark finds what the runtime's own
// threads cost next to a function's work.
double ProcessCpuSeconds();
double ThreadCpuSeconds();

// CPU time used so far by the live process `pid` and every live process descending from it
// (found through /proc, each read from its CPU-time clock; processes that end in between are
// not counted). 0 where /proc is absent.
double ProcessTreeCpuSeconds(pid_t pid);

}  // namespace deeprc
