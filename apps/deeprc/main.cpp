// The `deeprc` command: one program, subcommands per area (table, bench, ...).
#include <cstdio>
#include <string_view>

int main(int argc, char** argv) {
  if (argc < 2 || std::string_view(argv[1]) == "--help") {
    std::printf("usage: deeprc <table|bench> ...\n");
    return argc < 2 ? 2 : 0;
  }
  std::fprintf(stderr, "deeprc: unknown command '%s'\n", argv[1]);
  return 2;
}
