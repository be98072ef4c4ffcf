// `deeprc train ...`: loads the training plugin (libdeeprc_train_plugin.so, the LibTorch side)
// with dlopen and hands it the command line. This program itself never links LibTorch.
// With `--ranks N [--comm mpi|gloo]` the command starts itself again as N ranks first.
#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "deeprc/command_registry.h"
#include "deeprc/rank_relaunch.h"
#include "deeprc/train/plugin.h"

namespace deeprc::app {
namespace {

constexpr const char* kRanksVariable = "DEEPRC_TRAIN_RANKS";

// DEEPRC_TRAIN_PLUGIN when set (only it), else beside this program (and ../lib), then the
// build tree's path.
std::vector<std::string> PluginCandidates() {
  std::vector<std::string> candidates;
  if (const char* path = std::getenv("DEEPRC_TRAIN_PLUGIN")) return {path};
  std::error_code error;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", error);
  if (!error) {
    const auto folder = self.parent_path();
    candidates.push_back((folder / train::kTrainPluginFile).string());
    candidates.push_back((folder.parent_path() / "lib" / train::kTrainPluginFile).string());
  }
#ifdef DEEPRC_TRAIN_PLUGIN_PATH
  candidates.emplace_back(DEEPRC_TRAIN_PLUGIN_PATH);
#endif
  return candidates;
}

int RunTrainCommand(int argc, char** argv) {
  // The ranks are started before the plugin is loaded: the parent needs no LibTorch.
  int ranks = 0;
  std::string comm = "mpi";
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--ranks") == 0) ranks = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--comm") == 0) comm = argv[i + 1];
  }
  if (!IsRankProcess(kRanksVariable) && ranks > 0) {
    return RelaunchAsRanks("deeprc train", "train", ranks, comm, kRanksVariable, argc, argv);
  }
  std::string tried;
  void* handle = nullptr;
  for (const auto& candidate : PluginCandidates()) {
    if (!std::filesystem::exists(candidate)) {
      tried += "\n  " + candidate + " (missing)";
      continue;
    }
    handle = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle != nullptr) break;
    tried += "\n  " + candidate + ": " + dlerror();
  }
  if (handle == nullptr) {
    std::fprintf(stderr,
                 "deeprc train: the training plugin %s could not be loaded; it is built with "
                 "LibTorch (libtorch-dev, target deeprc_train_plugin). Tried:%s\n",
                 train::kTrainPluginFile, tried.c_str());
    return kExitFailure;
  }
  auto entry = reinterpret_cast<DeeprcTrainPluginEntry>(dlsym(handle, train::kTrainPluginSymbol));
  const DeeprcTrainPlugin* plugin = entry ? entry() : nullptr;
  if (plugin == nullptr || plugin->abi_version != train::kTrainPluginAbiVersion) {
    std::fprintf(stderr, "deeprc train: the training plugin is from another build (no %s of "
                 "version %u)\n", train::kTrainPluginSymbol, train::kTrainPluginAbiVersion);
    return kExitFailure;
  }
  // The plugin stays loaded until exit: LibTorch does not support being unloaded.
  return plugin->run_command(argc, argv);
}

const bool kRegistered = RegisterCommand(
    {"train", "Train a forecasting model and score it (loads the LibTorch plugin)",
     RunTrainCommand});

}  // namespace
}  // namespace deeprc::app
