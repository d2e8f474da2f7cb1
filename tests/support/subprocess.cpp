#include "subprocess.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <system_error>
#include <thread>

extern char** environ;

namespace locksmith::test {
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
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
  if (left.count() <= 0) return 0;
  return left.count() > INT_MAX ? INT_MAX : static_cast<int>(left.count());
}

// Both ends close-on-exec; closed on destruction unless taken.
struct Pipe {
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno(errno, "pipe2");
    read = fds[0];
    write = fds[1];
  }
  ~Pipe() {
    close_fd(read);
    close_fd(write);
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  int take_read() { return std::exchange(read, -1); }
  int take_write() { return std::exchange(write, -1); }
  int read = -1;
  int write = -1;
};

// Writes all of `data`; false when the reader is gone. SIGPIPE is blocked for the write and a
// SIGPIPE it raised is consumed, so a dead child is an EPIPE here in every test binary, whether
// or not its main ignores SIGPIPE.
bool write_all(int fd, std::string_view data) {
  if (fd < 0) return false;
  sigset_t pipe_only;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  sigset_t pending;
  sigpending(&pending);
  const bool was_pending = sigismember(&pending, SIGPIPE) == 1;
  sigset_t old;
  pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
  bool ok = true;
  bool broke = false;
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      broke = n < 0 && errno == EPIPE;
      ok = false;
      break;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  if (broke && !was_pending) {
    const timespec now{0, 0};
    while (sigtimedwait(&pipe_only, nullptr, &now) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return ok;
}

// The child's environment: ours, minus drop_env_prefix, with options.env set.
std::vector<std::string> child_environment(const SpawnOptions& options) {
  std::vector<std::string> entries;
  const auto name_of = [](const std::string& e) { return e.substr(0, e.find('=')); };
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    if (!options.drop_env_prefix.empty() && entry.rfind(options.drop_env_prefix, 0) == 0) continue;
    const bool replaced =
        std::any_of(options.env.begin(), options.env.end(),
                    [&](const std::string& s) { return name_of(s) == name_of(entry); });
    if (!replaced) entries.push_back(entry);
  }
  entries.insert(entries.end(), options.env.begin(), options.env.end());
  return entries;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// In the forked child before exec: async-signal-safe calls only.
void reset_signals(const std::vector<int>& ignored) {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int signo = 1; signo < NSIG; ++signo) {
    if (signo == SIGKILL || signo == SIGSTOP) continue;
    ::sigaction(signo, &dfl, nullptr);
  }
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  for (const int signo : ignored) ::sigaction(signo, &ign, nullptr);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

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

std::optional<std::string> child_role(int argc, char** argv) {
  if (argc < 2) return std::nullopt;
  const std::string_view first = argv[1];
  if (first.substr(0, kChildFlag.size()) != kChildFlag) return std::nullopt;
  return std::string(first.substr(kChildFlag.size()));
}

// --- Channel ---

Channel::Channel(Channel&& other) noexcept
    : in_(std::exchange(other.in_, -1)),
      out_(std::exchange(other.out_, -1)),
      at_end_(std::exchange(other.at_end_, false)),
      buffer_(std::move(other.buffer_)) {}

Channel& Channel::operator=(Channel&& other) noexcept {
  if (this != &other) {
    close_in();
    close_out();
    in_ = std::exchange(other.in_, -1);
    out_ = std::exchange(other.out_, -1);
    at_end_ = std::exchange(other.at_end_, false);
    buffer_ = std::move(other.buffer_);
  }
  return *this;
}

Channel::~Channel() {
  close_in();
  close_out();
}

void Channel::close_in() { close_fd(in_); }
void Channel::close_out() { close_fd(out_); }

bool Channel::send(std::string_view line) {
  std::string data(line);
  data.push_back('\n');
  return write_all(out_, data);
}

bool Channel::send(char c) { return write_all(out_, std::string_view(&c, 1)); }

// Reads what is there (waiting until `deadline`); false on timeout or end of stream.
bool Channel::fill(Clock::time_point deadline) {
  for (;;) {
    if (in_ < 0) return false;
    pollfd pfd{in_, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, remaining_ms(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return false;  // timeout (or poll failure)
    char chunk[4096];
    const ssize_t n = ::read(in_, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      at_end_ = n == 0;
      return false;  // end of stream (or a read error)
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }
}

std::optional<std::string> Channel::read_line(std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  for (;;) {
    if (const auto nl = buffer_.find('\n'); nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    if (!fill(deadline)) return std::nullopt;
  }
}

std::optional<char> Channel::receive(std::chrono::milliseconds limit) {
  if (buffer_.empty() && !fill(Clock::now() + limit)) return std::nullopt;
  const char c = buffer_.front();
  buffer_.erase(0, 1);
  return c;
}

std::string Channel::read_all(std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while (fill(deadline)) {
  }
  return std::exchange(buffer_, std::string());
}

std::string Channel::request(std::string_view line, std::chrono::milliseconds limit) {
  if (!send(line)) return "<stdin closed>";
  return read_line(limit).value_or("<no reply>");
}

// --- Subprocess ---

Subprocess Subprocess::spawn(const std::vector<std::string>& argv, const SpawnOptions& options) {
  if (argv.empty()) throw std::invalid_argument("Subprocess::spawn: empty argv");
  // Everything the child needs is made before fork: after it, only async-signal-safe calls.
  std::vector<std::string> args_s = argv;
  std::vector<char*> args = c_strings(args_s);
  std::vector<std::string> env_s = child_environment(options);
  std::vector<char*> envp = c_strings(env_s);
  Pipe in;
  Pipe out;
  Pipe exec_error;  // the child writes errno here when exec fails; EOF means exec succeeded
  // Where each of the child's descriptors comes from: {fd here, fd in the child}. Files are
  // opened here (close-on-exec), so that a failure is an exception and the child only dup2()s.
  std::vector<int> opened;
  const auto open_here = [&](const std::string& path, int flags) {
    const int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
    if (fd < 0) {
      const int err = errno;
      for (const int o : opened) ::close(o);
      throw_errno(err, "open " + path);
    }
    opened.push_back(fd);
    return fd;
  };
  std::vector<std::pair<int, int>> plan = options.extra_fds;
  if (options.in == Stdio::pipe) plan.emplace_back(in.read, 0);
  if (options.in == Stdio::null) plan.emplace_back(open_here("/dev/null", O_RDONLY), 0);
  if (options.out == Stdio::pipe) plan.emplace_back(out.write, 1);
  if (options.out == Stdio::null) plan.emplace_back(open_here("/dev/null", O_WRONLY), 1);
  if (options.err == Stdio::pipe) plan.emplace_back(out.write, 2);
  if (options.err == Stdio::null) plan.emplace_back(open_here("/dev/null", O_WRONLY), 2);
  if (options.err == Stdio::file) {
    plan.emplace_back(open_here(options.stderr_file, O_WRONLY | O_CREAT | O_TRUNC), 2);
  }
  const bool err_to_out = options.err == Stdio::stdout_;
  int above = 2;  // every source is first moved above every target, so no dup2 clobbers one
  for (const auto& [from, to] : plan) above = std::max(above, to);
  std::vector<int> moved(plan.size(), -1);

  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    for (const int o : opened) ::close(o);
    throw_errno(err, "fork");
  }
  if (pid == 0) {
    reset_signals(options.ignore_signals);
    const int report = ::fcntl(exec_error.write, F_DUPFD_CLOEXEC, above + 1);
    for (std::size_t k = 0; k < plan.size(); ++k) {
      moved[k] = ::fcntl(plan[k].first, F_DUPFD_CLOEXEC, above + 1);
      if (moved[k] < 0) ::_exit(127);
    }
    // dup2 onto the target number clears close-on-exec there, so only these fds reach the program.
    for (std::size_t k = 0; k < plan.size(); ++k) {
      if (::dup2(moved[k], plan[k].second) < 0) ::_exit(127);
    }
    if (err_to_out && ::dup2(1, 2) < 0) ::_exit(127);
    if (options.search_path) {
      ::execvpe(args[0], args.data(), envp.data());
    } else {
      ::execve(args[0], args.data(), envp.data());
    }
    const int err = errno;
    (void)!::write(report, &err, sizeof err);
    ::_exit(127);
  }
  for (const int o : opened) ::close(o);
  close_fd(exec_error.write);
  Subprocess p;
  p.pid_ = pid;
  int err = 0;
  ssize_t n = 0;
  do {
    n = ::read(exec_error.read, &err, sizeof err);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof err)) {
    p.wait_exit();
    throw_errno(err, "exec " + argv[0]);
  }
  p.io_ = Channel(options.out == Stdio::pipe ? out.take_read() : -1,
                  options.in == Stdio::pipe ? in.take_write() : -1);
  return p;
}

Subprocess Subprocess::self(const std::string& role, const std::vector<std::string>& args,
                            const SpawnOptions& options) {
  std::vector<std::string> argv{self_exe(), std::string(kChildFlag) + role};
  argv.insert(argv.end(), args.begin(), args.end());
  return spawn(argv, options);
}

Subprocess Subprocess::fork(const std::function<int(Channel&)>& body, bool stdio) {
  Pipe to_child;
  Pipe from_child;
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw_errno(errno, "fork");
  if (pid == 0) {
    close_fd(to_child.write);
    close_fd(from_child.read);
    int in = to_child.take_read();
    int out = from_child.take_write();
    if (stdio) {
      if (::dup2(in, 0) < 0 || ::dup2(out, 1) < 0) ::_exit(127);
      ::close(in);
      ::close(out);
      in = 0;
      out = 1;
    }
    Channel parent(in, out);
    int code = 99;
    try {
      code = body(parent);
    } catch (...) {
      code = 99;
    }
    std::fflush(nullptr);
    ::_exit(code);  // no atexit handlers, no GoogleTest teardown in the child
  }
  Subprocess p;
  p.pid_ = pid;
  p.io_ = Channel(from_child.take_read(), to_child.take_write());
  return p;
}

Subprocess::Subprocess(Subprocess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      reaped_(std::exchange(other.reaped_, false)),
      io_(std::move(other.io_)) {}

Subprocess& Subprocess::operator=(Subprocess&& other) noexcept {
  if (this != &other) {
    cleanup();
    pid_ = std::exchange(other.pid_, -1);
    reaped_ = std::exchange(other.reaped_, false);
    io_ = std::move(other.io_);
  }
  return *this;
}

Subprocess::~Subprocess() { cleanup(); }

void Subprocess::cleanup() noexcept {
  io_.close_in();
  io_.close_out();
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    // SIGKILL cannot be caught, but a child in uninterruptible sleep (D state) ends only when its
    // I/O does: the reap is bounded too (a child still there then is left to init as a zombie).
    (void)wait_exit(kWaitLimit);
  }
  pid_ = -1;
}

std::optional<int> Subprocess::wait_exit(std::chrono::milliseconds limit) {
  if (reaped_ || pid_ <= 0) return std::nullopt;
  const auto deadline = Clock::now() + limit;
  // A pidfd becomes readable when the child ends: no polling of waitpid.
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      if (pidfd >= 0) ::close(pidfd);
      reaped_ = true;
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return -WTERMSIG(status);
      return std::nullopt;
    }
    if ((r < 0 && errno != EINTR) || Clock::now() >= deadline) {
      if (pidfd >= 0) ::close(pidfd);
      return std::nullopt;
    }
    if (pidfd >= 0) {
      pollfd pfd{pidfd, POLLIN, 0};
      (void)::poll(&pfd, 1, remaining_ms(deadline));
    } else {
      std::this_thread::sleep_for(1ms);  // no pidfd (old kernel): poll the exit
    }
  }
}

std::optional<int> Subprocess::kill(int signo) {
  if (pid_ <= 0 || reaped_) return std::nullopt;
  ::kill(pid_, signo);
  if (signo == SIGKILL) return wait_exit();
  return std::nullopt;
}

Completed run(const std::vector<std::string>& argv, const SpawnOptions& options,
              std::chrono::milliseconds limit) {
  SpawnOptions o = options;
  o.in = Stdio::null;
  const auto start = Clock::now();
  const auto deadline = start + limit;
  Completed c;
  Subprocess p = Subprocess::spawn(argv, o);
  c.out = p.read_all(limit);
  c.exit = p.wait_exit(std::chrono::duration_cast<std::chrono::milliseconds>(
      std::max<Clock::duration>(deadline - Clock::now(), Clock::duration::zero())));
  if (!c.exit) p.kill(SIGKILL);
  c.took = Clock::now() - start;
  return c;
}

pid_t dead_pid() {
  Subprocess p = Subprocess::fork([](Channel&) { return 0; });
  const pid_t pid = p.pid();
  p.wait_exit();
  return pid;
}

Completed run_shell(const std::string& command, const SpawnOptions& options,
                    std::chrono::milliseconds limit) {
  return run({"/bin/sh", "-c", command}, options, limit);
}

int shell_status(const std::optional<int>& exit) {
  if (!exit) return 128;
  return *exit >= 0 ? *exit : 128 - *exit;
}

}  // namespace locksmith::test
