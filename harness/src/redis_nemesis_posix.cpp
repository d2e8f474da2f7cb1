// The Redis nemesis (POSIX): faults of the servers behind a redis://, redis+pubsub:// or
// redlock:// spec. Restart and stop act on a process of this host, found through INFO server and
// /proc; they refuse a server that is not on loopback.
#include "redis_nemesis.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <vector>

#if defined(LOCKSMITH_HAVE_REDIS)
#include "locksmith/redis/connection.hpp"
#include "locksmith/redis/redlock.hpp"
#include "locksmith/redis/spec.hpp"
#endif

extern char** environ;

namespace locksmith::harness {

#if defined(LOCKSMITH_HAVE_REDIS)

namespace {

constexpr std::string_view kRedis = "redis://";
constexpr std::string_view kPubSub = "redis+pubsub://";
constexpr std::string_view kRedlock = "redlock://";

// Parameters carried over to a restarted server (what CONFIG GET says it runs with now). The
// command line is not enough: redis-server overwrites it with its process title.
constexpr const char* kCarried[] = {
    "port",
    "bind",
    "protected-mode",
    "unixsocket",
    "unixsocketperm",
    "save",
    "appendonly",
    "appendfsync",
    "dir",
    "dbfilename",
    "appendfilename",
    "databases",
    "requirepass",
    "masterauth",
    "maxmemory",
    "maxmemory-policy",
    "notify-keyspace-events",
    "loglevel",
    "logfile",
    "aclfile",
};

void sleep_ms(long ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000};
  while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// The whole of a small /proc file; false when it cannot be opened or read.
bool read_proc_file(const std::string& path, std::string& out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out.clear();
  std::array<char, 4096> buf{};
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      return n == 0;
    }
    out.append(buf.data(), static_cast<std::size_t>(n));
  }
}

// A process that is gone or a zombie has exited.
bool has_exited(pid_t pid) {
  std::string stat;
  if (!read_proc_file("/proc/" + std::to_string(pid) + "/stat", stat)) return true;
  const auto paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() || stat[paren + 2] == 'Z' ||
         stat[paren + 2] == 'X';
}

std::string read_link(const std::string& path, const std::string& server) {
  std::string buf(4096, '\0');
  const ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
  if (n < 0) {
    throw std::runtime_error("redis nemesis: cannot read " + path + " of the redis-server at " +
                             server + ": " + std::strerror(errno) +
                             " (restart and stop need a server of this host that we may inspect)");
  }
  buf.resize(static_cast<std::size_t>(n));
  return buf;
}

}  // namespace

struct RedisNemesis::Impl {
  std::vector<redis::ConnectOptions> servers;
  std::vector<redis::Connection> admin;

  std::string name(std::size_t i) const {
    return servers.at(i).host + ":" + std::to_string(servers.at(i).port);
  }

  redis::Reply command(std::size_t i, const std::vector<std::string>& args) {
    redis::Result r = admin.at(i).command(args);
    if (!r) {
      throw std::runtime_error("redis nemesis: " + args.front() + " on " + name(i) +
                               " failed: " + r.message());
    }
    return r.value();
  }

  // The pid of server i, checked to be a loopback server whose /proc entry we can read.
  pid_t pid_of(std::size_t i) {
    if (!is_loopback(servers.at(i).host)) {
      throw std::runtime_error("redis nemesis: the redis-server at " + name(i) +
                               " is not on loopback; restart and stop act on local servers only");
    }
    const redis::Reply info = command(i, {"INFO", "server"});
    const auto at = info.str.find("process_id:");
    if (at == std::string::npos) {
      throw std::runtime_error("redis nemesis: INFO server of " + name(i) + " has no process_id");
    }
    const pid_t pid = static_cast<pid_t>(std::atol(info.str.c_str() + at + 11));
    if (pid <= 1) throw std::runtime_error("redis nemesis: bad process_id from " + name(i));
    const std::string cmdline = "/proc/" + std::to_string(pid) + "/cmdline";
    if (std::string ignored; !read_proc_file(cmdline, ignored)) {
      throw std::runtime_error("redis nemesis: cannot read " + cmdline +
                               " of the redis-server at " + name(i) +
                               " (not a process of this host, or not ours)");
    }
    return pid;
  }
};

RedisNemesis::RedisNemesis(const std::string& spec) : impl_(std::make_unique<Impl>()) {
  if (spec.rfind(kRedis, 0) == 0) {
    impl_->servers.push_back(redis::parse_redis_spec(spec).server);
  } else if (spec.rfind(kPubSub, 0) == 0) {
    // Same authority as redis://; its own options do not matter here.
    std::string as_redis = std::string(kRedis) + spec.substr(kPubSub.size());
    as_redis.resize(std::min(as_redis.size(), as_redis.find('?')));
    impl_->servers.push_back(redis::parse_redis_spec(as_redis).server);
  } else if (spec.rfind(kRedlock, 0) == 0) {
    impl_->servers = redis::parse_redlock_spec(spec).masters;
  } else {
    throw std::invalid_argument(
        "the redis-kill, redis-restart and redis-stop nemeses need a redis://, redis+pubsub:// "
        "or redlock:// spec (or fenced:redis://...), not '" +
        spec.substr(0, spec.find('@')) + "'");
  }
  for (auto s : impl_->servers) {
    s.command_timeout = std::chrono::milliseconds(2000);
    s.connect_timeout = std::chrono::milliseconds(2000);
    impl_->admin.emplace_back(s);
  }
}

