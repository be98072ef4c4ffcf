#include "deeprc/comm/table_exchange.h"

#include <cstdint>
#include <string>
#include <string_view>

#include "deeprc/core/memory_pool.h"

namespace deeprc::comm {
namespace {

Bytes BytesOf(const BufferPtr& buffer) {
  return buffer == nullptr ? Bytes() : Bytes(buffer->data(), static_cast<size_t>(buffer->size()));
}

// Every table received by a collective must have the schema this rank sent: a rank with zero
// rows still sends its schema, so a mismatch is found by every rank that sees it.
Status CheckSchema(const Schema& expected, const Table& received, int source) {
  if (received.schema() == expected) return Status::OK();
  return Status::Invalid("rank {} sent a table with schema ({}), this rank has ({})", source,
                         received.schema().ToString(), expected.ToString());
}

Result<std::vector<Table>> DeserializeAll(std::vector<BufferPtr> messages, int threads) {
  std::vector<Table> tables;
  tables.reserve(messages.size());
  for (size_t source = 0; source < messages.size(); ++source) {
    auto table = DeserializeTable(std::move(messages[source]), threads);
    if (!table.ok()) {
      return Status::Invalid("table from rank {}: {}", source, table.status().message());
    }
    tables.push_back(table.MoveValueUnsafe());
  }
  return tables;
}

// In a collective, a rank that cannot serialize (out of memory) must not leave its peers waiting
// in the collective: it ends the job.
BufferPtr SerializeOrAbort(Communicator& comm, const Table& table, const ExchangeOptions& options,
                           std::string_view what) {
  auto message = SerializeTable(table, options);
  if (!message.ok()) {
    comm.Abort(1, std::string(what) + ": cannot serialize this rank's table: " +
                      message.status().ToString());
  }
  return message.MoveValueUnsafe();
}

}  // namespace

Result<BufferPtr> SerializeTable(const Table& table, const ExchangeOptions& options) {
  TableFileWriteOptions write;
  write.compression = options.compression;
  // The transport delivers the bytes intact; the metadata and header keep their checksums.
  write.checksums = false;
  write.threads = options.threads;
  return WriteTableToBuffer(table, write);
}

Result<Table> DeserializeTable(BufferPtr message, int threads) {
  if (message == nullptr) return Status::Invalid("no table message");
  // The columns point into the message: they need it 64-byte aligned (a backend that hands out
  // slices of one receive buffer may not). Copying is the rare path.
  if (reinterpret_cast<uintptr_t>(message->data()) % kBufferAlignment != 0) {
    DEEPRC_ASSIGN_OR_RAISE(message, Buffer::CopyOf(message->data(), message->size()));
  }
  TableFileReadOptions read;
  read.threads = threads;
  return ReadTableFromBuffer(std::move(message), read);
}

Status SendTable(Communicator& comm, int destination, int tag, const Table& table,
                 const ExchangeOptions& options) {
  DEEPRC_ASSIGN_OR_RAISE(BufferPtr message, SerializeTable(table, options));
  return comm.Send(destination, tag, BytesOf(message));
}

Result<Table> ReceiveTable(Communicator& comm, int source, int tag, int threads) {
  DEEPRC_ASSIGN_OR_RAISE(BufferPtr message, comm.Receive(source, tag));
  return DeserializeTable(std::move(message), threads);
}

Result<std::vector<Table>> AllToAllTables(Communicator& comm, const std::vector<Table>& parts,
                                          const ExchangeOptions& options) {
  if (static_cast<int>(parts.size()) != comm.size()) {
    return Status::Invalid("all-to-all of tables: {} parts for {} ranks", parts.size(),
                           comm.size());
  }
  std::vector<BufferPtr> messages(parts.size());
  std::vector<Bytes> send(parts.size());
  for (size_t d = 0; d < parts.size(); ++d) {
    if (!(parts[d].schema() == parts[0].schema())) {
      return Status::Invalid("all-to-all of tables: part {} has schema ({}), part 0 has ({})", d,
                             parts[d].schema().ToString(), parts[0].schema().ToString());
    }
    messages[d] = SerializeOrAbort(comm, parts[d], options, "all-to-all of tables");
    send[d] = BytesOf(messages[d]);
  }
  DEEPRC_ASSIGN_OR_RAISE(auto received, comm.AllToAll(send));
  messages.clear();
  DEEPRC_ASSIGN_OR_RAISE(auto tables, DeserializeAll(std::move(received), options.threads));
  for (size_t s = 0; s < tables.size(); ++s) {
    DEEPRC_RETURN_NOT_OK(CheckSchema(parts[0].schema(), tables[s], static_cast<int>(s)));
  }
  return tables;
}

Result<std::vector<Table>> GatherTables(Communicator& comm, int root, const Table& table,
                                        const ExchangeOptions& options) {
  BufferPtr message = SerializeOrAbort(comm, table, options, "gather of tables");
  DEEPRC_ASSIGN_OR_RAISE(auto received, comm.Gather(root, BytesOf(message)));
  message.reset();
  DEEPRC_ASSIGN_OR_RAISE(auto tables, DeserializeAll(std::move(received), options.threads));
  for (size_t s = 0; s < tables.size(); ++s) {
    DEEPRC_RETURN_NOT_OK(CheckSchema(table.schema(), tables[s], static_cast<int>(s)));
  }
  return tables;
}

Result<std::vector<Table>> AllGatherTables(Communicator& comm, const Table& table,
                                           const ExchangeOptions& options) {
  BufferPtr message = SerializeOrAbort(comm, table, options, "all-gather of tables");
  DEEPRC_ASSIGN_OR_RAISE(auto received, comm.AllGather(BytesOf(message)));
  message.reset();
  DEEPRC_ASSIGN_OR_RAISE(auto tables, DeserializeAll(std::move(received), options.threads));
  for (size_t s = 0; s < tables.size(); ++s) {
    DEEPRC_RETURN_NOT_OK(CheckSchema(table.schema(), tables[s], static_cast<int>(s)));
  }
  return tables;
}

Result<Table> BroadcastTable(Communicator& comm, int root, const Table& table,
                             const ExchangeOptions& options) {
  BufferPtr message;
  if (comm.rank() == root) {
    message = SerializeOrAbort(comm, table, options, "broadcast of a table");
  }
  DEEPRC_RETURN_NOT_OK(comm.Broadcast(root, &message));
  if (comm.rank() == root) return table;
  return DeserializeTable(std::move(message), options.threads);
}

}  // namespace deeprc::comm
