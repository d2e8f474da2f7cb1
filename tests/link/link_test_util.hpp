// Helpers of the LinkLock tests: child processes (a forked function or a spawned program) talking
// line by line over pipes, with every read and every wait bounded.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

extern char** environ;

namespace locksmith::linktest {

// Only bounds to catch hangs; nothing waits this long when things work.
inline constexpr auto kIoTimeout = std::chrono::seconds(20);

// A line-oriented pipe end pair for a child: the child writes lines to `out`, reads from `in`.
class Child {
 public:
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() { kill_and_reap(); }

  // Forks; the child runs fn(read_fd, write_fd) and _exits with its return value.
  bool fork_fn(const std::function<int(int in, int out)>& fn) {
    int to_child[2];
    int from_child[2];
    if (::pipe2(to_child, O_CLOEXEC) != 0) return false;
    if (::pipe2(from_child, O_CLOEXEC) != 0) return false;
    pid_ = ::fork();
    if (pid_ < 0) return false;
    if (pid_ == 0) {
      ::close(to_child[1]);
      ::close(from_child[0]);
      int rc = 99;
      try {
        rc = fn(to_child[0], from_child[1]);
      } catch (...) {
        rc = 98;
      }
      ::_exit(rc);
    }
    ::close(to_child[0]);
    ::close(from_child[1]);
    in_ = to_child[1];
    out_ = from_child[0];
    return true;
  }

  // Spawns argv with stdin/stdout as pipes (stderr inherited).
  bool spawn(const std::vector<std::string>& args) {
    int to_child[2];
    int from_child[2];
    if (::pipe2(to_child, O_CLOEXEC) != 0) return false;
    if (::pipe2(from_child, O_CLOEXEC) != 0) return false;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, to_child[0], 0);
    posix_spawn_file_actions_adddup2(&fa, from_child[1], 1);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(to_child[0]);
    ::close(from_child[1]);
    in_ = to_child[1];
    out_ = from_child[0];
    if (rc != 0) pid_ = -1;
    return rc == 0;
  }

  pid_t pid() const { return pid_; }

  bool send(const std::string& line) {
    const std::string s = line + "\n";
    return ::write(in_, s.data(), s.size()) == static_cast<ssize_t>(s.size());
  }

  // The next line, or nullopt on EOF or after `timeout`.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout = kIoTimeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      struct pollfd pfd {};
      pfd.fd = out_;
      pfd.events = POLLIN;
      const int r = ::poll(&pfd, 1, static_cast<int>(left.count()) + 1);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return std::nullopt;
      char chunk[4096];
      const ssize_t n = ::read(out_, chunk, sizeof chunk);
      if (n <= 0) return std::nullopt;
      buf_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  // The child's exit status (as from waitpid), or nullopt if it did not exit in time.
  std::optional<int> wait(std::chrono::milliseconds timeout = kIoTimeout) {
    if (pid_ <= 0) return std::nullopt;
    const auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        close_pipes();
        return status;
      }
      if (std::chrono::steady_clock::now() >= until) return std::nullopt;
      ::usleep(2000);  // polling a child's exit: there is no bounded waitpid
    }
  }

  void kill_and_reap() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
    close_pipes();
  }

 private:
  void close_pipes() {
    if (in_ >= 0) ::close(in_);
    if (out_ >= 0) ::close(out_);
    in_ = out_ = -1;
  }

  pid_t pid_ = -1;
  int in_ = -1;
  int out_ = -1;
  std::string buf_;
};

// Line I/O for the forked side.
inline bool child_write(int fd, const std::string& line) {
  const std::string s = line + "\n";
  return ::write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size());
}

// Reads one line (bounded); empty on EOF or timeout.
inline std::string child_read(int fd, std::chrono::milliseconds timeout = kIoTimeout) {
  std::string line;
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left.count() <= 0) return {};
    struct pollfd pfd {};
    pfd.fd = fd;
    pfd.events = POLLIN;
    const int r = ::poll(&pfd, 1, static_cast<int>(left.count()) + 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return {};
    char c = 0;
    if (::read(fd, &c, 1) != 1) return {};
    if (c == '\n') return line;
    line.push_back(c);
  }
}

inline std::string read_file(const std::filesystem::path& p) {
  std::string s;
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return s;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    s.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return s;
}

inline struct stat stat_of(const std::filesystem::path& p) {
  struct stat st {};
  ::stat(p.c_str(), &st);
  return st;
}

// Sets the mtime (and atime) of `p` to `t` seconds since the epoch.
inline bool set_mtime(const std::filesystem::path& p, long long t) {
  struct timespec ts[2]{};
  ts[0].tv_sec = static_cast<time_t>(t);
  ts[1].tv_sec = static_cast<time_t>(t);
  return ::utimensat(AT_FDCWD, p.c_str(), ts, 0) == 0;
}

inline long long now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The claim files (names starting with "<lockname>|") in `dir`.
inline std::vector<std::filesystem::path> claim_files(const std::filesystem::path& dir,
                                                      const std::string& lockname) {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(lockname + "|", 0) == 0) out.push_back(e.path());
  }
  return out;
}

}  // namespace locksmith::linktest