RedisNemesis::~RedisNemesis() = default;

std::size_t RedisNemesis::servers() const noexcept { return impl_->servers.size(); }
int RedisNemesis::port(std::size_t server) const { return impl_->servers.at(server).port; }
std::string RedisNemesis::name(std::size_t server) const { return impl_->name(server); }

std::uint64_t RedisNemesis::kill_clients() {
  std::uint64_t killed = 0;
  for (std::size_t i = 0; i < impl_->servers.size(); ++i) {
    for (const char* type : {"normal", "pubsub"}) {
      const redis::Reply r = impl_->command(i, {"CLIENT", "KILL", "TYPE", type, "SKIPME", "yes"});
      if (r.integer > 0) killed += static_cast<std::uint64_t>(r.integer);
    }
  }
  return killed;
}

pid_t RedisNemesis::restart(std::size_t i, const std::filesystem::path& log) {
  const std::string server = impl_->name(i);
  const pid_t pid = impl_->pid_of(i);
  const std::string proc = "/proc/" + std::to_string(pid);
  const std::string exe = read_link(proc + "/exe", server);
  const std::string cwd = read_link(proc + "/cwd", server);
  // argv[0] as it was started: the first word of its process title (the binary is one of
  // several names for the same file, e.g. redis-check-rdb, and picks its role from argv[0]).
  std::string arg0 = exe;
  {
    std::string title;
    (void)read_proc_file(proc + "/cmdline", title);
    title.resize(std::min({title.size(), title.find('\0'), title.find(' ')}));
    if (!title.empty()) arg0 = title;
  }
  std::vector<std::string> args{arg0};
  const redis::Reply info = impl_->command(i, {"INFO", "server"});
  if (const auto at = info.str.find("config_file:"); at != std::string::npos) {
    const auto end = info.str.find_first_of("\r\n", at);
    const std::string file = info.str.substr(at + 12, end - at - 12);
    if (!file.empty()) args.push_back(file);
  }
  for (const char* param : kCarried) {
    const redis::Reply r = impl_->command(i, {"CONFIG", "GET", param});
    if (r.elements.size() != 2) continue;  // not a parameter of this version
    const std::string& value = r.elements[1].str;
    if (value.empty() && std::strcmp(param, "save") != 0) continue;
    args.push_back(std::string("--") + param);
    args.push_back(value);
  }
  args.emplace_back("--daemonize");
  args.emplace_back("no");

  impl_->admin.at(i).close();
  if (::kill(pid, SIGTERM) != 0) {
    throw std::runtime_error("redis nemesis: cannot SIGTERM the redis-server at " + server +
                             " (pid " + std::to_string(pid) + "): " + std::strerror(errno));
  }
  for (int waited = 0; !has_exited(pid); waited += 10) {
    if (waited == 5000) ::kill(pid, SIGKILL);
    if (waited >= 10000) {
      throw std::runtime_error("redis nemesis: the redis-server at " + server + " (pid " +
                               std::to_string(pid) + ") did not exit within 10 s of SIGTERM");
    }
    sleep_ms(10);
  }

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
  posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t child = 0;
  const int err = ::posix_spawn(&child, exe.c_str(), &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (err != 0) {
    throw std::runtime_error("redis nemesis: cannot start " + exe + " again for " + server + ": " +
                             std::strerror(err));
  }
  for (int waited = 0;; waited += 20) {
    if (impl_->admin.at(i).command({"PING"})) return child;
    if (waited >= 10000 || has_exited(child)) {
      throw std::runtime_error("redis nemesis: the restarted redis-server for " + server +
                               " does not answer PING (its output: " + log.string() + ")");
    }
    sleep_ms(20);
  }
}

pid_t RedisNemesis::stop(std::size_t i) {
  const pid_t pid = impl_->pid_of(i);
  if (::kill(pid, SIGSTOP) != 0) {
    throw std::runtime_error("redis nemesis: cannot SIGSTOP the redis-server at " + name(i) + ": " +
                             std::strerror(errno));
  }
  return pid;
}

#else  // no Redis in this build

struct RedisNemesis::Impl {};

RedisNemesis::RedisNemesis(const std::string&) {
  throw std::invalid_argument(
      "the redis-kill, redis-restart and redis-stop nemeses need a build with locksmith::redis");
}
RedisNemesis::~RedisNemesis() = default;
std::size_t RedisNemesis::servers() const noexcept { return 0; }
int RedisNemesis::port(std::size_t) const { return 0; }
std::string RedisNemesis::name(std::size_t) const { return ""; }
std::uint64_t RedisNemesis::kill_clients() { return 0; }
pid_t RedisNemesis::restart(std::size_t, const std::filesystem::path&) { return -1; }
pid_t RedisNemesis::stop(std::size_t) { return -1; }

#endif

void RedisNemesis::resume(pid_t pid) noexcept {
  if (pid > 0) ::kill(pid, SIGCONT);
}

}  // namespace locksmith::harness
