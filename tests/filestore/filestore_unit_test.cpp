// FileStore in one process: layout, publish/discard, list/move/copy/remove, name checks, errors.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>
#include <string>
#include <vector>

#include "fs_util.hpp"
#include "locksmith/error.hpp"
#include "locksmith/filestore.hpp"
#include "subprocess.hpp"
#include "test_support.hpp"

namespace {

using locksmith::FileStore;
using locksmith::LockError;
using locksmith::test::Channel;
using locksmith::test::Subprocess;
using locksmith::test::TempDir;
namespace fs = std::filesystem;

mode_t mode_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return st.st_mode;
}

std::vector<std::string> names(const std::vector<fs::path>& paths) {
  std::vector<std::string> out;
  for (const auto& p : paths) out.push_back(p.filename().string());
  return out;
}

void publish(FileStore& store, const std::string& name, const std::string& content) {
  FileStore::Writer w = store.create(name);
  w.write(content);
  w.commit();
}

TEST(FileStore, PrepareMakesTheGoceptLayout) {
  TempDir dir;
  FileStore store(dir / "store");
  store.prepare();
  for (const char* sub : {"tmp", "new", "cur"}) {
    const mode_t m = mode_of(dir / "store" / sub);
    EXPECT_TRUE(S_ISDIR(m)) << sub;
    EXPECT_EQ(m & 0700, 0700u) << sub;  // 0644 file bits -> 0755 directory bits (minus umask)
  }
  store.prepare();  // idempotent
  EXPECT_EQ(fstest::names_in(dir / "store"), (std::vector<std::string>{"cur", "new", "tmp"}));
  EXPECT_EQ(store.section_path("new"), dir / "store" / "new");
}

