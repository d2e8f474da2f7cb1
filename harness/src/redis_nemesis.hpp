// Faults of the Redis server(s) behind a lock spec, injected by the stress controller (private to
// the harness): drop every client connection, restart a server, freeze a server.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace locksmith::harness {

class RedisNemesis {
 public:
  // The servers of a redis://, redis+pubsub:// or redlock:// spec. Throws std::invalid_argument
  // for any other spec (or when this build has no Redis support).
  explicit RedisNemesis(const std::string& spec);
  ~RedisNemesis();
  RedisNemesis(const RedisNemesis&) = delete;
  RedisNemesis& operator=(const RedisNemesis&) = delete;

  std::size_t servers() const noexcept;
  int port(std::size_t server) const;
  std::string name(std::size_t server) const;  // "host:port"

  // CLIENT KILL TYPE normal / pubsub SKIPME yes on every server: drops the holders' and waiters'
  // connections. Returns how many clients were killed. Throws std::runtime_error naming the
  // server that did not answer.
  std::uint64_t kill_clients();
  // Restarts a server on this host: INFO server -> process_id, /proc/PID/{exe,cwd,cmdline};
  // SIGTERM, wait (bounded) for it to exit, start the same executable in the same directory
  // with its current configuration (CONFIG GET; its own session, output appended to `log`),
  // wait (bounded) for PING. Returns the new pid. Throws std::runtime_error naming the server
  // when it is not on loopback, its /proc entry is not readable, or it does not come back.
  pid_t restart(std::size_t server, const std::filesystem::path& log);
  // SIGSTOPs a server on this host (same rules as restart); returns its pid for resume().
  pid_t stop(std::size_t server);
  static void resume(pid_t pid) noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace locksmith::harness
