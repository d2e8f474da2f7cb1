// The unit test binary's main: GoogleTest, or a child mode when re-executed by a test
// (`--locksmith-child=MODE`, run_self()), for behaviour that is fixed once per process such as
// wake_signal().
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "locksmith/error.hpp"
#include "locksmith/lock.hpp"
#include "subprocess.hpp"
#include "test_support.hpp"
#include "unit_helpers.hpp"

namespace locksmith::unit {
namespace {

int fail(const char* what) {
  std::fprintf(stderr, "child mode failed: %s\n", what);
  return 1;
}

// Checks wake_signal() against $LOCKSMITH_UNIT_EXPECT_SIGNAL ("rtmax-3" or a number), then
// that timed waits work with whatever mechanism that leaves: a timeout waits at least its
// deadline, and a waiter is granted the lock once the holder releases it.
int wake_signal_mode() {
  const char* expect = std::getenv("LOCKSMITH_UNIT_EXPECT_SIGNAL");
  if (expect == nullptr) return fail("LOCKSMITH_UNIT_EXPECT_SIGNAL not set");
  const int expected =
      std::string(expect) == "rtmax-3" ? SIGRTMAX - 3 : std::atoi(expect);  // NOLINT
  if (wake_signal() != expected) {
    std::fprintf(stderr, "wake_signal() = %d, expected %d\n", wake_signal(), expected);
    return 2;
  }
  test::TempDir dir;
  const std::string path = (dir / "lock").string();
  const int holder = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  const int waiter = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (holder < 0 || waiter < 0) return fail("open");
  if (lock(holder, LockFlags::exclusive | LockFlags::non_blocking)) return fail("first lock");

  const auto start = Clock::now();
  const auto ec = lock_until(waiter, LockMode::exclusive, Backend::flock,
                             start + std::chrono::milliseconds(100));
  if (ec != errc::timeout) return fail("timed wait did not time out");
  if (Clock::now() - start < std::chrono::milliseconds(100)) return fail("timed out early");

  int ready[2];
  if (::pipe(ready) != 0) return fail("pipe");
  std::error_code granted = make_error_code(errc::busy);
  std::thread t([&] {
    const char c = 'w';
    (void)::write(ready[1], &c, 1);
    granted = lock_until(waiter, LockMode::exclusive, Backend::flock, Clock::now() + kWaitLimit);
  });
  char c = 0;
  if (::read(ready[0], &c, 1) != 1) return fail("read");
  unlock(holder);
  t.join();
  if (granted) return fail("waiter was not granted the lock after the release");
  ::close(holder);
  ::close(waiter);
  return 0;
}

}  // namespace

int run_child_mode(const std::string& mode) {
  if (mode == "wake-signal") return wake_signal_mode();
  return fail("unknown child mode");
}

}  // namespace locksmith::unit

int main(int argc, char** argv) {
  if (const auto mode = locksmith::test::child_role(argc, argv)) {
    return locksmith::unit::run_child_mode(*mode);
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