TEST(FileStore, PrepareReportsAMissingParentAndAFileInTheWay) {
  TempDir dir;
  FileStore deep(dir / "no" / "such" / "store");
  try {
    deep.prepare();
    FAIL() << "prepare under a missing parent succeeded";
  } catch (const LockError& e) {
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
    EXPECT_NE(std::string(e.what()).find((dir / "no" / "such" / "store").string()),
              std::string::npos)
        << e.what();
  }
  FileStore blocked(dir / "s");
  fs::create_directory(dir / "s");
  {
    FILE* f = std::fopen((dir / "s" / "new").c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fclose(f);
  }
  EXPECT_EQ(blocked.prepare(std::nothrow), std::errc::not_a_directory);
}

TEST(FileStore, CommitPublishesIntoNewAndNothingBefore) {
  TempDir dir;
  FileStore store(dir.path(), 0600);
  store.prepare();
  FileStore::Writer w = store.create("m1");
  EXPECT_TRUE(w.active());
  EXPECT_EQ(w.temp_path(), dir / "tmp" / "m1");
  w.write("hello ");
  w.write("world");
  EXPECT_EQ(fstest::names_in(dir / "tmp"), std::vector<std::string>{"m1"});
  EXPECT_TRUE(fstest::names_in(dir / "new").empty());
  w.commit();
  EXPECT_FALSE(w.active());
  EXPECT_TRUE(fstest::names_in(dir / "tmp").empty());
  EXPECT_EQ(fstest::names_in(dir / "new"), std::vector<std::string>{"m1"});
  EXPECT_EQ(store.read("m1", "new"), "hello world");
  EXPECT_EQ(mode_of(dir / "new" / "m1") & 07777, 0600u);
  EXPECT_EQ(w.commit(std::nothrow), locksmith::errc::not_locked);  // only once
}

TEST(FileStore, AbandonedWriterLeavesNothing) {
  TempDir dir;
  FileStore store(dir.path());
  store.prepare();
  {
    FileStore::Writer w = store.create("gone");
    w.write("partial");
  }
  {
    FileStore::Writer w = store.create("discarded");
    w.write("partial");
    w.discard();
    EXPECT_FALSE(w.active());
  }
  {
    FileStore::Writer a = store.create("moved");
    FileStore::Writer b = std::move(a);
    b.write("x");
    FileStore::Writer c = store.create("assigned");
    c = std::move(b);  // discards "assigned", takes over "moved"
    EXPECT_EQ(c.name(), "moved");
    EXPECT_EQ(fstest::names_in(dir / "tmp"), std::vector<std::string>{"moved"});
  }
  for (const char* sub : {"tmp", "new", "cur"}) {
    EXPECT_TRUE(fstest::names_in(dir / sub).empty()) << sub;
  }
}

TEST(FileStore, CreateAndCommitNeverReplace) {
  TempDir dir;
  FileStore store(dir.path());
  store.prepare();
  FileStore::Writer w = store.create("x");
  std::error_code ec;
  FileStore::Writer again = store.create("x", ec);
  EXPECT_EQ(ec, std::errc::file_exists);
  EXPECT_FALSE(again.active());
  w.discard();
  EXPECT_TRUE(fstest::names_in(dir / "tmp").empty());  // the failed create did not unlink it first

  publish(store, "dup", "first");
  FileStore::Writer second = store.create("dup");
  second.write("second");
  // RENAME_NOREPLACE is supported by ext4, tmpfs, xfs, btrfs: the first message survives.
  EXPECT_EQ(second.commit(std::nothrow), std::errc::file_exists);
  EXPECT_EQ(store.read("dup", "new"), "first");
  EXPECT_TRUE(second.active());
  second.discard();
  EXPECT_TRUE(fstest::names_in(dir / "tmp").empty());
}

TEST(FileStore, ListGivesSortedFullPaths) {
  TempDir dir;
  FileStore store(dir.path());
  store.prepare();
  for (const char* n : {"c", "a", "b"}) publish(store, n, n);
  const auto listed = store.list("new");
  EXPECT_EQ(listed,
            (std::vector<fs::path>{dir / "new" / "a", dir / "new" / "b", dir / "new" / "c"}));
  EXPECT_TRUE(store.list("cur").empty());
  EXPECT_TRUE(store.list("tmp").empty());
}

TEST(FileStore, MoveCopyRemove) {
  TempDir dir;
  FileStore store(dir.path());
  store.prepare();
  publish(store, "m", "payload");
  store.move("m", "new", "cur");
  EXPECT_TRUE(store.list("new").empty());
  EXPECT_EQ(store.read("m", "cur"), "payload");

  store.copy("m", "cur", "new");
  EXPECT_EQ(store.read("m", "new"), "payload");
  EXPECT_EQ(store.read("m", "cur"), "payload");
  EXPECT_TRUE(fstest::names_in(dir / "tmp").empty());  // the copy's temporary is gone

  publish(store, "other", "replaced");
  store.move("other", "new", "cur");
  store.move("m", "new", "cur");  // rename over cur/m, as gocept's os.rename
  EXPECT_EQ(store.read("m", "cur"), "payload");
  store.copy("other", "cur", "tmp");
  EXPECT_EQ(store.read("other", "tmp"), "replaced");

  store.remove("m", "cur");
  EXPECT_EQ(names(store.list("cur")), std::vector<std::string>{"other"});
  EXPECT_EQ(store.remove("m", "cur", std::nothrow), std::errc::no_such_file_or_directory);
  EXPECT_EQ(store.move("m", "new", "cur", std::nothrow), std::errc::no_such_file_or_directory);
  EXPECT_EQ(store.copy("m", "new", "cur", std::nothrow), std::errc::no_such_file_or_directory);
  try {
    store.move("m", "new", "cur");
    FAIL() << "move of a missing message succeeded";
  } catch (const LockError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find((dir / "new" / "m").string()), std::string::npos) << what;
    EXPECT_NE(what.find((dir / "cur" / "m").string()), std::string::npos) << what;
  }
}

