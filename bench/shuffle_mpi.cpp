// Shuffle throughput against plain MPI_Alltoallv moving the same bytes.
//
//   mpirun -np P build/bench/shuffle_mpi [--rows N] [--repeat R] [--threads T] [--chunk-mb C]
//
// Every rank generates N rows (i = 0..N-1, r = rank): key = (r*N + i)*2654435761 mod 2^61
// (int64), value = i (int64), name = "item_" + (i*7919 mod 10^9) padded with '#' to 8 + i mod 17
// characters (string). Methods, timed between barriers (the slowest rank's time), median of R:
//   mpi_alltoallv  raw buffers, one MPI_Alltoallv with, for every pair of ranks, exactly the
//                  bytes the shuffle moves between them (the rows' values, string bytes and
//                  offsets), already grouped by destination: the floor for moving those bytes
//   shuffle        dist::Shuffle on the key (hash, scatter into messages, exchange, concatenate)
//   take_shuffle   the simple shuffle: hash, compute::Take per destination, AllToAllTables
//                  (serialize, exchange, deserialize), Concatenate
// bytes = the rows' payload over all ranks (the same for every method); GB/s = bytes / seconds.
// One JSON line per method on rank 0.

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "deeprc/comm/communicator.h"
#include "deeprc/comm/table_exchange.h"
#include "deeprc/compute/selection.h"
#include "deeprc/core/thread_pool.h"
#include "deeprc/dist/shuffle.h"
#include "deeprc/table/builder.h"

namespace deeprc {
namespace {

struct Options {
  int64_t rows = 4'000'000;
  int repeat = 5;
  int threads = 0;
  int64_t chunk_mb = 64;
};

[[noreturn]] void Fail(const std::string& message) {
  std::fprintf(stderr, "shuffle_mpi: %s\n", message.c_str());
  MPI_Abort(MPI_COMM_WORLD, 2);
  std::exit(2);
}

template <typename T>
T Check(Result<T> result, const char* what) {
  if (!result.ok()) Fail(std::string(what) + ": " + result.status().ToString());
  return result.MoveValueUnsafe();
}

Options Parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Fail("missing value after " + arg);
      return argv[++i];
    };
    if (arg == "--rows") {
      options.rows = std::stoll(next());
    } else if (arg == "--repeat") {
      options.repeat = std::stoi(next());
    } else if (arg == "--threads") {
      options.threads = std::stoi(next());
    } else if (arg == "--chunk-mb") {
      options.chunk_mb = std::stoll(next());
    } else {
      Fail("unknown argument " + arg + " (--rows N --repeat R --threads T --chunk-mb C)");
    }
  }
  return options;
}

Table Generate(int64_t rows, int rank) {
  NumberBuilder<int64_t> keys(DataType::Int64());
  NumberBuilder<int64_t> values(DataType::Int64());
  StringBuilder names;
  std::string name;
  for (int64_t i = 0; i < rows; ++i) {
    const auto key = static_cast<int64_t>(
        (static_cast<uint64_t>(rank * rows + i) * 2654435761ULL) & ((uint64_t{1} << 61) - 1));
    Check(Result<bool>(keys.Append(key).ok()), "append");
    Check(Result<bool>(values.Append(i).ok()), "append");
    name = "item_" + std::to_string(i * 7919 % 1000000000);
    name.resize(static_cast<size_t>(8 + i % 17), '#');
    if (!names.Append(name).ok()) Fail("append");
  }
  std::vector<Column> columns = {Check(keys.Finish(), "keys"), Check(values.Finish(), "values"),
                                 Check(names.Finish(), "names")};
  return Check(Table::Make(Schema({{"key", DataType::Int64()},
                                   {"value", DataType::Int64()},
                                   {"name", DataType::String()}}),
                           std::move(columns)),
               "table");
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace
}  // namespace deeprc

