// `deeprc bench table OP --rows N [--threads T]`: times one table operator on data generated in
// memory from fixed formulas, so that the peers' scripts in bench/peers/ build identical data.
// i = 0..N-1, all int64:
//   join:    left (k = i*7919 mod N, a = i), right (k = i*104729 mod N, b = i); inner join on k;
//            checksum = sum of (a + 2b) over the result
//   groupby: (g = i*7919 mod 100000, v = i); sum(v) by g; checksum = sum of (g*31 + sum)
//   sort:    s = i*2654435761 mod 1000000007; ascending; checksum = sum of (position * s),
//            wrapping at 2^64
//   unique:  u = i*7919 mod (N/4); distinct u; checksum = sum of u
//   csv-write: the mixed table below written as CSV; checksum = rows
//   csv-read: reads --path (the mixed table is written there first when the file is missing);
//            checksum = sum of id
// The mixed table (i = 0..N-1): id = i*7919 mod 100000007 (int64), price = (i*104729 mod
// 10000000) / 100 (float64), quantity = (i*31 mod 20000) - 10000 (int64), name = W[i mod 14] + "_"
// + (i*13 mod 1000) (string), day = 1970-01-01 + (i*7 mod 20000) days (date32), note =
// W[i*5 mod 14] + ", " + (i mod 100) when i mod 4 = 0 (quoted in the file, as it holds a comma),
// else W[i*5 mod 14] + " " + (i mod 100) (string), ratio = null when i mod 10 = 0, else
// (i*17 mod 1000000) / 7 (float64); W = alpha bravo charlie delta echo foxtrot golf hotel india
// juliett kilo lima mike november. About 70 bytes a row: 15M rows make 1 GB.
// One JSON line per operator: the median of --repeat runs (seconds) and the first, cold run
// (first_seconds); peak_rss_mb is the process's peak resident memory (run one operator per
// process to compare peaks).
//
// With `--ranks P [--comm mpi|gloo]` the command starts itself as the P ranks of one job and
// times the distributed operator (dist::): rank r generates the rows i of [r*N/P, (r+1)*N/P) of
// the same formulas (N = --rows in total, or N = --rows * P with --weak), so the global data and
// the checksum are those of the local run. A run is timed from a barrier to the slowest rank's
// end; peak_rss_mb is the largest rank's peak (peak_rss_mb_per_rank lists them all). csv-read
// splits the one file by byte ranges; csv-write writes one file from all ranks.
// `--workload cylon` is Radical-Cylon's scaling workload instead of the formulas (join and sort
// only): every rank holds `rows` rows of two int64 columns drawn uniformly from [0, 0.9*rows*P)
// with seed = rank (a counter-based generator, so any thread count gives the same values); join
// is an inner join of two such tables on their first column (algorithm hash), checksum = sum of
// (a + 2b) over the result with a, b the second columns; sort orders the first table by its first
// column, checksum as for sort. Without --ranks it is the 1-rank case (seed 0).
#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "bench_tasks.h"
#include "bench_workload/bench_workload.h"
#include "deeprc/comm/communicator.h"
#include "deeprc/command_registry.h"
#include "deeprc/compute/group_by.h"
#include "deeprc/compute/set_ops.h"
#include "deeprc/core/thread_pool.h"
#include "deeprc/dist/csv.h"
#include "deeprc/dist/group_by.h"
#include "deeprc/dist/set_ops.h"
#include "deeprc/rank_relaunch.h"
#include "deeprc/table/builder.h"
#include "deeprc/table/csv.h"