TEST(FileStore, ClaimInOneProcess) {
  TempDir dir;
  FileStore store(dir.path());
  store.prepare();
  std::optional<std::string> none = store.claim_next("a");
  EXPECT_FALSE(none.has_value());
  for (const char* n : {"b", "a", "c", ".hidden"}) publish(store, n, n);
  EXPECT_TRUE(store.claim("b", "one"));
  EXPECT_FALSE(store.claim("b", "two"));  // already claimed
  EXPECT_FALSE(store.claim("zzz", "two"));
  EXPECT_EQ(store.claim_next("c1"), std::optional<std::string>("a"));
  EXPECT_EQ(store.claim_next("c1"), std::optional<std::string>("c"));
  EXPECT_EQ(store.claim_next("c1"), std::nullopt);
  EXPECT_EQ(names(store.list("cur")), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(names(store.list("new")), std::vector<std::string>{".hidden"});
  EXPECT_EQ(store.read("b", "cur"), "b");
}

TEST(FileStore, BadNamesNeverEscapeTheStore) {
  TempDir dir;
  FileStore store(dir / "s");
  store.prepare();
  const std::vector<std::string> bad = {
      "", ".", "..", "a/b", "../x", "/abs", std::string("a\0b", 3)};
  for (const auto& n : bad) {
    SCOPED_TRACE(testing::PrintToString(n));
    EXPECT_FALSE(FileStore::valid_name(n));
    std::error_code ec;
    FileStore::Writer w = store.create(n, ec);
    EXPECT_EQ(ec, std::errc::invalid_argument);
    EXPECT_FALSE(w.active());
    EXPECT_THROW(store.create(n), LockError);
    EXPECT_EQ(store.move(n, "new", "cur", std::nothrow), std::errc::invalid_argument);
    EXPECT_EQ(store.move("m", n, "cur", std::nothrow), std::errc::invalid_argument);
    EXPECT_EQ(store.move("m", "new", n, std::nothrow), std::errc::invalid_argument);
    EXPECT_EQ(store.copy(n, "new", "cur", std::nothrow), std::errc::invalid_argument);
    EXPECT_EQ(store.copy("m", "new", n, std::nothrow), std::errc::invalid_argument);
    EXPECT_EQ(store.remove(n, "new", std::nothrow), std::errc::invalid_argument);
    EXPECT_EQ(store.remove("m", n, std::nothrow), std::errc::invalid_argument);
    std::string out;
    EXPECT_EQ(store.read(n, "new", out), std::errc::invalid_argument);
    std::vector<fs::path> listed;
    EXPECT_EQ(store.list(n, listed), std::errc::invalid_argument);
    bool claimed = true;
    EXPECT_EQ(store.claim(n, "c", claimed), std::errc::invalid_argument);
    EXPECT_FALSE(claimed);
    EXPECT_THROW(store.claim(n, "c"), LockError);
    EXPECT_THROW(store.move(n, "new", "cur"), LockError);
  }
  // Nothing appeared outside the store, nor inside it.
  EXPECT_EQ(fstest::names_in(dir.path()), std::vector<std::string>{"s"});
  for (const char* sub : {"tmp", "new", "cur"}) {
    EXPECT_TRUE(fstest::names_in(dir / "s" / sub).empty()) << sub;
  }
  EXPECT_TRUE(FileStore::valid_name("..."));
  EXPECT_TRUE(FileStore::valid_name(".hidden"));
}

TEST(FileStore, MissingStoreIsAClearErrorNotAnEmptyStore) {
  TempDir dir;
  const fs::path root = dir / "never-prepared";
  FileStore store(root);
  try {
    store.create("m");
    FAIL() << "create in a missing store succeeded";
  } catch (const LockError& e) {
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
    const std::string what = e.what();
    EXPECT_NE(what.find((root / "tmp" / "m").string()), std::string::npos) << what;
    EXPECT_NE(what.find("cannot create message"), std::string::npos) << what;
  }
  EXPECT_THROW(store.list("new"), LockError);
  std::optional<std::string> next;
  EXPECT_EQ(store.claim_next("c", next), std::errc::no_such_file_or_directory);
  bool claimed = true;
  EXPECT_EQ(store.claim("m", "c", claimed), std::errc::no_such_file_or_directory);
  EXPECT_FALSE(claimed);
  try {
    store.claim("m", "consumer-7");
    FAIL() << "claim in a missing store succeeded";
  } catch (const LockError& e) {
    EXPECT_NE(std::string(e.what()).find("consumer-7"), std::string::npos) << e.what();
  }
  EXPECT_THROW(store.read("m", "new"), LockError);
}

// As root the permission bits do not bind, so the check runs in a child that drops to nobody.
TEST(FileStore, ReadOnlyDirectoryIsAClearError) {
  TempDir dir;
  fs::permissions(dir.path(), fs::perms(0755));
  FileStore store(dir / "s");
  store.prepare();
  publish(store, "m", "x");
  fs::permissions(dir / "s" / "tmp", fs::perms(0555));
  fs::permissions(dir / "s" / "new", fs::perms(0555));
  fs::permissions(dir / "s" / "cur", fs::perms(0555));
  Subprocess child = Subprocess::fork([&](Channel&) {
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) return 10;
    FileStore s(dir / "s");
    std::error_code ec;
    FileStore::Writer w = s.create("n", ec);
    if (ec != std::errc::permission_denied) return 11;
    try {
      s.create("n");
      return 12;
    } catch (const LockError& e) {
      const std::string what = e.what();
      if (what.find((dir / "s" / "tmp" / "n").string()) == std::string::npos) return 13;
      if (what.find("ermission denied") == std::string::npos) return 14;
    }
    bool claimed = true;
    if (s.claim("m", "c", claimed) != std::errc::permission_denied || claimed) return 15;
    std::optional<std::string> next;
    if (s.claim_next("c", next) != std::errc::permission_denied || next) return 16;
    if (s.read("m", "new") != "x") return 17;  // reading still works
    return 0;
  });
  const auto status = child.wait_exit();
  EXPECT_EQ(status, 0) << "child status " << status.value_or(-1000);
  EXPECT_EQ(fstest::names_in(dir / "s" / "new"), std::vector<std::string>{"m"});
  fs::permissions(dir / "s" / "tmp", fs::perms(0755));
  fs::permissions(dir / "s" / "new", fs::perms(0755));
  fs::permissions(dir / "s" / "cur", fs::perms(0755));
}

