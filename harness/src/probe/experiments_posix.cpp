// The semantics experiments of `locksmith probe` (POSIX) and probe_semantics(), which runs them.
// Each experiment works in a scratch directory with competing processes (child_posix.cpp) and
// yields one fact, or "error: ..." when it could not decide. See fs_probe.hpp.
#include <fcntl.h>
#include <stdlib.h>  // mkdtemp
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "locksmith/auto_lock.hpp"
#include "locksmith/unique_fd.hpp"
#include "probe_internal.hpp"

namespace locksmith::harness::probe {

std::filesystem::path make_probe_directory(const std::filesystem::path& dir) {
  std::string templ = (dir / ".locksmith-probe-XXXXXX").string();
  if (::mkdtemp(templ.data()) == nullptr) {
    const int err = errno;
    throw std::system_error(err, std::generic_category(),
                            "cannot create a scratch directory in '" + dir.string() + "'");
  }
  return templ;
}

namespace {

// ---------------------------------------------------------------------------------------------
// The scratch directory and its two views.

class Lab {
 public:
  Lab(const std::filesystem::path& dir, const SemanticsOptions& options)
      : options_(options), local_(make_probe_directory(dir)), remote_(local_) {}
  ~Lab() {
    std::error_code ec;
    std::filesystem::remove_all(local_, ec);
  }
  Lab(const Lab&) = delete;
  Lab& operator=(const Lab&) = delete;

  void use_peer(const std::filesystem::path& peer_scratch) { remote_ = peer_scratch; }
  bool has_peer() const { return remote_ != local_; }
  const std::filesystem::path& scratch() const { return local_; }
  milliseconds timeout() const { return options_.reply_timeout; }
  const SemanticsOptions& options() const { return options_; }

  // A file name in the scratch directory, as this process sees it ...
  std::string local(const std::string& name) const { return (local_ / name).string(); }
  // ... and as the competing process sees it (through the peer mount when there is one).
  std::string remote(const std::string& name) const { return (remote_ / name).string(); }
  // Where the competing process is, for details.
  std::string where() const { return has_peer() ? " through the peer mount" : ""; }

 private:
  SemanticsOptions options_;
  std::filesystem::path local_;
  std::filesystem::path remote_;
};

UniqueFd open_file(const std::string& path, int flags = O_RDWR | O_CREAT) {
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC, 0644));
  if (!fd) fail("cannot open '" + path + "'", errno);
  return fd;
}

// A competing process: opens `path` and, on each request, tries a non-blocking exclusive lock
// of `kind`, releases it at once if it got it, and answers 0 or the errno.
Child spawn_tester(const Lab& lab, const std::string& path, Kind kind) {
  const char* p = path.c_str();
  Child child(
      [p, kind](int sock) {
        const int fd = ::open(p, O_RDWR | O_CLOEXEC);
        if (!child_write(sock, fd < 0 ? errno : 0) || fd < 0) return 1;
        return serve(sock, [fd, kind](std::int32_t) {
          const int r = try_lock(fd, kind);
          if (r == 0) unlock(fd, kind);
          return r;
        });
      },
      lab.timeout());
  if (const int err = child.receive(); err != 0) {
    fail("competing process cannot open '" + path + "'", err);
  }
  return child;
}

std::string describe_attempt(int err) {
  if (err == 0) return "got it";
  return (is_busy(err) ? "was refused (" : "failed (") + error_text(err) + ")";
}

// The lock must be held now: a competing process must find it busy, else nothing can be learnt.
void expect_busy(int err, Kind kind, const Lab& lab) {
  if (is_busy(err)) return;
  if (err == 0) {
    throw NotApplicable(std::string("a competing process") + lab.where() + " got an " +
                        kind_name(kind) + " lock that was held: " + kind_name(kind) +
                        " locks do not exclude it at all here");
  }
  fail(std::string("competing ") + kind_name(kind) + " lock attempt failed", err);
}

void expect_locked(int err, Kind kind, const std::string& what) {
  if (err != 0) fail(std::string(kind_name(kind)) + " lock " + what, err);
}

Fact yes_no(std::string name, bool yes, std::string detail) {
  return {std::move(name), yes ? "yes" : "no", std::move(detail)};
}

// ---------------------------------------------------------------------------------------------
// The experiments.

