// Interop tests: LinkLock and Debian's python3-flufl.lock (5.0.1) exclude each other on the same
// lock file, read each other's claims, and break each other's expired locks.
//
// The Python side is flufl_peer.py run by /usr/bin/python3 in its own process; it prints result
// lines and obeys commands on stdin. Expired locks are made by setting the lock file's mtime into
// the past (flufl's clock slop is fixed at 10 s), so no test waits for a lifetime to pass.
// A missing python3-flufl.lock makes the tests fail (never skip), naming the Debian package.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <sstream>
#include <string>
#include <vector>

#include "link_test_util.hpp"
#include "locksmith/link_lock.hpp"
#include "subprocess.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using locksmith::Clock;
using locksmith::errc;
using locksmith::LinkDetails;
using locksmith::LinkLock;
using locksmith::LinkLockOptions;
using locksmith::LinkState;
using locksmith::test::TempDir;
namespace lt = locksmith::linktest;
using locksmith::test::Channel;
using locksmith::test::Subprocess;

constexpr const char* kPython = LOCKSMITH_LINK_PYTHON;
constexpr const char* kPeer = LOCKSMITH_LINK_PY_PEER;

std::vector<std::string> words(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

struct PyHolder {
  std::string host;
  long pid = 0;
  std::string claim;
};

// Starts a Python holder of `path`; fails the test unless it reports LOCKED.
void start_py_holder(Subprocess& py, const fs::path& path, int lifetime, PyHolder& out) {
  ASSERT_NO_THROW(
      py = Subprocess::spawn({kPython, kPeer, "hold", path.string(), std::to_string(lifetime)}));
  const std::string line = py.read_line().value_or("(no answer)");
  const auto w = words(line);
  ASSERT_TRUE(w.size() == 4 && w[0] == "LOCKED")
      << "python peer: " << line << " (is Debian's python3-flufl.lock installed?)";
  out = PyHolder{w[1], std::stol(w[2]), w[3]};
}

TEST(LinkLockInterop, HostnameIsPythonsGetfqdn) {
  Subprocess py;
  ASSERT_NO_THROW(py = Subprocess::spawn({kPython, kPeer, "info"}));
  const std::string line = py.read_line().value_or("");
  ASSERT_EQ(line.rfind("INFO ", 0), 0u) << line;
  EXPECT_EQ(locksmith::link_lock_hostname(), line.substr(5));
}

TEST(LinkLockInterop, PythonHoldsCppTimesOutAndReadsItsClaim) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  Subprocess py;
  PyHolder h;
  ASSERT_NO_FATAL_FAILURE(start_py_holder(py, path, 15, h));
  EXPECT_EQ(h.pid, static_cast<long>(py.pid()));
  LinkLock lock(path);
  const auto t0 = Clock::now();
  EXPECT_FALSE(lock.try_lock_for(300ms));
  EXPECT_GE(Clock::now() - t0, 300ms);
  const auto d = lock.details();
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(*d, (LinkDetails{h.host, h.pid, path.string()}));
  EXPECT_EQ(h.host, lock.hostname());
  EXPECT_EQ(lock.state(), LinkState::unknown);  // our host, a live process that is not us
  // Python's claim has the same byte format as ours.
  EXPECT_EQ(lt::read_file(path), h.claim);
  EXPECT_EQ(lt::read_file(h.claim), h.claim);
  EXPECT_EQ(lt::stat_of(path).st_nlink, 2u);
  EXPECT_EQ(lt::stat_of(path).st_mtim.tv_nsec, 0);
  // Released by Python: we get it.
  ASSERT_TRUE(py.send("release"));
  ASSERT_EQ(py.read_line().value_or(""), "RELEASED");
  EXPECT_FALSE(fs::exists(h.claim));
  ASSERT_TRUE(lock.try_lock_for(5s));
  lock.unlock();
}