TEST(FileStore, UniqueNamesAreValidDistinctAndMaildirShaped) {
  std::set<std::string> seen;
  for (int i = 0; i < 2000; ++i) {
    const std::string n = FileStore::unique_name();
    EXPECT_TRUE(FileStore::valid_name(n)) << n;
    EXPECT_NE(n.front(), '.') << n;
    EXPECT_TRUE(seen.insert(n).second) << "duplicate " << n;
  }
  const std::string n = *seen.begin();
  EXPECT_NE(n.find(".M"), std::string::npos) << n;
  EXPECT_NE(n.find("P" + std::to_string(::getpid()) + "R"), std::string::npos) << n;
  EXPECT_EQ(n.find_first_not_of("0123456789abcdef.MPR"), std::string::npos) << n;
}

TEST(FileStoreMessages, CheckerRejectsDamage) {
  const std::string m = fstest::make_message(3, 17);
  auto id = fstest::check_message(m);
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(id->producer, 3);
  EXPECT_EQ(id->seq, 17);
  EXPECT_FALSE(fstest::check_message(m.substr(0, m.size() - 1)));
  EXPECT_FALSE(fstest::check_message(m.substr(0, m.find('\n'))));
  EXPECT_FALSE(fstest::check_message(""));
  std::string flipped = m;
  flipped.back() = static_cast<char>(flipped.back() ^ 1);
  EXPECT_FALSE(fstest::check_message(flipped));
}

}  // namespace