int main(int argc, char** argv) {
  using namespace deeprc;
  auto comm = Check(comm::MakeCommunicator(), "communicator");
  if (comm->backend() != comm::Backend::kMpi) {
    std::fprintf(stderr, "shuffle_mpi: run under mpirun (the mpi backend), got %s\n",
                 std::string(comm::BackendName(comm->backend())).c_str());
    return 2;
  }
  const Options options = Parse(argc, argv);
  const int rank = comm->rank();
  const int ranks = comm->size();
  const int threads = options.threads > 0 ? options.threads : DefaultThreadCount();
  const Table table = Generate(options.rows, rank);

  // The bytes for every destination: what the shuffle moves.
  auto targets = Check(dist::HashPartitionTargets(table, {0}, ranks, threads), "targets");
  std::vector<int64_t> send_bytes(static_cast<size_t>(ranks), 0);
  const Column& names = table.column(2);
  const int64_t* offsets = names.StringOffsets();
  for (int64_t i = 0; i < table.num_rows(); ++i) {
    send_bytes[targets[i]] += 8 + 8 + 8 + (offsets[i + 1] - offsets[i]);
  }
  int64_t total_bytes = 0;
  for (int64_t bytes : send_bytes) total_bytes += bytes;
  MPI_Allreduce(MPI_IN_PLACE, &total_bytes, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);

  // Raw buffers in units of 64 bytes (counts are int).
  MPI_Datatype unit;
  MPI_Type_contiguous(64, MPI_BYTE, &unit);
  MPI_Type_commit(&unit);
  std::vector<int> send_counts(ranks), send_displs(ranks), recv_counts(ranks), recv_displs(ranks);
  int64_t send_units = 0;
  for (int d = 0; d < ranks; ++d) {
    send_counts[d] = static_cast<int>((send_bytes[d] + 63) / 64);
    send_displs[d] = static_cast<int>(send_units);
    send_units += send_counts[d];
  }
  MPI_Alltoall(send_counts.data(), 1, MPI_INT, recv_counts.data(), 1, MPI_INT, MPI_COMM_WORLD);
  int64_t recv_units = 0;
  for (int s = 0; s < ranks; ++s) {
    recv_displs[s] = static_cast<int>(recv_units);
    recv_units += recv_counts[s];
  }
  auto send_buffer = Check(Buffer::Allocate(send_units * 64), "send buffer");
  std::memset(send_buffer->mutable_data(), 1, static_cast<size_t>(send_units * 64));

  dist::ShuffleOptions shuffle_options;
  shuffle_options.threads = threads;
  shuffle_options.chunk_bytes = options.chunk_mb << 20;

  struct Method {
    const char* name;
    std::function<int64_t()> run;  // returns the rows this rank ends with
  };
  std::vector<Method> methods = {
      {"mpi_alltoallv",
       [&] {
         // A fresh receive buffer every time, as the shuffle gets.
         auto recv = Check(Buffer::Allocate(std::max<int64_t>(recv_units, 1) * 64), "recv");
         MPI_Alltoallv(send_buffer->data(), send_counts.data(), send_displs.data(), unit,
                       recv->mutable_data(), recv_counts.data(), recv_displs.data(), unit,
                       MPI_COMM_WORLD);
         return int64_t{0};
       }},
      {"shuffle",
       [&] {
         return Check(dist::Shuffle(*comm, table, {0}, shuffle_options), "shuffle").num_rows();
       }},
      {"take_shuffle",
       [&] {
         auto hashed = Check(dist::HashPartitionTargets(table, {0}, ranks, threads), "targets");
         std::vector<std::vector<int64_t>> rows(static_cast<size_t>(ranks));
         for (int64_t i = 0; i < table.num_rows(); ++i) rows[hashed[i]].push_back(i);
         std::vector<Table> parts;
         for (int d = 0; d < ranks; ++d) {
           parts.push_back(Check(compute::Take(table, rows[d], threads), "take"));
         }
         comm::ExchangeOptions exchange;
         exchange.threads = threads;
         auto received = Check(comm::AllToAllTables(*comm, parts, exchange), "all-to-all");
         return Check(compute::Concatenate(received, threads), "concatenate").num_rows();
       }},
  };

  for (const Method& method : methods) {
    std::vector<double> seconds;
    int64_t rows_after = 0;
    for (int r = 0; r < options.repeat; ++r) {
      MPI_Barrier(MPI_COMM_WORLD);
      const double start = Now();
      rows_after = method.run();
      MPI_Barrier(MPI_COMM_WORLD);
      seconds.push_back(Now() - start);
    }
    int64_t total_rows = rows_after;
    MPI_Allreduce(MPI_IN_PLACE, &total_rows, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
    if (std::string(method.name) != "mpi_alltoallv" && total_rows != options.rows * ranks) {
      Fail(std::string(method.name) + ": rows lost");
    }
    if (rank == 0) {
      const double median = Median(seconds);
      const double best = *std::min_element(seconds.begin(), seconds.end());
      std::printf(
          "{\"bench\": \"shuffle\", \"method\": \"%s\", \"ranks\": %d, \"rows_per_rank\": %lld, "
          "\"threads\": %d, \"bytes\": %lld, \"seconds\": %.4f, \"best_seconds\": %.4f, "
          "\"gb_per_s\": %.3f}\n",
          method.name, ranks, static_cast<long long>(options.rows), threads,
          static_cast<long long>(total_bytes), median, best, total_bytes / median / 1e9);
      std::fflush(stdout);
    }
  }
  MPI_Type_free(&unit);
  return 0;
}
