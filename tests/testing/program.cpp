#include "testing/program.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include <gtest/gtest.h>

namespace deeprc::testing {

namespace fs = std::filesystem;

namespace {

// Single-quotes `text` for /bin/sh.
std::string Quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

}  // namespace

std::string DeeprcProgram() {
  const char* program = std::getenv("DEEPRC_PROGRAM");
  return program != nullptr ? program : std::string(DEEPRC_BINARY_DIR) + "/apps/deeprc";
}

ProgramRun RunProgram(const std::string& program, const std::vector<std::string>& args,
                      const fs::path& directory, const std::string& stdin_text) {
  static std::atomic<int> runs{0};
  const fs::path io = fs::temp_directory_path() / ("deeprc_test_io_" + std::to_string(::getpid()) +
                                                   "_" + std::to_string(runs++));
  const fs::path in = io.string() + ".in", out = io.string() + ".out", err = io.string() + ".err";
  WriteText(in, stdin_text);
  std::string command = "cd " + Quote(directory.string()) + " && timeout 300 " + Quote(program);
  for (const auto& arg : args) command += " " + Quote(arg);
  command +=
      " < " + Quote(in.string()) + " > " + Quote(out.string()) + " 2> " + Quote(err.string());
  const int status = std::system(command.c_str());
  ProgramRun run;
  run.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  run.out = ReadText(out);
  run.err = ReadText(err);
  std::error_code ignored;
  for (const auto& path : {in, out, err}) fs::remove(path, ignored);
  return run;
}

fs::path FreshTestDirectory(const std::string& prefix) {
  const fs::path directory =
      fs::temp_directory_path() / (prefix + "_" + std::to_string(::getpid()) + "_" +
                                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::remove_all(directory);
  fs::create_directories(directory);
  return directory;
}

std::string ReadText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void WriteText(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

}  // namespace deeprc::testing