Fact lock_supported(const Lab& lab, Kind kind) {
  const std::string name = std::string(kind_name(kind)) + "_supported";
  UniqueFd fd = open_file(lab.local(name));
  const int err = try_lock(fd.get(), kind);
  if (err == 0) {
    unlock(fd.get(), kind);
    return {name, "yes",
            std::string("a non-blocking exclusive ") + kind_name(kind) +
                " lock on a fresh file was granted"};
  }
#if !defined(F_OFD_SETLK)
  if (kind == Kind::ofd) return {name, "no", "open file description locks do not exist here"};
#endif
  if (is_unsupported(err)) {
    return {name, "no",
            std::string("a non-blocking exclusive ") + kind_name(kind) +
                " lock on a fresh file failed: " + error_text(err)};
  }
  fail(std::string(kind_name(kind)) + " lock on a fresh file", err);
}

// What `auto:` locks use here: the first mechanism AutoLock finds working on this filesystem.
Fact auto_mechanism(const Lab& lab) {
  const std::string path = lab.local("auto");
  AutoLock lock(path);
  const std::error_code ec = lock.acquire(LockMode::exclusive, Clock::time_point::min());
  if (ec) {
    return {"auto_mechanism", "none", "AutoLock found no working mechanism: " + ec.message()};
  }
  const std::string chosen = lock.describe().mechanism;
  (void)lock.release();
  return {"auto_mechanism", chosen,
          "auto: locks use " + chosen + " here (tried in order: flock, fcntl, link)"};
}

Fact close_any_fd_drops_fcntl(const Lab& lab) {
  const std::string f = "close-any-fd";
  open_file(lab.local(f));
  Child tester = spawn_tester(lab, lab.remote(f), Kind::fcntl);
  UniqueFd fd1 = open_file(lab.local(f));
  expect_locked(try_lock(fd1.get(), Kind::fcntl), Kind::fcntl, "through fd1");
  expect_busy(tester.ask(kGo), Kind::fcntl, lab);
  UniqueFd fd2 = open_file(lab.local(f));
  fd2.reset();
  const int after = tester.ask(kGo);
  if (after != 0 && !is_busy(after)) fail("competing fcntl lock attempt failed", after);
  return yes_no("close_any_fd_drops_fcntl", after == 0,
                "process held an fcntl lock through fd1, opened and closed fd2 on the same file; "
                "a competing process" +
                    lab.where() + " then " + describe_attempt(after));
}

Fact flock_fcntl_interact(const Lab& lab) {
  const std::string f = "flock-fcntl";
  open_file(lab.local(f));
  Child fcntl_tester = spawn_tester(lab, lab.remote(f), Kind::fcntl);
  Child flock_tester = spawn_tester(lab, lab.remote(f), Kind::flock);
  UniqueFd fd = open_file(lab.local(f));

  expect_locked(try_lock(fd.get(), Kind::flock), Kind::flock, "of the holder");
  expect_busy(flock_tester.ask(kGo), Kind::flock, lab);
  const int fcntl_vs_flock = fcntl_tester.ask(kGo);
  expect_locked(unlock(fd.get(), Kind::flock), Kind::flock, "release");
  if (fcntl_vs_flock != 0 && !is_busy(fcntl_vs_flock)) {
    fail("competing fcntl lock attempt failed", fcntl_vs_flock);
  }

  // The other direction, for the detail: does a held fcntl lock block another process's flock?
  expect_locked(try_lock(fd.get(), Kind::fcntl), Kind::fcntl, "of the holder");
  expect_busy(fcntl_tester.ask(kGo), Kind::fcntl, lab);
  const int flock_vs_fcntl = flock_tester.ask(kGo);
  unlock(fd.get(), Kind::fcntl);

  return yes_no("flock_fcntl_interact", is_busy(fcntl_vs_flock),
                "while one process held an flock, another process" + lab.where() +
                    " trying an fcntl lock " + describe_attempt(fcntl_vs_flock) +
                    "; while it held an fcntl lock, an flock attempt " +
                    describe_attempt(flock_vs_fcntl));
}

