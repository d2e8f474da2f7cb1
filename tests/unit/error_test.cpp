// The error category, the exception hierarchy, and bad input: every failure names the
// operation and the path, and leaves the directory as it was.
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <string>

#include "locksmith/locksmith.hpp"
#include "test_support.hpp"
#include "unit_helpers.hpp"

namespace locksmith::unit {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Category and hierarchy

TEST(ErrorCategory, NameAndMessages) {
  EXPECT_STREQ(lock_category().name(), "locksmith");
  std::set<std::string> messages;
  for (errc e :
       {errc::busy, errc::timeout, errc::not_locked, errc::lock_lost, errc::symlink_refused,
        errc::invalid_spec, errc::unsupported, errc::cancelled, errc::not_regular_file}) {
    const std::error_code ec = e;  // implicit: errc is an error code enum
    EXPECT_EQ(&ec.category(), &lock_category());
    EXPECT_FALSE(ec.message().empty());
    messages.insert(ec.message());
  }
  EXPECT_EQ(messages.size(), 9u) << "messages must tell the codes apart";
  EXPECT_EQ(make_error_code(errc::busy).message(), "already locked by someone else");
  EXPECT_EQ(std::error_code(99, lock_category()).message(), "unknown locksmith error 99");
}

TEST(ErrorCategory, DefaultErrorConditions) {
  EXPECT_EQ(make_error_code(errc::busy), std::errc::resource_unavailable_try_again);
  EXPECT_EQ(make_error_code(errc::timeout), std::errc::resource_unavailable_try_again);
  EXPECT_EQ(make_error_code(errc::invalid_spec), std::errc::invalid_argument);
  EXPECT_EQ(make_error_code(errc::unsupported), std::errc::operation_not_supported);
  EXPECT_EQ(make_error_code(errc::symlink_refused), std::errc::too_many_symbolic_link_levels);
  // Codes without a generic equivalent map to themselves only.
  for (errc e : {errc::not_locked, errc::lock_lost, errc::cancelled}) {
    const std::error_code ec = e;
    EXPECT_EQ(ec.default_error_condition().category(), lock_category());
    EXPECT_EQ(ec.default_error_condition().value(), static_cast<int>(e));
    EXPECT_NE(ec, std::errc::invalid_argument);
    EXPECT_NE(ec, std::errc::resource_unavailable_try_again);
  }
  // The mapping is one way: a generic EAGAIN is not "busy".
  EXPECT_NE(std::make_error_code(std::errc::resource_unavailable_try_again),
            make_error_code(errc::busy));
}

TEST(ErrorCategory, IsContended) {
  EXPECT_TRUE(is_contended(errc::busy));
  EXPECT_TRUE(is_contended(errc::timeout));
  EXPECT_FALSE(is_contended({}));
  EXPECT_FALSE(is_contended(errc::not_locked));
  EXPECT_FALSE(is_contended(errc::lock_lost));
  EXPECT_FALSE(is_contended(std::make_error_code(std::errc::resource_unavailable_try_again)));
  EXPECT_FALSE(is_contended(std::make_error_code(std::errc::permission_denied)));
}

template <class Expected>
void expect_throws_exactly(std::error_code ec) {
  try {
    throw_if_error(ec, "cannot frob", "/x/y");
    ADD_FAILURE() << "nothing thrown for " << ec.message();
  } catch (const LockError& e) {
    EXPECT_EQ(typeid(e), typeid(Expected)) << ec.message();
    EXPECT_EQ(e.code(), ec);
    EXPECT_EQ(e.operation(), "cannot frob");
    EXPECT_EQ(e.target(), "/x/y");
    EXPECT_EQ(std::string(e.what()), "cannot frob '/x/y': " + ec.message());
  }
}

TEST(ThrowIfError, MapsEachCodeToItsSubclass) {
  EXPECT_NO_THROW(throw_if_error({}, "cannot frob", "/x/y"));
  expect_throws_exactly<LockTimeout>(errc::timeout);
  expect_throws_exactly<AlreadyLocked>(errc::busy);
  expect_throws_exactly<NotLocked>(errc::not_locked);
  expect_throws_exactly<LockLost>(errc::lock_lost);
  expect_throws_exactly<LockError>(errc::invalid_spec);
  expect_throws_exactly<LockError>(std::make_error_code(std::errc::permission_denied));
  // A generic EAGAIN is an OS failure, not "already locked".
  expect_throws_exactly<LockError>(std::make_error_code(std::errc::resource_unavailable_try_again));
}

TEST(ThrowIfError, EmptyTargetIsLeftOut) {
  const LockError e(make_error_code(errc::busy), "cannot lock", "");
  EXPECT_EQ(std::string(e.what()), "cannot lock: already locked by someone else");
}

// ---------------------------------------------------------------------------------------------
// Bad input through the path-based locks

// Runs lock() and returns the LockError, checking its message names the operation and path.
template <class L>
std::error_code lock_error(L& l, const std::string& path) {
  try {
    l.lock();
  } catch (const LockError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot lock '" + path + "'"), std::string::npos)
        << e.what();
    EXPECT_FALSE(l.describe().held);
    return e.code();
  }
  ADD_FAILURE() << "lock() of " << path << " succeeded";
  return {};
}

TEST(BadInput, MissingDirectory) {
  test::TempDir dir;
  const fs::path path = dir / "missing" / "lock";
  for (Backend b : {Backend::flock, Backend::posix, Backend::ofd}) {
    LockOptions o;
    o.backend = b;
    FileLock l(path, o);
    EXPECT_EQ(lock_error(l, path.string()), std::errc::no_such_file_or_directory);
  }
  PidFileLock p(path);
  EXPECT_EQ(lock_error(p, path.string()), std::errc::no_such_file_or_directory);
  EXPECT_EQ(std::make_error_code(std::errc::no_such_file_or_directory),
            open_lock("fcntl:" + path.string())->acquire(LockMode::exclusive, kForever));
  EXPECT_TRUE(listing(dir.path()).empty());
}

TEST(BadInput, DirectoryWhereTheLockFileShouldBe) {
  test::TempDir dir;
  fs::create_directory(dir / "lock");
  const auto before = listing(dir.path());
  FileLock l(dir / "lock");
  EXPECT_EQ(lock_error(l, (dir / "lock").string()), std::errc::is_a_directory);
  TemporaryFileLock t(dir / "lock");
  EXPECT_EQ(lock_error(t, (dir / "lock").string()), std::errc::is_a_directory);
  EXPECT_EQ(listing(dir.path()), before);
  EXPECT_TRUE(fs::is_directory(dir / "lock"));
}

TEST(BadInput, SymlinkAtTheLockPathIsRefused) {
  test::TempDir dir;
  std::ofstream(dir / "target").put('x');
  fs::create_symlink(dir / "target", dir / "lock");
  fs::create_symlink(dir / "nowhere", dir / "dangling");
  const auto before = listing(dir.path());

  FileLock l(dir / "lock");
  const std::error_code ec = lock_error(l, (dir / "lock").string());
  EXPECT_EQ(ec, errc::symlink_refused);
  EXPECT_EQ(ec, std::errc::too_many_symbolic_link_levels);
  FileLock d(dir / "dangling");
  EXPECT_EQ(lock_error(d, (dir / "dangling").string()), errc::symlink_refused);
  EXPECT_FALSE(fs::exists(dir / "nowhere")) << "a dangling link was followed";
  EXPECT_EQ(listing(dir.path()), before);

  auto spec = open_lock("flock:" + (dir / "lock").string());
  EXPECT_EQ(spec->acquire(LockMode::exclusive, kForever), errc::symlink_refused);

  // Allowed when asked for: the lock is then on the link's target.
  LockOptions o;
  o.follow_symlinks = true;
  FileLock follow(dir / "lock", o);
  follow.lock();
  FileLock on_target(dir / "target");
  EXPECT_FALSE(on_target.try_lock());
  auto spec_follow = open_lock("flock:" + (dir / "lock").string() + "?follow_symlinks=1");
  EXPECT_FALSE(spec_follow->try_lock());
}

TEST(BadInput, SymlinkLoopInTheDirectoryIsAnOsError) {
  // ELOOP from the directory part is not "a symlink at the lock path".
  test::TempDir dir;
  fs::create_symlink(dir / "loop", dir / "loop");
  FileLock l(dir / "loop" / "lock");
  EXPECT_EQ(lock_error(l, (dir / "loop" / "lock").string()),
            std::errc::too_many_symbolic_link_levels);
  EXPECT_NE(l.acquire(LockMode::exclusive, kForever), errc::symlink_refused);
}

TEST(BadInput, PermissionDeniedAsAnUnprivilegedUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch to uid 65534";
  test::TempDir dir;
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
  const fs::path path = dir / "lock";
  const auto before = listing(dir.path());
  // The attempt runs in a child that drops to nobody (root would bypass the permissions).
  Subprocess child = Subprocess::fork([&](Channel& self) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) return 3;
    FileLock l(path);
    try {
      l.lock();
      return 1;
    } catch (const LockError& e) {
      const std::string what = e.what();
      const bool named = what.find("cannot lock '" + path.string() + "'") != std::string::npos;
      self.send(e.code() == std::errc::permission_denied ? 'A' : 'X');
      self.send(named ? 'N' : 'n');
      return 0;
    }
  });
  EXPECT_EQ(child.receive(), 'A') << "expected EACCES";
  EXPECT_EQ(child.receive(), 'N') << "message does not name the path";
  EXPECT_EQ(child.wait_exit(), 0);
  EXPECT_EQ(listing(dir.path()), before);
}

