#include "mp_support.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>

extern char** environ;

namespace locksmith::mp {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

[[noreturn]] void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

void close_fd(int& fd) noexcept {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  if (left.count() <= 0) return 0;
  return left.count() > INT_MAX ? INT_MAX : static_cast<int>(left.count());
}

// posix_spawn attributes: default dispositions for the signals this process ignores (SIGPIPE; an
// ignored disposition survives exec) or that the tests send, and an empty signal mask.
class SpawnAttr {
 public:
  SpawnAttr() {
    if (int err = ::posix_spawnattr_init(&attr_)) throw_errno(err, "posix_spawnattr_init");
    sigset_t defaults;
    sigemptyset(&defaults);
    for (int signo : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2}) {
      sigaddset(&defaults, signo);
    }
    sigset_t empty;
    sigemptyset(&empty);
    ::posix_spawnattr_setsigdefault(&attr_, &defaults);
    ::posix_spawnattr_setsigmask(&attr_, &empty);
    ::posix_spawnattr_setflags(&attr_, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  }
  ~SpawnAttr() { ::posix_spawnattr_destroy(&attr_); }
  SpawnAttr(const SpawnAttr&) = delete;
  SpawnAttr& operator=(const SpawnAttr&) = delete;
  const posix_spawnattr_t* get() const { return &attr_; }

 private:
  posix_spawnattr_t attr_{};
};

class FileActions {
 public:
  FileActions() {
    if (int err = ::posix_spawn_file_actions_init(&actions_)) {
      throw_errno(err, "posix_spawn_file_actions_init");
    }
  }
  ~FileActions() { ::posix_spawn_file_actions_destroy(&actions_); }
  FileActions(const FileActions&) = delete;
  FileActions& operator=(const FileActions&) = delete;
  void dup2(int from, int to) {
    if (int err = ::posix_spawn_file_actions_adddup2(&actions_, from, to)) {
      throw_errno(err, "posix_spawn_file_actions_adddup2");
    }
  }
  void open(int fd, const char* path, int flags) {
    if (int err = ::posix_spawn_file_actions_addopen(&actions_, fd, path, flags, 0)) {
      throw_errno(err, "posix_spawn_file_actions_addopen");
    }
  }
  const posix_spawn_file_actions_t* get() const { return &actions_; }

 private:
  posix_spawn_file_actions_t actions_{};
};

}  // namespace

std::string self_exe() {
  static const std::string path = [] {
    char buf[PATH_MAX];
    const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) throw_errno(errno, "readlink /proc/self/exe");
    return std::string(buf, static_cast<std::size_t>(n));
  }();
  return path;
}

Pipe::Pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno(errno, "pipe2");
  read_fd = fds[0];
  write_fd = fds[1];
}

Pipe::~Pipe() {
  close_read();
  close_write();
}

void Pipe::close_read() { close_fd(read_fd); }
void Pipe::close_write() { close_fd(write_fd); }

Process Process::spawn(const std::vector<std::string>& argv, const SpawnOptions& options) {
  Pipe in;
  Pipe out;
  FileActions actions;
  if (options.pipe_stdin) {
    actions.dup2(in.read_fd, 0);
  } else {
    actions.open(0, "/dev/null", O_RDONLY);
  }
  if (options.pipe_stdout) actions.dup2(out.write_fd, 1);
  // dup2 onto the target number clears close-on-exec there, so only these extra fds leak in.
  for (const auto& [from, to] : options.extra_fds) actions.dup2(from, to);

  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  SpawnAttr attr;
  Process p;
  if (int err = ::posix_spawn(&p.pid_, args[0], actions.get(), attr.get(), args.data(), environ)) {
    throw_errno(err, "posix_spawn " + argv[0]);
  }
  if (options.pipe_stdin) {
    p.in_ = in.write_fd;
    in.write_fd = -1;
  }
  if (options.pipe_stdout) {
    p.out_ = out.read_fd;
    out.read_fd = -1;
  }
  return p;
}

Process Process::child(const std::string& role, const std::vector<std::string>& args,
                       const SpawnOptions& options) {
  std::vector<std::string> argv{self_exe(), std::string(kChildFlag) + role};
  argv.insert(argv.end(), args.begin(), args.end());
  return spawn(argv, options);
}

