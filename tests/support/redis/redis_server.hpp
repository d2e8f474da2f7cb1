// A throw-away redis-server for tests and benchmarks: its own process on a free loopback port,
// no persistence, killed (SIGKILL) and its directory removed on destruction.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace locksmith::redis::testing {

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then closed).
int free_loopback_port();

class RedisServer {
 public:
  // Starts /usr/bin/redis-server (or $LOCKSMITH_REDIS_SERVER) with `bind 127.0.0.1`, `--save ''`,
  // `--appendonly no` and `extra_args`; retries on another port when the port was taken; returns
  // once PING is answered. Throws std::runtime_error (with the server's log) on failure.
  // The server is SIGKILLed when the thread that started it exits (PR_SET_PDEATHSIG), so a
  // killed test leaves no server behind: start it from a thread that outlives its use.
  explicit RedisServer(std::vector<std::string> extra_args = {},
                       std::chrono::milliseconds ready_timeout = std::chrono::seconds(10));
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;
  ~RedisServer();

  const std::string& host() const noexcept { return host_; }
  int port() const noexcept { return port_; }
  pid_t pid() const noexcept { return pid_; }
  // "redis://127.0.0.1:PORT"
  std::string url() const;
  // The server's log so far.
  std::string log() const;
  // Kills the server now (SIGKILL) and reaps it.
  void kill() noexcept;

 private:
  bool start_on(int port, const std::vector<std::string>& extra_args,
                std::chrono::milliseconds ready_timeout, std::string& why);

  std::string host_ = "127.0.0.1";
  int port_ = 0;
  pid_t pid_ = -1;
  std::filesystem::path dir_;
};

}  // namespace locksmith::redis::testing
