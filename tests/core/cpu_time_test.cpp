#include "deeprc/core/cpu_time.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

namespace deeprc {
namespace {

// Spins until the calling process has used `seconds` of CPU.
void BurnProcessCpu(double seconds) {
  const double start = ProcessCpuSeconds();
  volatile uint64_t sink = 0;
  while (ProcessCpuSeconds() - start < seconds) sink = sink + 1;
}

TEST(CpuTimeTest, ThreadCpuIsPartOfProcessCpu) {
  BurnProcessCpu(0.05);
  const double thread = ThreadCpuSeconds(), process = ProcessCpuSeconds();
  EXPECT_GE(thread, 0.05);
  EXPECT_GE(process, thread);
}

// The tree's CPU counts a live child's CPU (the in-pilot overhead benchmark adds up a pilot's
// processes this way), read from its CPU clock to well below a clock tick.
TEST(CpuTimeTest, ProcessTreeCountsLiveDescendants) {
  int ready[2], release[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(release), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    BurnProcessCpu(0.3);
    char byte = 1;
    (void)!write(ready[1], &byte, 1);
    (void)!read(release[0], &byte, 1);  // stays alive until the parent has measured
    _exit(0);
  }
  char byte = 0;
  ASSERT_EQ(read(ready[0], &byte, 1), 1);
  const double own = ProcessCpuSeconds();
  const double tree = ProcessTreeCpuSeconds(::getpid());
  const double child_only = ProcessTreeCpuSeconds(child);
  EXPECT_GE(child_only, 0.3);
  EXPECT_GE(tree, own + child_only - 1e-3);
  // A pid that does not exist has no CPU.
  EXPECT_EQ(ProcessTreeCpuSeconds(-5), 0.0);
  ASSERT_EQ(write(release[1], &byte, 1), 1);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status));
  for (int fd : {ready[0], ready[1], release[0], release[1]}) close(fd);
}

}  // namespace
}  // namespace deeprc