Process::Process(Process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      in_(std::exchange(other.in_, -1)),
      out_(std::exchange(other.out_, -1)),
      reaped_(std::exchange(other.reaped_, false)),
      buffer_(std::move(other.buffer_)) {}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    cleanup();
    pid_ = std::exchange(other.pid_, -1);
    in_ = std::exchange(other.in_, -1);
    out_ = std::exchange(other.out_, -1);
    reaped_ = std::exchange(other.reaped_, false);
    buffer_ = std::move(other.buffer_);
  }
  return *this;
}

Process::~Process() { cleanup(); }

void Process::cleanup() noexcept {
  close_fd(in_);
  close_fd(out_);
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    // SIGKILL cannot be caught; the child is gone as soon as the kernel tears it down.
    for (int i = 0; i < 2000; ++i) {
      const pid_t r = ::waitpid(pid_, nullptr, WNOHANG);
      if (r == pid_ || (r < 0 && errno != EINTR)) break;
      std::this_thread::sleep_for(1ms);
    }
    reaped_ = true;
  }
  pid_ = -1;
}

bool Process::send(std::string_view line) {
  if (in_ < 0) return false;
  std::string data(line);
  data.push_back('\n');
  std::string_view rest = data;
  while (!rest.empty()) {
    const ssize_t n = ::write(in_, rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;  // EPIPE: SIGPIPE is ignored in this binary
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

std::optional<std::string> read_line_from(int fd, std::string& buffer,
                                          std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  for (;;) {
    if (const auto nl = buffer.find('\n'); nl != std::string::npos) {
      std::string line = buffer.substr(0, nl);
      buffer.erase(0, nl + 1);
      return line;
    }
    if (fd < 0) return std::nullopt;
    pollfd pfd{fd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, remaining_ms(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return std::nullopt;  // timeout (or poll failure)
    char chunk[512];
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;  // end of stream
    buffer.append(chunk, static_cast<std::size_t>(n));
  }
}

std::optional<std::string> Process::read_line(std::chrono::milliseconds limit) {
  return read_line_from(out_, buffer_, limit);
}

std::string Process::request(std::string_view line, std::chrono::milliseconds limit) {
  if (!send(line)) return "<stdin closed>";
  return read_line(limit).value_or("<no reply>");
}

void Process::close_stdin() { close_fd(in_); }

std::optional<int> Process::wait_exit(std::chrono::milliseconds limit) {
  if (reaped_ || pid_ <= 0) return std::nullopt;
  const auto deadline = Clock::now() + limit;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return -WTERMSIG(status);
      return std::nullopt;
    }
    if (r < 0 && errno != EINTR) return std::nullopt;
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(1ms);
  }
}

std::optional<int> Process::kill(int signo) {
  if (pid_ <= 0 || reaped_) return std::nullopt;
  ::kill(pid_, signo);
  if (signo == SIGKILL) return wait_exit();
  return std::nullopt;
}

namespace {

// "MAJ:MIN:INODE" as /proc/locks prints it (major and minor in hex).
std::string proc_locks_id(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  char id[64];
  std::snprintf(id, sizeof id, "%02x:%02x:%lu", major(st.st_dev), minor(st.st_dev),
                static_cast<unsigned long>(st.st_ino));
  return id;
}

}  // namespace

int blocked_waiters(const std::filesystem::path& path) {
  const std::string id = proc_locks_id(path);
  if (id.empty()) return 0;
  std::ifstream locks("/proc/locks");
  std::string line;
  int blocked = 0;
  while (std::getline(locks, line)) {
    // "1: -> FLOCK  ADVISORY  WRITE 4994 fe:00:10952946 0 EOF" is a blocked request.
    std::istringstream words(line);
    std::string word;
    bool arrow = false;
    while (words >> word) {
      if (word == "->") arrow = true;
      if (arrow && word == id) {
        ++blocked;
        break;
      }
    }
  }
  return blocked;
}

bool wait_for_blocked_waiters(const std::filesystem::path& path, int n,
                              std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while (blocked_waiters(path) < n) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

bool catches_signal(pid_t pid, int signo) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("SigCgt:", 0) == 0) {
      const unsigned long long mask = std::stoull(line.substr(7), nullptr, 16);
      return ((mask >> (signo - 1)) & 1ULL) != 0;
    }
  }
  return false;
}

}  // namespace locksmith::mp
