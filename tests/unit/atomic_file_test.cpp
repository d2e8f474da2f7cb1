// AtomicFile / open_atomic.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "locksmith/atomic_file.hpp"
#include "locksmith/error.hpp"
#include "test_support.hpp"
#include "unit_helpers.hpp"

namespace locksmith::unit {
namespace {

namespace fs = std::filesystem;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

TEST(AtomicFile, CommitPublishesAndLeavesNoTemp) {
  test::TempDir dir;
  auto f = AtomicFile::create(dir / "out");
  EXPECT_TRUE(f.active());
  EXPECT_GE(f.native(), 0);
  EXPECT_EQ(f.destination(), dir / "out");
  EXPECT_EQ(f.temp_path().parent_path(), dir.path()) << "temp must be in the same directory";
  const std::string temp_name = f.temp_path().filename().string();
  EXPECT_EQ(temp_name.rfind(".out.", 0), 0u) << temp_name;
  EXPECT_EQ(temp_name.substr(temp_name.size() - 4), ".tmp");
  EXPECT_TRUE(fs::exists(f.temp_path()));
  EXPECT_FALSE(fs::exists(dir / "out")) << "published before commit";
  f.write("hello ");
  const std::string bytes = "world";
  EXPECT_FALSE(f.write(std::as_bytes(std::span(bytes.data(), bytes.size()))));
  f.commit();
  EXPECT_FALSE(f.active());
  EXPECT_EQ(read_file(dir / "out"), "hello world");
  EXPECT_EQ(listing(dir.path()), std::set<std::string>{"out"});
}

TEST(AtomicFile, NoClobberRefusesAnExistingDestination) {
  test::TempDir dir;
  write_file(dir / "out", "original");
  auto f = AtomicFile::create(dir / "out");
  f.write("new");
  EXPECT_EQ(f.commit(std::nothrow), std::errc::file_exists);
  EXPECT_EQ(read_file(dir / "out"), "original");
  try {
    f.commit();
    ADD_FAILURE() << "commit overwrote";
  } catch (const LockError& e) {
    EXPECT_EQ(e.code(), std::errc::file_exists);
    EXPECT_NE(std::string(e.what()).find("'" + (dir / "out").string() + "'"), std::string::npos)
        << e.what();
  }
  f.discard();
  EXPECT_EQ(read_file(dir / "out"), "original");
  EXPECT_EQ(listing(dir.path()), std::set<std::string>{"out"});
}

TEST(AtomicFile, ReplaceOverwrites) {
  test::TempDir dir;
  write_file(dir / "out", "original");
  AtomicOptions o;
  o.publish = Publish::replace;
  open_atomic(
      dir / "out", [](AtomicFile& f) { f.write("replaced"); }, o);
  EXPECT_EQ(read_file(dir / "out"), "replaced");
  EXPECT_EQ(listing(dir.path()), std::set<std::string>{"out"});
}

TEST(AtomicFile, FailedRenameKeepsTheTempUntilDiscard) {
  test::TempDir dir;
  fs::create_directories(dir / "out" / "child");  // rename over a non-empty directory fails
  AtomicOptions o;
  o.publish = Publish::replace;
  auto f = AtomicFile::create(dir / "out", o);
  EXPECT_TRUE(f.commit(std::nothrow));
  EXPECT_TRUE(f.active());
  f.discard();
  EXPECT_EQ(listing(dir.path()), std::set<std::string>{"out"});
}

TEST(AtomicFile, DestructorAndDiscardRemoveTheTemp) {
  test::TempDir dir;
  {
    auto f = AtomicFile::create(dir / "out");
    f.write("never published");
    EXPECT_EQ(listing(dir.path()).size(), 1u);
  }
  EXPECT_TRUE(listing(dir.path()).empty());
  auto g = AtomicFile::create(dir / "out");
  g.discard();
  EXPECT_FALSE(g.active());
  g.discard();  // idempotent
  EXPECT_TRUE(listing(dir.path()).empty());
}

TEST(AtomicFile, ExceptionInCallbackLeavesNothing) {
  test::TempDir dir;
  EXPECT_THROW(open_atomic(dir / "out",
                           [](AtomicFile& f) {
                             f.write("partial");
                             throw std::runtime_error("boom");
                           }),
               std::runtime_error);
  EXPECT_TRUE(listing(dir.path()).empty());
}

TEST(AtomicFile, PermissionsAreApplied) {
  test::TempDir dir;
  AtomicOptions o;
  o.permissions = 0640;
  open_atomic(
      dir / "out", [](AtomicFile& f) { f.write("x"); }, o);
  struct stat st {};
  ASSERT_EQ(::stat((dir / "out").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u & ~current_umask());
}

TEST(AtomicFile, WriteAndCommitAfterCommitFail) {
  test::TempDir dir;
  auto f = AtomicFile::create(dir / "out");
  f.write("once");
  f.commit();
  EXPECT_THROW(f.write("twice"), LockError);
  const std::string bytes = "x";
  EXPECT_EQ(f.write(std::as_bytes(std::span(bytes.data(), bytes.size()))), errc::not_locked);
  EXPECT_EQ(f.commit(std::nothrow), errc::not_locked);
  EXPECT_THROW(f.commit(), LockError);
  EXPECT_EQ(read_file(dir / "out"), "once");
}

TEST(AtomicFile, MoveTransfersOwnership) {
  test::TempDir dir;
  auto a = AtomicFile::create(dir / "a");
  const fs::path temp_a = a.temp_path();
  AtomicFile moved(std::move(a));
  EXPECT_FALSE(a.active());  // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(moved.active());
  auto b = AtomicFile::create(dir / "b");
  const fs::path temp_b = b.temp_path();
  b = std::move(moved);  // discards b's temp
  EXPECT_FALSE(fs::exists(temp_b));
  EXPECT_TRUE(fs::exists(temp_a));
  b.write("A");
  b.commit();
  EXPECT_EQ(read_file(dir / "a"), "A");
  EXPECT_EQ(listing(dir.path()), std::set<std::string>{"a"});
}

TEST(AtomicFile, WithoutSync) {
  test::TempDir dir;
  AtomicOptions o;
  o.sync = false;
  open_atomic(
      dir / "out", [](AtomicFile& f) { f.write("fast"); }, o);
  EXPECT_EQ(read_file(dir / "out"), "fast");
}

TEST(AtomicFile, RelativeDestinationInTheCurrentDirectory) {
  test::TempDir dir;
  const fs::path old = fs::current_path();
  fs::current_path(dir.path());
  open_atomic("out", [](AtomicFile& f) { f.write("here"); });
  fs::current_path(old);
  EXPECT_EQ(read_file(dir / "out"), "here");
  EXPECT_EQ(listing(dir.path()), std::set<std::string>{"out"});
}

TEST(AtomicFile, BadDestinations) {
  test::TempDir dir;
  std::error_code ec;
  auto f = AtomicFile::create(dir / "missing" / "out", {}, ec);
  EXPECT_EQ(ec, std::errc::no_such_file_or_directory);
  EXPECT_FALSE(f.active());
  try {
    (void)AtomicFile::create(dir / "missing" / "out");
    ADD_FAILURE() << "created in a missing directory";
  } catch (const LockError& e) {
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
    EXPECT_NE(std::string(e.what()).find("'" + (dir / "missing" / "out").string() + "'"),
              std::string::npos)
        << e.what();
  }
  (void)AtomicFile::create(dir.path() / "", {}, ec);  // names a directory, not a file
  EXPECT_EQ(ec, std::errc::is_a_directory);
  EXPECT_TRUE(listing(dir.path()).empty());
}

}  // namespace
}  // namespace locksmith::unit