TEST(BadInput, ReadOnlyFilesystem) {
  test::TempDir dir;
  fs::create_directory(dir / "ro");
  const fs::path path = dir / "ro" / "lock";
  // A private mount namespace in a child keeps the read-only bind mount from leaking out.
  Subprocess child = Subprocess::fork([&](Channel& self) {
    if (::unshare(CLONE_NEWNS) != 0 ||
        ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount((dir / "ro").c_str(), (dir / "ro").c_str(), nullptr, MS_BIND, nullptr) != 0 ||
        ::mount(nullptr, (dir / "ro").c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY,
                nullptr) != 0) {
      self.send('S');  // the environment cannot do it
      return 0;
    }
    FileLock l(path);
    try {
      l.lock();
      self.send('1');
    } catch (const LockError& e) {
      const bool named =
          std::string(e.what()).find("cannot lock '" + path.string() + "'") != std::string::npos;
      self.send(e.code() == std::errc::read_only_file_system ? 'R' : 'X');
      self.send(named ? 'N' : 'n');
    }
    return 0;
  });
  const auto first = child.receive();
  if (first == 'S') GTEST_SKIP() << "cannot make a read-only bind mount here (no CAP_SYS_ADMIN?)";
  EXPECT_EQ(first, 'R') << "expected EROFS";
  EXPECT_EQ(child.receive(), 'N') << "message does not name the path";
  EXPECT_EQ(child.wait_exit(), 0);
  EXPECT_TRUE(listing(dir / "ro").empty());
}

TEST(BadInput, UnlockOfAnUnlockedLockNamesThePath) {
  test::TempDir dir;
  FileLock l(dir / "lock");
  try {
    l.unlock();
    ADD_FAILURE();
  } catch (const NotLocked& e) {
    EXPECT_EQ(std::string(e.what()), "cannot unlock '" + (dir / "lock").string() + "': not locked");
  }
  EXPECT_TRUE(listing(dir.path()).empty());
}

TEST(BadInput, NonBlockingWithoutAModeTouchesNothing) {
  test::TempDir dir;
  const int fd = ::open((dir / "f").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(lock(fd, LockFlags::non_blocking), std::errc::invalid_argument);
  const int other = ::open((dir / "f").c_str(), O_RDWR | O_CLOEXEC);
  EXPECT_FALSE(lock(other, LockFlags::exclusive | LockFlags::non_blocking)) << "a lock was taken";
  ::close(fd);
  ::close(other);
}

}  // namespace
}  // namespace locksmith::unit