TEST(LinkLockInterop, CppWaiterWakesWhenPythonReleases) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  Subprocess py;
  PyHolder h;
  ASSERT_NO_FATAL_FAILURE(start_py_holder(py, path, 15, h));
  Subprocess waiter;
  ASSERT_NO_THROW(waiter = Subprocess::fork([&](Channel& parent) {
                    LinkLock lock(path);
                    parent.send("WAITING");
                    const bool got = lock.try_lock_for(15s);
                    parent.send(got ? "GOT" : "TIMEOUT");
                    return 0;
                  }));
  ASSERT_EQ(waiter.read_line().value_or(""), "WAITING");
  EXPECT_FALSE(waiter.read_line(200ms).has_value());  // still waiting while Python holds
  ASSERT_TRUE(py.send("release"));
  ASSERT_EQ(py.read_line().value_or(""), "RELEASED");
  EXPECT_EQ(waiter.read_line(10s).value_or(""), "GOT");
}

TEST(LinkLockInterop, CppHoldsPythonTimesOutAndReadsOurClaim) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  LinkLock lock(path);
  lock.lock();
  Subprocess py;
  ASSERT_NO_THROW(py = Subprocess::spawn({kPython, kPeer, "try", path.string(), "0.5", "15"}));
  EXPECT_EQ(py.read_line().value_or(""), "TIMEOUT");
  const auto details = words(py.read_line().value_or(""));
  ASSERT_EQ(details.size(), 4u);
  EXPECT_EQ(details[0], "DETAILS");
  EXPECT_EQ(details[1], lock.hostname());
  EXPECT_EQ(details[2], std::to_string(::getpid()));
  EXPECT_EQ(details[3], path.string());
  EXPECT_EQ(py.read_line().value_or(""), "STATE unknown");
  EXPECT_EQ(py.read_line().value_or(""),
            "EXPIRATION " + std::to_string(lt::stat_of(path).st_mtim.tv_sec));
  // flufl removed its own claim on timeout and left ours alone.
  EXPECT_EQ(lt::claim_files(dir.path(), "res.lock").size(), 1u);
  EXPECT_TRUE(lock.is_locked());
  lock.unlock();
}

// A sub-second lifetime is kept exactly, and flufl reads it so: its expiration (st_mtime as a
// float) is ours to the microsecond, not a whole second. (Debian's flufl.lock 5.0.1 writes its
// own expiries truncated to whole seconds, time.mktime of a timetuple; we read those as they are.)
TEST(LinkLockInterop, PythonReadsOurSubSecondExpiry) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  LinkLockOptions o;
  o.lifetime = 1500ms;
  LinkLock lock(path, o);
  const auto now_us = [] {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  const long long before = now_us();
  lock.lock();
  const long long after = now_us();
  const auto st = lt::stat_of(path);
  const long long ours_us =
      (static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec + 500) / 1000;
  Subprocess py;
  ASSERT_NO_THROW(py = Subprocess::spawn({kPython, kPeer, "expiration", path.string()}));
  const auto w = words(py.read_line().value_or(""));
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0], "EXPIRATION_US");
  EXPECT_NEAR(static_cast<double>(std::stoll(w[1])), static_cast<double>(ours_us), 1.0);
  // ... and it is the lifetime exactly: not truncated to the second (up to 1 s early).
  EXPECT_GE(std::stoll(w[1]), before + 1500000 - 1);
  EXPECT_LE(std::stoll(w[1]), after + 1500000 + 1);
  lock.unlock();
}

TEST(LinkLockInterop, PythonBreaksOurExpiredLock) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  LinkLock lock(path);
  lock.lock();
  const std::string our_claim = lock.claim_path();
  ASSERT_TRUE(lt::set_mtime(path, lt::now_seconds() - 60));  // expired beyond flufl's 10 s slop
  Subprocess py;
  ASSERT_NO_THROW(py = Subprocess::spawn({kPython, kPeer, "try", path.string(), "10", "15"}));
  const auto w = words(py.read_line().value_or(""));
  ASSERT_TRUE(w.size() == 4 && w[0] == "LOCKED");
  EXPECT_EQ(lt::read_file(path), w[3]);
  EXPECT_FALSE(fs::exists(our_claim));  // flufl removed the old winner's claim
  EXPECT_FALSE(lock.is_locked());
  EXPECT_EQ(lock.release(), make_error_code(errc::lock_lost));
  EXPECT_EQ(lt::read_file(path), w[3]);  // Python's lock is untouched
  ASSERT_TRUE(py.send("is_locked"));
  EXPECT_EQ(py.read_line().value_or(""), "1");
  ASSERT_TRUE(py.send("release"));
  EXPECT_EQ(py.read_line().value_or(""), "RELEASED");
  EXPECT_FALSE(fs::exists(path));
}

