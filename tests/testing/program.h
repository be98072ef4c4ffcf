#pragma once

// Running the deeprc program from tests, as a user would: arguments passed as they are, standard
// output and error captured.

#include <filesystem>
#include <string>
#include <vector>

namespace deeprc::testing {

struct ProgramRun {
  int exit_status = -1;  // -1 when the program did not exit normally
  std::string out;
  std::string err;
};

// The program under test: $DEEPRC_PROGRAM when set, else the build's apps/deeprc.
std::string DeeprcProgram();

// Runs `program args...` in `directory` (killed after 300 s), with `stdin_text` on its standard
// input. The captured output goes through files outside `directory`, which stays as the program
// left it.
ProgramRun RunProgram(const std::string& program, const std::vector<std::string>& args,
                      const std::filesystem::path& directory, const std::string& stdin_text = "");

// A fresh, empty folder for the running test: <temp>/<prefix>_<pid>_<test name>.
std::filesystem::path FreshTestDirectory(const std::string& prefix);

std::string ReadText(const std::filesystem::path& path);
void WriteText(const std::filesystem::path& path, const std::string& text);

}  // namespace deeprc::testing
