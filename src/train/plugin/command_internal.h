#pragma once

// The ranks' communicator and the exit status of the plugin's `deeprc train` commands
// (train_plugin.cpp for forecasting models, hydro_command.cpp for the hydrology model).

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "deeprc/comm/communicator.h"
#include "deeprc/core/result.h"
#include "deeprc/train/forecaster.h"

namespace deeprc::train {

// Set by `deeprc train --ranks N` in each rank's environment (apps/deeprc/train_command.cpp).
inline constexpr const char* kRanksVariable = "DEEPRC_TRAIN_RANKS";

// The ranks' communicator when this process is one of `deeprc train --ranks N`, else null.
// False (with the message on stderr) when it cannot be made.
inline bool MakeRankCommunicator(std::unique_ptr<comm::Communicator>* communicator) {
  if (std::getenv(kRanksVariable) == nullptr) return true;
  auto made = comm::MakeCommunicator();
  if (!made.ok()) {
    std::fprintf(stderr, "deeprc train: %s\n", made.status().message().c_str());
    return false;
  }
  *communicator = std::move(*made);
  return true;
}

// `--set key=value` settings as a map. The device and backend are checked here, before any
// data is read or model built: a missing GPU fails in a second, not after loading.
inline Result<std::map<std::string, std::string>> ParseSettings(
    const std::vector<std::string>& given) {
  std::map<std::string, std::string> settings;
  for (const auto& setting : given) {
    const size_t equals = setting.find('=');
    if (equals == std::string::npos || equals == 0) {
      return Status::Invalid("--set {}: expected key=value", setting);
    }
    settings[setting.substr(0, equals)] = setting.substr(equals + 1);
  }
  if (auto device = settings.find("device"); device != settings.end()) {
    DEEPRC_RETURN_NOT_OK(CheckDevice(device->second).WithContext("--set device"));
  }
  if (auto backend = settings.find("backend"); backend != settings.end()) {
    DEEPRC_RETURN_NOT_OK(CheckBackend(backend->second).WithContext("--set backend"));
  }
  return settings;
}

// The command's exit status: 0, 2 for bad input, 1 for a failure (printed, and the other ranks
// aborted).
inline int ExitWith(const Status& status, comm::Communicator* communicator) {
  if (status.ok()) return 0;
  std::fprintf(stderr, "deeprc train: %s\n", status.message().c_str());
  if (communicator != nullptr && communicator->size() > 1) {
    communicator->Abort(status.code() == StatusCode::kInternal ? 1 : 2, status.message());
  }
  return status.code() == StatusCode::kInvalid || status.code() == StatusCode::kKeyError ||
                 status.code() == StatusCode::kTypeError
             ? 2
             : 1;
}

// Parses the command line with `app`, then runs `run` with the ranks' communicator (null outside
// `--ranks N`); returns the exit status. `help` names the help option in parse errors.
inline int ParseAndRun(CLI::App& app, int argc, char** argv, const std::string& help,
                       const std::function<Status(comm::Communicator*)>& run) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    if (error.get_exit_code() == 0) return app.exit(error);
    std::fprintf(stderr, "deeprc train: %s (see %s)\n", error.what(), help.c_str());
    return 2;
  }
  std::unique_ptr<comm::Communicator> communicator;
  if (!MakeRankCommunicator(&communicator)) return 1;
  Status status;
  try {
    status = run(communicator.get());
  } catch (const std::exception& error) {
    status = Status::Internal("{}", error.what());
  }
  return ExitWith(status, communicator.get());
}

}  // namespace deeprc::train