namespace deeprc::app {
namespace {

// This process's share of the generated rows: the rows i of [begin, end) of N in total.
struct Share {
  int64_t total = 0;  // N: the formulas' n (join: on each side)
  int64_t begin = 0;
  int64_t end = 0;
  int rank = 0;
  int ranks = 1;
  int64_t rows() const { return end - begin; }
};

Column Int64Range(const Share& share, int threads, const std::function<int64_t(int64_t)>& value) {
  const int64_t begin = share.begin;
  return Int64s(share.rows(), threads, [&](int64_t j) { return value(begin + j); });
}

Table MakeTable(std::vector<Field> fields, std::vector<Column> columns) {
  return Table::Make(Schema(std::move(fields)), std::move(columns)).ValueOrDie();
}

constexpr const char* kWords[] = {"alpha", "bravo",  "charlie", "delta", "echo",
                                  "foxtrot", "golf", "hotel",   "india", "juliett",
                                  "kilo",  "lima",   "mike",    "november"};

template <typename F>
Column GenerateStrings(int64_t n, F text) {
  StringBuilder builder;
  (void)builder.Reserve(n, n * 16);
  char buffer[64];
  for (int64_t i = 0; i < n; ++i) {
    const auto end = text(i, buffer);
    (void)builder.Append(std::string_view(buffer, end - buffer));
  }
  return builder.Finish().ValueOrDie();
}

Table MixedTable(const Share& share, int threads) {
  const int64_t n = share.rows();
  const int64_t b = share.begin;
  Column id = Int64Range(share, threads, [](int64_t i) { return i * 7919 % 100000007; });
  Column price = GenerateColumn<double>(DataType::Float64(), n, threads, [b](int64_t j) {
    return static_cast<double>((b + j) * 104729 % 10000000) / 100;
  });
  Column quantity = Int64Range(share, threads, [](int64_t i) { return i * 31 % 20000 - 10000; });
  Column name = GenerateStrings(n, [b](int64_t j, char* out) {
    const int64_t i = b + j;
    return fmt::format_to(out, "{}_{}", kWords[i % 14], i * 13 % 1000);
  });
  Column day = GenerateColumn<int32_t>(DataType::Date32(), n, threads, [b](int64_t j) {
    return static_cast<int32_t>((b + j) * 7 % 20000);
  });
  Column note = GenerateStrings(n, [b](int64_t j, char* out) {
    const int64_t i = b + j;
    return i % 4 == 0 ? fmt::format_to(out, "{}, {}", kWords[i * 5 % 14], i % 100)
                      : fmt::format_to(out, "{} {}", kWords[i * 5 % 14], i % 100);
  });
  NumberBuilder<double> ratios(DataType::Float64());
  (void)ratios.Reserve(n);
  for (int64_t i = b; i < share.end; ++i) {
    if (i % 10 == 0) {
      ratios.UnsafeAppendNull();
    } else {
      ratios.UnsafeAppend(static_cast<double>(i * 17 % 1000000) / 7);
    }
  }
  Column ratio = ratios.Finish().ValueOrDie();
  return MakeTable({{"id", DataType::Int64()},
                    {"price", DataType::Float64()},
                    {"quantity", DataType::Int64()},
                    {"name", DataType::String()},
                    {"day", DataType::Date32()},
                    {"note", DataType::String()},
                    {"ratio", DataType::Float64()}},
                   {id, price, quantity, name, day, note, ratio});
}

// One operator: prepared data, then a timed run that returns this rank's part of the checksum
// (the parts add up, wrapping, to the checksum of the whole result).
struct Workload {
  std::function<Result<uint64_t>()> run;
};

struct BenchSetup {
  std::string op;
  Share share;
  int threads = 1;
  std::string path;
  bool cylon = false;
  comm::Communicator* comm = nullptr;  // null: the local operators
};

Result<uint64_t> RunJoin(const BenchSetup& setup, const Table& left, const Table& right) {
  return JoinChecksum(setup.comm, left, right, setup.threads);
}

Result<uint64_t> RunSort(const BenchSetup& setup, const Table& table) {
  return SortChecksum(setup.comm, table, setup.threads);
}

Result<Workload> PrepareCylon(const BenchSetup& setup) {
  const Share& share = setup.share;
  const int threads = setup.threads;
  auto left = std::make_shared<Table>(
      CylonTable(share.rank, share.total, share.rows(), threads, /*right=*/false));
  if (setup.op == "join") {
    auto right = std::make_shared<Table>(
        CylonTable(share.rank, share.total, share.rows(), threads, /*right=*/true));
    return Workload{[=]() { return RunJoin(setup, *left, *right); }};
  }
  if (setup.op == "sort") {
    return Workload{[=]() { return RunSort(setup, *left); }};
  }
  return Status::Invalid("bench table --workload cylon: unknown operator '{}' (join, sort)",
                         setup.op);
}

Result<Workload> Prepare(const BenchSetup& setup) {
  if (setup.cylon) return PrepareCylon(setup);
  const std::string& op = setup.op;
  const Share& share = setup.share;
  const int64_t n = share.total;
  const int threads = setup.threads;
  comm::Communicator* comm = setup.comm;
  if (op == "join") {
    auto left = std::make_shared<Table>(
        MakeTable({{"k", DataType::Int64()}, {"a", DataType::Int64()}},
                  {Int64Range(share, threads, [n](int64_t i) { return i * 7919 % n; }),
                   Int64Range(share, threads, [](int64_t i) { return i; })}));
    auto right = std::make_shared<Table>(
        MakeTable({{"k", DataType::Int64()}, {"b", DataType::Int64()}},
                  {Int64Range(share, threads, [n](int64_t i) { return i * 104729 % n; }),
                   Int64Range(share, threads, [](int64_t i) { return i; })}));
    return Workload{[=]() { return RunJoin(setup, *left, *right); }};
  }
  if (op == "groupby") {
    auto table = std::make_shared<Table>(
        MakeTable({{"g", DataType::Int64()}, {"v", DataType::Int64()}},
                  {Int64Range(share, threads, [](int64_t i) { return i * 7919 % 100000; }),
                   Int64Range(share, threads, [](int64_t i) { return i; })}));
    return Workload{[=]() -> Result<uint64_t> {
      compute::GroupByOptions options;
      options.keys = {"g"};
      compute::Aggregate sum;
      sum.column = "v";
      sum.kind = compute::AggregateKind::kSum;
      options.aggregates = {sum};
      options.threads = threads;
      Table out;
      if (comm != nullptr) {
        dist::DistGroupByOptions distributed;
        distributed.group_by = options;
        distributed.shuffle.threads = threads;
        DEEPRC_ASSIGN_OR_RAISE(out, dist::GroupBy(*comm, *table, distributed));
      } else {
        DEEPRC_ASSIGN_OR_RAISE(out, compute::GroupBy(*table, options));
      }
      return SumInt64(out.column(0)) * 31 + SumInt64(out.column(1));
    }};
  }
  if (op == "sort") {
    auto table = std::make_shared<Table>(MakeTable(
        {{"s", DataType::Int64()}},
        {Int64Range(share, threads, [](int64_t i) { return i * 2654435761 % 1000000007; })}));
    return Workload{[=]() { return RunSort(setup, *table); }};
  }
  if (op == "unique") {
    const int64_t distinct = std::max<int64_t>(1, n / 4);
    auto table = std::make_shared<Table>(MakeTable(
        {{"u", DataType::Int64()}},
        {Int64Range(share, threads, [distinct](int64_t i) { return i * 7919 % distinct; })}));
    return Workload{[=]() -> Result<uint64_t> {
      compute::UniqueOptions options;
      options.threads = threads;
      Table out;
      if (comm != nullptr) {
        dist::ShuffleOptions shuffle;
        shuffle.threads = threads;
        DEEPRC_ASSIGN_OR_RAISE(out, dist::Unique(*comm, *table, options, shuffle));
      } else {
        DEEPRC_ASSIGN_OR_RAISE(out, compute::Unique(*table, options));
      }
      return SumInt64(out.column(0));
    }};
  }
  if (op == "csv-write") {
    auto table = std::make_shared<Table>(MixedTable(share, threads));
    const std::string out = setup.path.empty() ? "/tmp/deeprc_bench_write.csv" : setup.path;
    return Workload{[=]() -> Result<uint64_t> {
      csv::WriteOptions options;
      options.threads = threads;
      if (comm != nullptr) {
        DEEPRC_RETURN_NOT_OK(dist::WriteCsv(*comm, *table, out, options));
      } else {
        DEEPRC_RETURN_NOT_OK(csv::WriteCsv(*table, out, options));
      }
      return static_cast<uint64_t>(table->num_rows());
    }};
  }
  if (op == "csv-read") {
    const std::string in =
        setup.path.empty() ? fmt::format("/tmp/deeprc_bench_{}.csv", n) : setup.path;
    // The file is written first when missing (by all ranks together), so every rank must take
    // the same decision: missing on any rank counts as missing.
    int64_t missing = std::filesystem::exists(in) ? 0 : 1;
    if (comm != nullptr) {
      DEEPRC_ASSIGN_OR_RAISE(missing, comm::AllReduceValue(*comm, missing, comm::ReduceOp::kMax));
    }
    if (missing != 0) {
      csv::WriteOptions options;
      options.threads = threads;
      const Table mixed = MixedTable(share, threads);
      DEEPRC_RETURN_NOT_OK(comm != nullptr ? dist::WriteCsv(*comm, mixed, in, options)
                                           : csv::WriteCsv(mixed, in, options));
    }
    return Workload{[=]() -> Result<uint64_t> {
      csv::ReadOptions options;
      options.threads = threads;
      Table table;
      if (comm != nullptr) {
        DEEPRC_ASSIGN_OR_RAISE(table, dist::ReadCsv(*comm, in, options));
      } else {
        DEEPRC_ASSIGN_OR_RAISE(table, csv::ReadCsv(in, options));
      }
      DEEPRC_ASSIGN_OR_RAISE(Column id, table.GetColumn("id"));
      if (id.type().id != TypeId::kInt64) {
        return Status::Invalid("csv-read: column 'id' of {} is {}, not int64", in,
                               id.type().ToString());
      }
      return SumInt64(id);
    }};
  }
  return Status::Invalid(
      "bench table: unknown operator '{}' (join, groupby, sort, unique, "
      "csv-read, csv-write)",
      op);
}

struct BenchTableOptions {
  std::vector<std::string> ops;
  int64_t rows = 10'000'000;
  int threads = 0;
  int repeat = 3;
  std::string path;
  int ranks = 0;  // 0: no --ranks (local operators)
  std::string comm = "mpi";
  bool weak = false;
  std::string workload = "formulas";
};

// Set in the environment of the ranks a `--ranks N` bench starts.
constexpr const char* kBenchRanksVariable = "DEEPRC_BENCH_RANKS";

Result<std::string> RunOne(const BenchTableOptions& bench, BenchSetup setup) {
  comm::Communicator* comm = setup.comm;
  DEEPRC_ASSIGN_OR_RAISE(Workload workload, Prepare(setup));
  auto runs = TimeRuns(comm, bench.repeat, workload.run);
  if (!runs.ok()) return runs.status().WithContext(setup.op);
  const uint64_t checksum = runs->checksum;
  const double first = runs->seconds.front();
  std::string line = fmt::format(
      "{{\"system\":\"deeprc\",\"op\":\"{}\",\"rows\":{},\"threads\":{},\"seconds\":{:.4f},"
      "\"first_seconds\":{:.4f},\"operation_cpu_seconds\":{:.4f},\"other_cpu_seconds\":{:.4f}",
      setup.op, setup.share.total, setup.threads, runs->median(), first,
      TimedRuns::Median(runs->operation_cpu_seconds), TimedRuns::Median(runs->other_cpu_seconds));
  double peak = PeakRssMb();
  if (comm != nullptr) {
    const auto* bytes = reinterpret_cast<const uint8_t*>(&peak);
    DEEPRC_ASSIGN_OR_RAISE(auto peaks, comm->AllGather(comm::Bytes(bytes, sizeof(peak))));
    std::string per_rank;
    double largest = 0;
    for (const auto& buffer : peaks) {
      double value = 0;
      std::memcpy(&value, buffer->data(), sizeof(value));
      largest = std::max(largest, value);
      per_rank += fmt::format("{}{:.1f}", per_rank.empty() ? "" : ",", value);
    }
    line += fmt::format(
        ",\"ranks\":{},\"comm\":\"{}\",\"weak\":{},\"rows_per_rank\":{},\"peak_rss_mb\":{:.1f},"
        "\"peak_rss_mb_per_rank\":[{}]",
        comm->size(), comm::BackendName(comm->backend()), bench.weak || setup.cylon ? "true" : "false",
        setup.share.total / comm->size(), largest, per_rank);
  } else {
    line += fmt::format(",\"peak_rss_mb\":{:.1f}", peak);
  }
  if (setup.cylon) line += ",\"workload\":\"cylon\"";
  line += fmt::format(",\"checksum\":{}}}", checksum);
  return line;
}

int RunBenchTable(const BenchTableOptions& bench) {
  std::unique_ptr<comm::Communicator> communicator;
  if (IsRankProcess(kBenchRanksVariable)) {
    auto made = comm::MakeCommunicator();
    if (!made.ok()) {
      std::fprintf(stderr, "deeprc bench: %s\n", made.status().ToString().c_str());
      return kExitFailure;
    }
    communicator = std::move(*made);
  }
  const int ranks = communicator != nullptr ? communicator->size() : 1;
  const int rank = communicator != nullptr ? communicator->rank() : 0;
  BenchSetup setup;
  setup.comm = communicator.get();
  setup.path = bench.path;
  setup.cylon = bench.workload == "cylon";
  setup.threads = bench.threads > 0 ? bench.threads : std::max(1, DefaultThreadCount() / ranks);
  // Radical-Cylon's rows are per rank (weak scaling) by nature; --weak makes the formulas so too.
  const bool per_rank = bench.weak || setup.cylon;
  setup.share.total = per_rank ? bench.rows * ranks : bench.rows;
  setup.share.rank = rank;
  setup.share.ranks = ranks;
  setup.share.begin = setup.share.total * rank / ranks;
  setup.share.end = setup.share.total * (rank + 1) / ranks;
  for (const auto& op : bench.ops) {
    setup.op = op;
    auto line = RunOne(bench, setup);
    if (!line.ok()) {
      if (rank == 0) std::fprintf(stderr, "deeprc bench: %s\n", line.status().ToString().c_str());
      return line.status().IsUserError() ? kExitUsage : kExitFailure;
    }
    if (rank == 0) {
      std::printf("%s\n", line->c_str());
      std::fflush(stdout);
    }
  }
  return kExitOk;
}

int RunBenchCommand(int argc, char** argv) {
  CLI::App app{"Benchmarks that print one JSON line per measurement", "deeprc bench"};
  app.require_subcommand(1);
  auto* table = app.add_subcommand("table", "Time table operators on generated data");
  BenchTableOptions bench;
  table->add_option("op", bench.ops,
                    "join, groupby, sort, unique, csv-read, csv-write (several allowed)")
      ->required();
  table->add_option("--rows", bench.rows, "Rows N (join: on each side)")
      ->check(CLI::PositiveNumber);
  table->add_option("--threads", bench.threads,
                    "Threads per process (0: DEEPRC_THREADS or all cores, shared by the ranks)")
      ->check(CLI::NonNegativeNumber);
  table->add_option("--repeat", bench.repeat, "Timed runs; the median is printed")
      ->check(CLI::PositiveNumber);
  table->add_option("--path", bench.path,
                    "csv-read: the file to read (written first when missing); csv-write: where");
  table->add_option("--ranks", bench.ranks, "Time the distributed operator on P ranks of one job")
      ->check(CLI::PositiveNumber);
  table->add_option("--comm", bench.comm, "Communicator of --ranks: mpi or gloo");
  table->add_flag("--weak", bench.weak, "--rows is per rank (weak scaling)");
  table->add_option("--workload", bench.workload,
                    "formulas (the peers' data) or cylon (Radical-Cylon's scaling data; join, "
                    "sort; --rows per rank)")
      ->check(CLI::IsMember({"formulas", "cylon"}));
  BenchTasksCommand tasks;
  AddBenchTasksCommand(app, &tasks);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error) == 0 ? kExitOk : kExitUsage;
  }
  if (tasks.subcommand->parsed()) return RunBenchTasks(tasks);
  if (bench.ranks > 0 && !IsRankProcess(kBenchRanksVariable)) {
    return RelaunchAsRanks("deeprc bench table", "bench", bench.ranks, bench.comm,
                           kBenchRanksVariable, argc, argv);
  }
  return RunBenchTable(bench);
}

const bool kRegistered = RegisterCommand(
    {"bench",
     "Benchmarks (deeprc bench table OP --rows N --threads T | deeprc bench tasks --count N)",
     RunBenchCommand});

}  // namespace
}  // namespace deeprc::app
