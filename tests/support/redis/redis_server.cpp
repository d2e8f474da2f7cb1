#include "redis_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace locksmith::redis::testing {
namespace {

sockaddr_in loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// Whether a server on `port` answers PING (any reply counts: +PONG, or -NOAUTH with a password).
bool answers_ping(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool ok = false;
  const sockaddr_in a = loopback(port);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0) {
    constexpr std::string_view kPing = "PING\r\n";
    if (::write(fd, kPing.data(), kPing.size()) == static_cast<ssize_t>(kPing.size())) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 1000) == 1) {
        char c = 0;
        ok = ::read(fd, &c, 1) == 1 && (c == '+' || c == '-');
      }
    }
  }
  ::close(fd);
  return ok;
}

std::string read_all(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in a = loopback(0);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    const int e = errno;
    ::close(fd);
    throw std::runtime_error(std::string("bind 127.0.0.1:0: ") + std::strerror(e));
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

RedisServer::RedisServer(std::vector<std::string> extra_args,
                         std::chrono::milliseconds ready_timeout) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "locksmith-redis-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    throw std::runtime_error("mkdtemp " + tmpl + ": " + std::strerror(errno));
  }
  dir_ = tmpl;
  std::string why;
  for (int tries = 0; tries < 5; ++tries) {
    if (start_on(free_loopback_port(), extra_args, ready_timeout, why)) return;
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
  throw std::runtime_error("cannot start redis-server: " + why);
}

RedisServer::~RedisServer() {
  kill();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string RedisServer::url() const { return "redis://" + host_ + ":" + std::to_string(port_); }

std::string RedisServer::log() const { return read_all(dir_ / "redis.log"); }

void RedisServer::kill() noexcept {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

bool RedisServer::start_on(int port, const std::vector<std::string>& extra_args,
                           std::chrono::milliseconds ready_timeout, std::string& why) {
  const char* env = std::getenv("LOCKSMITH_REDIS_SERVER");
  const std::string binary = env != nullptr && *env != '\0' ? env : "/usr/bin/redis-server";
  std::vector<std::string> args = {
      binary,   "--port", std::to_string(port), "--bind",    host_,
      "--save", "",       "--appendonly",       "no",        "--daemonize",
      "no",     "--dir",  dir_.string(),        "--logfile", (dir_ / "redis.log").string()};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // fork + exec rather than posix_spawn: the child asks to be SIGKILLed when this thread dies, so
  // a test killed by ctest's timeout leaves no server behind. Only async-signal-safe calls
  // between fork and exec.
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    why = std::string("fork: ") + std::strerror(errno);
    return false;
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }
  pid_ = pid;
  const auto until = std::chrono::steady_clock::now() + ready_timeout;
  // Readiness: the server gives no other signal than answering; poll its port (bounded).
  while (std::chrono::steady_clock::now() < until) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      why = binary + " exited early on port " + std::to_string(port) +
            " (port taken, or it cannot run?); log:\n" + log();
      return false;
    }
    if (answers_ping(port)) {
      port_ = port;
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  kill();
  why = "no answer to PING on port " + std::to_string(port) + " within " +
        std::to_string(ready_timeout.count()) + " ms; log:\n" + log();
  return false;
}

}  // namespace locksmith::redis::testing