Fact flock_shared_across_fork(const Lab& lab) {
  const std::string f = "flock-fork";
  open_file(lab.local(f));
  // The tester is forked first so that it never holds a copy of the locked descriptor.
  Child tester = spawn_tester(lab, lab.remote(f), Kind::flock);
  UniqueFd fd = open_file(lab.local(f));
  expect_locked(try_lock(fd.get(), Kind::flock), Kind::flock, "of the parent");
  // If the held flock does not keep the tester out to begin with, its vanishing proves nothing.
  expect_busy(tester.ask(kGo), Kind::flock, lab);
  const int inherited = fd.get();
  Child holder(
      [inherited](int sock) {
        return serve(sock, [inherited](std::int32_t) { return unlock(inherited, Kind::flock); });
      },
      lab.timeout());
  fd.reset();  // the parent's only descriptor; the child still has its inherited copy
  const int after_close = tester.ask(kGo);
  if (after_close == 0) {
    return {"flock_shared_across_fork", "no",
            "the flock vanished when the parent closed its descriptor although a forked child "
            "still had the inherited copy"};
  }
  expect_busy(after_close, Kind::flock, lab);
  if (const int err = holder.ask(kGo); err != 0) fail("child's flock(LOCK_UN)", err);
  const int after_unlock = tester.ask(kGo);
  if (after_unlock != 0 && !is_busy(after_unlock)) {
    fail("competing flock attempt failed", after_unlock);
  }
  return yes_no("flock_shared_across_fork", after_unlock == 0,
                "the flock outlived the parent's close (the forked child still had the "
                "descriptor); after the child's unlock a competing process" +
                    lab.where() + " " + describe_attempt(after_unlock));
}

Fact two_opens_conflict(const Lab& lab, Kind kind) {
  const std::string name = std::string("two_opens_conflict_") + kind_name(kind);
  const std::string f = "two-opens-" + std::string(kind_name(kind));
  UniqueFd a = open_file(lab.local(f));
  UniqueFd b = open_file(lab.remote(f));
  expect_locked(try_lock(a.get(), kind), kind, "through the first open");
  const int second = try_lock(b.get(), kind);
  if (second == 0) unlock(b.get(), kind);
  unlock(a.get(), kind);
  if (second != 0 && !is_busy(second)) fail("second lock attempt", second);
  return yes_no(name, second != 0,
                std::string("one process opened the file twice") +
                    (lab.has_peer() ? " (second open through the peer mount)" : "") + " and " +
                    kind_name(kind) + "-locked the first; locking the second " +
                    describe_attempt(second));
}

// Appends the decimal digits of `v` at `out` (async-signal-safe).
void append_decimal(char* out, std::uint32_t v) noexcept {
  char digits[16];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) *out++ = digits[--n];
  *out = '\0';
}

Fact o_excl_atomic(const Lab& lab) {
  const std::uint32_t procs = std::max<std::uint32_t>(2, lab.options().excl_processes);
  const std::uint32_t rounds = std::max<std::uint32_t>(1, lab.options().excl_rounds);
  // Odd-numbered racers create through the peer mount when there is one.
  std::vector<std::string> prefixes;
  for (std::uint32_t i = 0; i < procs; ++i) {
    prefixes.push_back(i % 2 == 1 ? lab.remote("excl.") : lab.local("excl."));
    if (prefixes.back().size() > PATH_MAX - 16) throw ExperimentError("path too long");
  }
  std::vector<Child> racers;
  racers.reserve(procs);
  for (std::uint32_t i = 0; i < procs; ++i) {
    const char* prefix = prefixes[i].c_str();
    racers.emplace_back(
        [prefix](int sock) {
          char path[PATH_MAX];
          const std::size_t len = std::strlen(prefix);
          std::memcpy(path, prefix, len + 1);
          return serve(sock, [&path, len](std::int32_t round) {
            append_decimal(path + len, static_cast<std::uint32_t>(round));
            const int fd = ::open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
            if (fd < 0) return errno;
            ::close(fd);
            return 0;
          });
        },
        lab.timeout());
  }
  std::uint32_t one = 0;
  std::uint32_t several = 0;
  std::uint32_t none = 0;
  int other_error = 0;             // the first error other than EEXIST a racer saw
  std::uint32_t other_errors = 0;  // how many times (sshfs losers get EPERM, not EEXIST)
  for (std::uint32_t r = 0; r < rounds; ++r) {
    for (auto& c : racers) c.send(static_cast<std::int32_t>(r));
    std::uint32_t winners = 0;
    for (auto& c : racers) {
      const int err = c.receive();
      if (err == 0) {
        ++winners;
      } else if (err != EEXIST) {
        if (other_error == 0) other_error = err;
        ++other_errors;
      }
    }
    if (winners == 1) {
      ++one;
    } else if (winners > 1) {
      ++several;
    } else {
      ++none;
    }
    ::unlink((lab.local("excl.") + std::to_string(r)).c_str());
  }
  // Winners are counted whatever the losers saw; only rounds nobody won because of an error
  // leave the question open.
  if (other_error != 0 && one == 0 && several == 0) fail("O_CREAT|O_EXCL", other_error);
  std::string detail = std::to_string(procs) + " processes" +
                       (lab.has_peer() ? " (half through the peer mount)" : "") +
                       " raced O_CREAT|O_EXCL on one name for " + std::to_string(rounds) +
                       " rounds: exactly one winner in " + std::to_string(one) + ", several in " +
                       std::to_string(several) + ", none in " + std::to_string(none);
  if (other_errors != 0) {
    detail += "; " + std::to_string(other_errors) + " losing attempts failed with " +
              error_text(other_error) + " instead of EEXIST";
  }
  return yes_no("o_excl_atomic", one == rounds, detail);
}

