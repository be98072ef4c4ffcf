#pragma once

// `deeprc train --model hydro ...` (hydro_command.cpp): the hydrology model on CAMELS basins.

namespace deeprc::train {

// True when the command line asks for --model hydro (any letter case).
bool IsHydroCommand(int argc, char** argv);
// Runs it; returns the exit status (0, 2 bad input, 1 failure).
int RunHydroCommand(int argc, char** argv);

}  // namespace deeprc::train