TEST(LinkLockInterop, CppBreaksPythonsExpiredLock) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  Subprocess py;
  PyHolder h;
  ASSERT_NO_FATAL_FAILURE(start_py_holder(py, path, 1, h));
  ASSERT_TRUE(lt::set_mtime(path, lt::now_seconds() - 60));
  LinkLock lock(path);  // default 10 s slop, like flufl's
  EXPECT_EQ(lock.state(), LinkState::theirs_expired);
  ASSERT_TRUE(lock.try_lock_for(5s));
  EXPECT_EQ(lt::read_file(path), lock.claim_path());
  EXPECT_FALSE(fs::exists(h.claim));  // we removed the old winner's claim
  ASSERT_TRUE(py.send("is_locked"));
  EXPECT_EQ(py.read_line().value_or(""), "0");
  ASSERT_TRUE(py.send("release"));
  EXPECT_EQ(py.read_line().value_or(""), "ERROR NotLockedError");
  EXPECT_EQ(lt::read_file(path), lock.claim_path());  // Python left our lock alone
  lock.unlock();
}

// A crashed holder at a path containing '|' (a claim of more than four fields): flufl.lock 5.x
// breaks ours, and we break flufl's.
TEST(LinkLockInterop, PythonBreaksOurCrashedLockAtPathWithSeparator) {
  TempDir dir;
  fs::create_directory(dir / "d|ir");
  const fs::path path = dir / "d|ir" / "re|s.lock";
  Subprocess holder;
  ASSERT_NO_THROW(holder = Subprocess::fork([&](Channel& parent) {
                    LinkLock lock(path);
                    if (!lock.try_lock()) return 2;
                    parent.send("LOCKED " + lock.claim_path());
                    ::_exit(0);  // a crash: no release, no destructor
                  }));
  const auto line = holder.read_line().value_or("");
  ASSERT_EQ(line.rfind("LOCKED ", 0), 0u) << line;
  const std::string dead_claim = line.substr(7);
  ASSERT_TRUE(holder.wait_exit().has_value());
  ASSERT_TRUE(lt::set_mtime(path, lt::now_seconds() - 60));  // expired beyond flufl's 10 s slop
  Subprocess py;
  ASSERT_NO_THROW(py = Subprocess::spawn({kPython, kPeer, "try", path.string(), "10", "15"}));
  const auto w = words(py.read_line().value_or(""));
  ASSERT_TRUE(w.size() == 4 && w[0] == "LOCKED") << "flufl did not break it";
  EXPECT_EQ(lt::read_file(path), w[3]);
  EXPECT_FALSE(fs::exists(dead_claim));
  ASSERT_TRUE(py.send("release"));
  EXPECT_EQ(py.read_line().value_or(""), "RELEASED");
  EXPECT_FALSE(fs::exists(path));
}

TEST(LinkLockInterop, CppBreaksPythonsCrashedLockAtPathWithSeparator) {
  TempDir dir;
  fs::create_directory(dir / "d|ir");
  const fs::path path = dir / "d|ir" / "re|s.lock";
  Subprocess py;
  PyHolder h;
  ASSERT_NO_FATAL_FAILURE(start_py_holder(py, path, 1, h));
  py.kill(SIGKILL);  // a crash: the lock and its claim stay
  ASSERT_TRUE(fs::exists(h.claim));
  LinkLock lock(path);
  const auto d = lock.details();
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(*d, (LinkDetails{h.host, h.pid, path.string()}));
  EXPECT_FALSE(lock.try_lock());  // not yet expired + 10 s slop
  ASSERT_TRUE(lt::set_mtime(path, lt::now_seconds() - 60));
  ASSERT_TRUE(lock.try_lock_for(5s));
  EXPECT_EQ(lt::read_file(path), lock.claim_path());
  EXPECT_FALSE(fs::exists(h.claim));
  lock.unlock();
}

}  // namespace