Fact link_nlink_2(const Lab& lab) {
  const std::string a = lab.local("link-a");
  const std::string b = lab.local("link-b");
  open_file(a);
  struct stat st {};
  if (lab.has_peer() && ::stat(lab.remote("link-a").c_str(), &st) != 0) {
    fail("stat through the peer mount", errno);  // also primes the peer's attribute cache
  }
  if (::link(a.c_str(), b.c_str()) != 0) {
    const int err = errno;
    if (err == EPERM || err == EOPNOTSUPP || err == ENOSYS || err == EMLINK) {
      return {"link_nlink_2", "unsupported", "link() failed: " + error_text(err)};
    }
    fail("link()", err);
  }
  if (::stat(a.c_str(), &st) != 0) fail("stat", errno);
  const auto local_nlink = static_cast<std::uint64_t>(st.st_nlink);
  std::string detail = "after link(a, b), stat(a) showed st_nlink=" + std::to_string(local_nlink);
  bool peer_ok = true;
  if (lab.has_peer()) {
    const std::string ra = lab.remote("link-a");
    if (::stat(ra.c_str(), &st) != 0) fail("stat through the peer mount", errno);
    const auto peer_nlink = static_cast<std::uint64_t>(st.st_nlink);
    detail += ", through the peer mount st_nlink=" + std::to_string(peer_nlink);
    peer_ok = peer_nlink == 2;
    if (!peer_ok) {
      UniqueFd fd = open_file(ra, O_RDONLY);
      if (::fstat(fd.get(), &st) != 0) fail("fstat through the peer mount", errno);
      detail += " (" + std::to_string(static_cast<std::uint64_t>(st.st_nlink)) +
                " after open(): a stale attribute cache)";
    }
  }
  return yes_no("link_nlink_2", local_nlink == 2 && peer_ok, detail);
}

// rename_atomic_for_readers: every version is a 16-byte header (magic, version, payload length,
// FNV-1a of the payload) followed by a payload whose length and bytes depend on the version.
constexpr std::uint32_t kVersionMagic = 0x524d534c;  // "LSMR"
constexpr std::size_t kHeader = 16;
constexpr std::size_t kMaxPayload = 8192;
constexpr std::size_t kMaxFile = kHeader + kMaxPayload;

std::uint32_t fnv1a(const unsigned char* p, std::size_t n) noexcept {
  std::uint32_t h = 2166136261u;
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 16777619u;
  return h;
}

std::size_t make_version(unsigned char* buf, std::uint32_t version) noexcept {
  const auto len =
      static_cast<std::uint32_t>(1024 + (std::size_t{version} * 997) % (kMaxPayload - 1024));
  unsigned char* payload = buf + kHeader;
  for (std::uint32_t j = 0; j < len; ++j)
    payload[j] = static_cast<unsigned char>(version * 31 + j * 7);
  const std::uint32_t header[4] = {kVersionMagic, version, len, fnv1a(payload, len)};
  std::memcpy(buf, header, sizeof header);
  return kHeader + len;
}

// The version number of a complete file, or -1 when it is not one.
std::int64_t check_version(const unsigned char* buf, std::size_t n) noexcept {
  if (n < kHeader) return -1;
  std::uint32_t header[4];
  std::memcpy(header, buf, sizeof header);
  if (header[0] != kVersionMagic || header[2] > kMaxPayload || n != kHeader + header[2]) return -1;
  if (fnv1a(buf + kHeader, header[2]) != header[3]) return -1;
  return header[1];
}

