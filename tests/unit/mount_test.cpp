// What a mount is known to do to locks (mount.hpp), the saved probe verdicts, and AutoLock
// refusing what they rule out. The FUSE cases mount a real bindfs (skipped without it).
#include "locksmith/mount.hpp"

#include <sys/mount.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <optional>
#include <string>

#include "locksmith/auto_lock.hpp"
#include "locksmith/error.hpp"
#include "subprocess.hpp"
#include "test_support.hpp"

namespace locksmith::unit {
namespace {

namespace fs = std::filesystem;

MountInfo mount_of(std::string type, std::string options, std::string source = "server:/x") {
  MountInfo m;
  m.type = std::move(type);
  m.options = std::move(options);
  m.source = std::move(source);
  m.mount_point = "/mnt";
  return m;
}

TEST(MountOptions, NamesAndValues) {
  std::string v;
  EXPECT_TRUE(has_mount_option("rw,nolock,vers=3", "nolock"));
  EXPECT_FALSE(has_mount_option("rw,nolockx", "nolock"));
  EXPECT_FALSE(has_mount_option("rw,xnolock", "nolock"));
  EXPECT_TRUE(has_mount_option("rw,local_lock=flock", "local_lock=", &v));
  EXPECT_EQ(v, "flock");
  EXPECT_FALSE(has_mount_option("", "rw"));
  EXPECT_TRUE(has_mount_option("rw", "rw"));
}

TEST(KnownLocalOnly, NfsLocalLockAndNolock) {
  const MountInfo all = mount_of("nfs4", "rw,vers=4.2,local_lock=all");
  EXPECT_NE(known_local_only(all, Backend::flock).find("local_lock=all"), std::string::npos);
  EXPECT_NE(known_local_only(all, Backend::posix), "");
  EXPECT_NE(known_local_only(all, Backend::ofd), "");
  EXPECT_EQ(known_local_only(all, Backend::link), "") << "the link lock needs no lock manager";

  const MountInfo flock_only = mount_of("nfs", "rw,vers=3,local_lock=flock");
  EXPECT_NE(known_local_only(flock_only, Backend::flock), "");
  EXPECT_EQ(known_local_only(flock_only, Backend::posix), "");

  const MountInfo posix_only = mount_of("nfs", "rw,vers=3,local_lock=posix");
  EXPECT_EQ(known_local_only(posix_only, Backend::flock), "");
  EXPECT_NE(known_local_only(posix_only, Backend::posix), "");

  EXPECT_EQ(known_local_only(mount_of("nfs4", "rw,local_lock=none"), Backend::flock), "");
  EXPECT_NE(known_local_only(mount_of("nfs", "rw,nolock"), Backend::posix).find("nolock"),
            std::string::npos);
}

TEST(KnownLocalOnly, CifsSshfsFuseAndLocal) {
  EXPECT_NE(known_local_only(mount_of("cifs", "rw,nobrl"), Backend::posix), "");
  EXPECT_NE(known_local_only(mount_of("smb3", "rw,nobrl"), Backend::flock), "");
  EXPECT_EQ(known_local_only(mount_of("cifs", "rw,vers=3.1.1"), Backend::posix), "");
  EXPECT_NE(known_local_only(mount_of("fuse.sshfs", "rw"), Backend::flock).find("sshfs"),
            std::string::npos);
  EXPECT_NE(known_local_only(mount_of("fuse", "rw", "/src"), Backend::flock).find("FUSE"),
            std::string::npos);
  EXPECT_EQ(known_local_only(mount_of("ext4", "rw,relatime", "/dev/sda1"), Backend::flock), "");
  EXPECT_EQ(known_local_only(mount_of("tmpfs", "rw", "tmpfs"), Backend::posix), "");
}

TEST(IdentifyMount, FindsTheMountOfAPathAndOfAFileNotYetMade) {
  test::TempDir dir;
  MountInfo m;
  ASSERT_FALSE(identify_mount(dir.path(), m));
  EXPECT_NE(m.type, "");
  EXPECT_EQ(fs::canonical(dir.path()).string().rfind(m.mount_point, 0), 0u)
      << m.mount_point << " is not above " << dir.path();
  MountInfo of_file;
  ASSERT_FALSE(identify_mount(dir / "not-yet.lock", of_file));
  EXPECT_EQ(of_file.mount_point, m.mount_point);
  EXPECT_EQ(of_file.fsid, m.fsid);
  MountInfo missing;
  EXPECT_TRUE(identify_mount(dir / "no" / "such" / "dir" / "x", missing));
}

// identify_mount keeps its answers for a device until the mount table changes: a bind mount of
// the same filesystem (same st_dev) made after the first question must be seen at once.
TEST(IdentifyMount, SeesAMountMadeAfterTheFirstQuestion) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to bind-mount";
  test::TempDir dir;
  fs::create_directories(dir / "src");
  fs::create_directories(dir / "dst");
  MountInfo before, again;
  ASSERT_FALSE(identify_mount(dir / "dst", before));
  ASSERT_FALSE(identify_mount(dir / "dst", again));
  EXPECT_EQ(again.mount_point, before.mount_point);
  const std::string dst = fs::canonical(dir / "dst").string();
  ASSERT_NE(before.mount_point, dst);
  if (::mount((dir / "src").c_str(), dst.c_str(), nullptr, MS_BIND, nullptr) != 0) {
    GTEST_SKIP() << "cannot bind-mount here: " << std::strerror(errno);
  }
  MountInfo bound;
  const std::error_code ec = identify_mount(dir / "dst" / "f.lock", bound);
  ::umount2(dst.c_str(), MNT_DETACH);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(bound.mount_point, dst);
  MountInfo after;
  ASSERT_FALSE(identify_mount(dir / "dst", after));
  EXPECT_EQ(after.mount_point, before.mount_point);
}

// VerdictStore::cached reads the file again exactly when it changed, and a missing file is an
// empty store.
TEST(VerdictStore, CachedIsReadAgainWhenTheFileChanges) {
  test::TempDir dir;
  const fs::path file = dir / "verdicts";
  const auto none = VerdictStore::cached(file);
  ASSERT_TRUE(none);
  EXPECT_EQ(none->size(), 0u);
  MountInfo m;
  ASSERT_FALSE(identify_mount(dir.path(), m));
  VerdictStore store(file);
  ASSERT_FALSE(store.update(m, {{"flock", "UNSAFE", 1700000000, "", ""}}));
  const auto one = VerdictStore::cached(file);
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ(VerdictStore::cached(file), one) << "unchanged: the same store, not read again";
  ASSERT_FALSE(store.update(m, {{"fcntl", "SAFE", 1700000000, "", ""}}));
  EXPECT_EQ(VerdictStore::cached(file)->size(), 2u);
  fs::remove(file);
  EXPECT_EQ(VerdictStore::cached(file)->size(), 0u);
}

TEST(VerdictStore, RoundTripEscapesAndStaleRecords) {
  test::TempDir dir;
  MountInfo m = mount_of("nfs4", "rw,local_lock=none");
  m.mount_point = "/mnt/with\ttab and\nnewline";
  VerdictStore store(dir / "state" / "verdicts");
  ASSERT_FALSE(store.load()) << "a missing store is empty";
  EXPECT_EQ(store.size(), 0u);
  store.put(m, {"flock", "UNSAFE", 1700000000, "exclusion failed (3 violations)\ttab", ""});
  store.put(m, {"fcntl", "SAFE", 1700000001, "", "/mnt/peer"});
  store.put(m, {"flock", "UNSAFE", 1700000002, "replaced", ""});
  ASSERT_FALSE(store.save());

  VerdictStore again(dir / "state" / "verdicts");
  ASSERT_FALSE(again.load());
  EXPECT_EQ(again.size(), 2u);
  EXPECT_EQ(again.dropped(), 0u);
  const auto flock = again.find(m, "flock");
  ASSERT_TRUE(flock.has_value());
  EXPECT_EQ(flock->verdict, "UNSAFE");
  EXPECT_EQ(flock->saved_at, 1700000002);
  EXPECT_EQ(flock->reason, "replaced");
  const auto fcntl = again.find(m, "fcntl");
  ASSERT_TRUE(fcntl.has_value());
  EXPECT_EQ(fcntl->peer, "/mnt/peer");
  EXPECT_FALSE(again.find(m, "ofd").has_value());

  // The same mount point remounted with other options, or another filesystem there: stale.
  MountInfo remounted = m;
  remounted.options = "rw,local_lock=all";
  EXPECT_FALSE(again.find(remounted, "flock").has_value());
  MountInfo other = m;
  other.fsid = "00000001";
  EXPECT_FALSE(again.find(other, "flock").has_value());
}

TEST(VerdictStore, RefusesAFileThatIsNotOneAndDropsBrokenLines) {
  test::TempDir dir;
  { std::ofstream(dir / "not-ours") << "important user data\n"; }
  VerdictStore foreign(dir / "not-ours");
  EXPECT_TRUE(foreign.load());
  EXPECT_TRUE(foreign.update(mount_of("ext4", "rw"), {{"flock", "SAFE", 1, "", ""}}));
  std::ifstream in(dir / "not-ours");
  std::string first;
  std::getline(in, first);
  EXPECT_EQ(first, "important user data") << "update overwrote a file that was not a store";

  { std::ofstream(dir / "store") << "locksmith-verdicts 1\nonly\tthree\tfields\n"; }
  VerdictStore broken(dir / "store");
  ASSERT_FALSE(broken.load());
  EXPECT_EQ(broken.size(), 0u);
  EXPECT_EQ(broken.dropped(), 1u);
}

// A store in `dir` that says `verdict` for `primitive` on the mount holding `dir`.
fs::path store_saying(const test::TempDir& dir, const std::string& primitive,
                      const std::string& verdict, const std::string& peer = "",
                      const fs::path& on = {}) {
  MountInfo m;
  EXPECT_FALSE(identify_mount(on.empty() ? dir.path() : on, m));
  const fs::path file = dir / "verdicts";
  VerdictStore store(file);
  EXPECT_FALSE(store.update(m, {{primitive, verdict, 1700000000, "exclusion failed", peer}}));
  return file;
}

TEST(AutoLockMount, ASavedUnsafeVerdictIsRefusedAndTheNextMechanismUsed) {
  test::TempDir dir;
  AutoLockOptions o;
  o.verdicts = store_saying(dir, "flock", "UNSAFE");
  AutoLock lock(dir / "res", o);
  ASSERT_TRUE(lock.try_lock());
  EXPECT_EQ(lock.mechanism(), Backend::posix);
  ASSERT_EQ(lock.refusals().size(), 1u);
  EXPECT_NE(lock.refusals()[0].find("flock: `locksmith probe --save` found it UNSAFE"),
            std::string::npos)
      << lock.refusals()[0];
  lock.unlock();

  o.check_mount = false;
  AutoLock trusting(dir / "res", o);
  ASSERT_TRUE(trusting.try_lock());
  EXPECT_EQ(trusting.mechanism(), Backend::flock);
  EXPECT_TRUE(trusting.refusals().empty());
}

TEST(AutoLockMount, AStaleRecordIsIgnored) {
  test::TempDir dir;
  MountInfo m;
  ASSERT_FALSE(identify_mount(dir.path(), m));
  m.options += ",remounted";
  VerdictStore store(dir / "verdicts");
  ASSERT_FALSE(store.update(m, {{"flock", "UNSAFE", 1700000000, "", ""}}));
  AutoLockOptions o;
  o.verdicts = dir / "verdicts";
  AutoLock lock(dir / "res", o);
  ASSERT_TRUE(lock.try_lock());
  EXPECT_EQ(lock.mechanism(), Backend::flock);
}

TEST(AutoLockMount, NothingLeftIsNoSafeMechanism) {
  test::TempDir dir;
  AutoLockOptions o;
  o.verdicts = store_saying(dir, "flock", "UNSAFE");
  o.candidates = {Backend::flock};
  AutoLock lock(dir / "res", o);
  EXPECT_EQ(lock.acquire(LockMode::exclusive, Clock::now()), errc::no_safe_mechanism);
  EXPECT_FALSE(lock.mechanism().has_value());
  EXPECT_FALSE(fs::exists(dir / "res")) << "a refused mechanism was not even tried";
  EXPECT_EQ(lock.refusals().size(), 1u);
}

// A bindfs mount of a fresh directory (without lock forwarding), unmounted at the end.
class BindfsMount {
 public:
  BindfsMount() {
    fs::create_directories(src_);
    fs::create_directories(mnt_);
    if (::geteuid() != 0 || !fs::exists("/dev/fuse")) {
      skip_ = "needs root and /dev/fuse";
      return;
    }
    test::SpawnOptions quiet;
    quiet.out = test::Stdio::null;
    quiet.err = test::Stdio::null;
    quiet.search_path = true;
    const auto r = test::run({"bindfs", src_.string(), mnt_.string()}, quiet);
    if (r.exit != 0) skip_ = "bindfs is not installed or cannot mount";
  }
  ~BindfsMount() {
    if (skip_.empty()) ::umount2(mnt_.c_str(), MNT_DETACH);
  }
  BindfsMount(const BindfsMount&) = delete;
  BindfsMount& operator=(const BindfsMount&) = delete;
  const std::string& skip() const { return skip_; }
  const fs::path& path() const { return mnt_; }