bool write_all(int fd, const unsigned char* p, std::size_t n) noexcept {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// The writer of rename_atomic_for_readers: on kGo, renames complete new versions (built in `out`
// through `tmp`) over `target` until `duration_ns` is over; then it answers with the number of
// renames (or -errno).
Child spawn_renamer(const Lab& lab, unsigned char* out, const char* tmp, const char* target,
                    std::int64_t duration_ns) {
  return Child(
      [out, tmp, target, duration_ns](int sock) {
        std::int32_t request = 0;
        if (!child_read(sock, request) || request != kGo) return 1;
        const std::int64_t end = monotonic_ns() + duration_ns;
        std::int32_t renames = 0;
        while (monotonic_ns() < end) {
          const std::size_t n = make_version(out, static_cast<std::uint32_t>(renames + 1));
          const int fd = ::open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
          if (fd < 0) return child_write(sock, -errno) ? 0 : 1;
          const bool ok = write_all(fd, out, n);
          const int err = errno;
          ::close(fd);
          if (!ok) return child_write(sock, -err) ? 0 : 1;
          if (::rename(tmp, target) != 0) return child_write(sock, -errno) ? 0 : 1;
          ++renames;
        }
        return child_write(sock, renames) ? 0 : 1;
      },
      lab.timeout());
}

// What the reader of rename_atomic_for_readers saw.
struct ReadTally {
  std::uint64_t reads = 0, complete = 0, partial = 0, enoent = 0, estale = 0, other = 0;
  std::uint64_t versions = 0;  // changes of the version seen
  std::int64_t last_version = -1;
  int other_errno = 0;

  void error(int err) {
    if (err == ENOENT) {
      ++enoent;
    } else if (err == ESTALE) {
      ++estale;
    } else {
      ++other;
      other_errno = err;
    }
  }

  // One open + read of the whole file at `path` into `buf` (one byte longer than any version).
  void read_once(const std::string& path, std::vector<unsigned char>& buf) {
    ++reads;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return error(errno);
    std::size_t n = 0;
    int err = 0;
    while (n < buf.size()) {
      const ssize_t r = ::read(fd, buf.data() + n, buf.size() - n);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) err = errno;
      if (r <= 0) break;
      n += static_cast<std::size_t>(r);
    }
    ::close(fd);
    if (err == ESTALE) {
      ++estale;
    } else if (err != 0) {
      ++other;
      other_errno = err;
    } else if (const std::int64_t v = check_version(buf.data(), n); v < 0) {
      ++partial;
    } else {
      ++complete;
      if (v != last_version) ++versions;
      last_version = v;
    }
  }

  bool clean() const {
    return partial == 0 && enoent == 0 && estale == 0 && other == 0 && complete > 0;
  }
};

Fact rename_atomic_for_readers(const Lab& lab) {
  const std::string target = lab.local("rename.target");
  const std::string tmp = lab.local("rename.tmp");
  std::vector<unsigned char> wbuf(kMaxFile);
  {
    UniqueFd fd = open_file(target, O_WRONLY | O_CREAT | O_TRUNC);
    if (!write_all(fd.get(), wbuf.data(), make_version(wbuf.data(), 0))) fail("write", errno);
  }
  const auto duration_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(lab.options().rename_duration).count();
  Child writer = spawn_renamer(lab, wbuf.data(), tmp.c_str(), target.c_str(), duration_ns);

  const std::string seen = lab.remote("rename.target");
  std::vector<unsigned char> rbuf(kMaxFile + 1);
  ReadTally t;
  std::int32_t renames = 0;
  writer.send(kGo);
  const auto deadline = Clock::now() + lab.options().rename_duration + lab.timeout();
  for (;;) {
    if (writer.receive_until(Clock::now(), renames)) break;
    if (Clock::now() > deadline) throw ExperimentError("the writer process did not finish");
    t.read_once(seen, rbuf);
  }
  if (renames < 0) fail("writer process", -renames);
  std::string detail = "a writer process renamed " + std::to_string(renames) +
                       " complete versions over the file in " +
                       std::to_string(lab.options().rename_duration.count()) +
                       " ms; a reader process" + lab.where() + " did " + std::to_string(t.reads) +
                       " open+reads: " + std::to_string(t.complete) + " complete (" +
                       std::to_string(t.versions) + " version changes seen), " +
                       std::to_string(t.partial) + " partial, " + std::to_string(t.enoent) +
                       " ENOENT, " + std::to_string(t.estale) + " ESTALE, " +
                       std::to_string(t.other) + " other errors";
  if (t.other_errno != 0) detail += " (" + error_text(t.other_errno) + ")";
  return yes_no("rename_atomic_for_readers", t.clean(), detail);
}

template <class Fn>
void run(std::vector<Fact>& facts, const std::string& name, Fn fn) {
  try {
    facts.push_back(fn());
  } catch (const NotApplicable& e) {
    facts.push_back({name, "not applicable", e.what()});
  } catch (const std::exception& e) {
    facts.push_back({name, std::string("error: ") + e.what(), "the experiment could not decide"});
  }
}

std::string random_token() {
  std::random_device rd;
  return std::to_string(rd()) + "-" + std::to_string(::getpid());
}

// Does `peer_scratch` show what was just written into `lab`'s scratch directory?
Fact check_peer(const Lab& lab, const std::filesystem::path& peer_scratch) {
  const std::string token = random_token();
  {
    std::ofstream out(lab.local("peer-marker"));
    out << token;
  }
  std::ifstream in(peer_scratch / "peer-marker");
  std::string read_back;
  std::getline(in, read_back);
  const bool same = read_back == token;
  return yes_no("peer_same_export", same,
                same ? "a file written in " + lab.scratch().string() + " reads back through " +
                           peer_scratch.string()
                     : "a file written in " + lab.scratch().string() + " is not visible as " +
                           (peer_scratch / "peer-marker").string() +
                           "; the peer directory is not a second mount of the same directory, "
                           "so the experiments ran without it");
}

std::vector<Fact> run_experiments(const std::filesystem::path& dir,
                                  const std::filesystem::path* peer_dir,
                                  const SemanticsOptions& options) {
  std::vector<Fact> facts = identity_facts(identify_filesystem(dir), "");
  utsname uts{};
  if (::uname(&uts) == 0) {
    facts.push_back(
        {"kernel", std::string(uts.sysname) + " " + uts.release + " " + uts.machine, "uname()"});
  }
  Lab lab(dir, options);
  if (peer_dir != nullptr) {
    run(facts, "peer_fs_type", [&] {
      const auto peer_facts = identity_facts(identify_filesystem(*peer_dir), "peer_");
      facts.insert(facts.end(), peer_facts.begin(), peer_facts.end() - 1);
      return peer_facts.back();
    });
    const std::filesystem::path peer_scratch = *peer_dir / lab.scratch().filename();
    run(facts, "peer_same_export", [&] {
      Fact f = check_peer(lab, peer_scratch);
      if (f.value == "yes") lab.use_peer(peer_scratch);
      return f;
    });
  }

  bool supported[3] = {false, false, false};
  for (const Kind k : {Kind::flock, Kind::fcntl, Kind::ofd}) {
    run(facts, std::string(kind_name(k)) + "_supported", [&] {
      Fact f = lock_supported(lab, k);
      supported[static_cast<int>(k)] = f.value == "yes";
      return f;
    });
  }
  // An experiment on a lock that does not work here has nothing to say.
  const auto needs = [&](const std::string& name, std::initializer_list<Kind> kinds, auto fn) {
    for (const Kind k : kinds) {
      if (!supported[static_cast<int>(k)]) {
        facts.push_back({name, "unsupported",
                         std::string(kind_name(k)) + " locks do not work here (see " +
                             kind_name(k) + "_supported)"});
        return;
      }
    }
    run(facts, name, fn);
  };
  needs("close_any_fd_drops_fcntl", {Kind::fcntl}, [&] { return close_any_fd_drops_fcntl(lab); });
  needs("flock_fcntl_interact", {Kind::flock, Kind::fcntl},
        [&] { return flock_fcntl_interact(lab); });
  needs("flock_shared_across_fork", {Kind::flock}, [&] { return flock_shared_across_fork(lab); });
  for (const Kind k : {Kind::flock, Kind::ofd, Kind::fcntl}) {
    needs(std::string("two_opens_conflict_") + kind_name(k), {k},
          [&] { return two_opens_conflict(lab, k); });
  }
  run(facts, "o_excl_atomic", [&] { return o_excl_atomic(lab); });
  run(facts, "link_nlink_2", [&] { return link_nlink_2(lab); });
  run(facts, "auto_mechanism", [&] { return auto_mechanism(lab); });
  run(facts, "rename_atomic_for_readers", [&] { return rename_atomic_for_readers(lab); });
  return facts;
}

}  // namespace
}  // namespace locksmith::harness::probe

namespace locksmith::harness {

std::vector<Fact> probe_semantics(const std::filesystem::path& dir,
                                  const std::filesystem::path* peer_dir,
                                  const SemanticsOptions& options) {
  return probe::run_experiments(dir, peer_dir, options);
}

}  // namespace locksmith::harness