 private:
  test::TempDir dir_;
  fs::path src_ = dir_ / "src";
  fs::path mnt_ = dir_ / "mnt";
  std::string skip_;
};

TEST(AutoLockMount, FuseWithoutAVerdictAcrossMountsUsesTheLinkLock) {
  BindfsMount fuse;
  if (!fuse.skip().empty()) GTEST_SKIP() << fuse.skip();
  test::TempDir dir;
  AutoLockOptions o;
  o.verdicts = dir / "verdicts";  // none saved
  {
    AutoLock lock(fuse.path() / "res", o);
    ASSERT_TRUE(lock.try_lock());
    EXPECT_EQ(lock.mechanism(), Backend::link);
    ASSERT_EQ(lock.refusals().size(), 2u);
    EXPECT_NE(lock.refusals()[0].find("FUSE"), std::string::npos) << lock.refusals()[0];
  }
  // SAFE on this mount alone says nothing about other mounts: still refused.
  o.verdicts = store_saying(dir, "flock", "SAFE", "", fuse.path());
  {
    AutoLock lock(fuse.path() / "res", o);
    ASSERT_TRUE(lock.try_lock());
    EXPECT_EQ(lock.mechanism(), Backend::link);
  }
  // SAFE measured across two mounts: trusted.
  fs::remove(dir / "verdicts");
  o.verdicts = store_saying(dir, "flock", "SAFE", "/the/peer/mount", fuse.path());
  {
    AutoLock lock(fuse.path() / "res", o);
    ASSERT_TRUE(lock.try_lock());
    EXPECT_EQ(lock.mechanism(), Backend::flock);
  }
}

}  // namespace
}  // namespace locksmith::unit
