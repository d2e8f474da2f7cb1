// Filesystem identification and the semantics experiments of `locksmith probe`, run on real
// mounts made by the tests: a tmpfs and an ext4 loop mount (both need root; skipped otherwise),
// each in a private mount namespace so that nothing leaks into the host's mount table even if
// the test dies. On Linux local filesystems the answers are known (flock is per open file
// description and independent of fcntl; fcntl is per process and dropped by any close), so every
// experiment is asserted to give them, including the "no" answers.
#include "locksmith/platform.hpp"

#if defined(LOCKSMITH_OS_LINUX)
#include <fcntl.h>
#include <linux/loop.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <regex>
#include <string>
#include <system_error>
#include <vector>

#include "locksmith/harness/engine.hpp"
#include "locksmith/harness/fs_probe.hpp"
#include "locksmith/harness/probe.hpp"
#include "locksmith/unique_fd.hpp"
#include "subprocess.hpp"
#include "test_support.hpp"

namespace locksmith::harness {
namespace {

namespace fs = std::filesystem;

std::map<std::string, Fact> by_name(const std::vector<Fact>& facts) {
  std::map<std::string, Fact> m;
  for (const auto& f : facts) {
    EXPECT_TRUE(m.emplace(f.name, f).second) << "duplicate fact " << f.name;
  }
  return m;
}

std::string dump(const std::vector<Fact>& facts) {
  std::string out;
  for (const auto& f : facts) out += "  " + f.name + " = " + f.value + "  (" + f.detail + ")\n";
  return out;
}

// Mounts made here stay private to this test process: a crashed test cannot leave a mount (or,
// with autoclear, a loop device) behind. Falls back to the host namespace if unshare() fails.
void enter_private_mount_namespace() {
  static const bool done = [] {
    if (::unshare(CLONE_NEWNS) != 0) return false;
    return ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0;
  }();
  (void)done;
}

// Unmounts on destruction; a busy mount is detached lazily rather than left behind.
class Mount {
 public:
  Mount() = default;
  Mount(const Mount&) = delete;
  Mount& operator=(const Mount&) = delete;
  ~Mount() { unmount(); }

  // 0 or the errno of mount(2).
  int mount(const std::string& source, const fs::path& target, const char* type,
            unsigned long flags, const std::string& data) {
    fs::create_directories(target);
    if (::mount(source.c_str(), target.c_str(), type, flags, data.c_str()) != 0) return errno;
    target_ = target;
    return 0;
  }
  void unmount() {
    if (target_.empty()) return;
    if (::umount2(target_.c_str(), 0) != 0) ::umount2(target_.c_str(), MNT_DETACH);
    target_.clear();
  }
  const fs::path& path() const { return target_; }

 private:
  fs::path target_;
};

// Runs a command with its output discarded; its exit status, 127 if it could not be started.
// The wait is bounded: the command is killed after `timeout` (124 then).
int run_command(const std::vector<std::string>& args, std::chrono::seconds timeout) {
  locksmith::test::SpawnOptions o;
  o.out = locksmith::test::Stdio::null;
  o.err = locksmith::test::Stdio::null;
  o.search_path = true;
  try {
    const auto done = locksmith::test::run(args, o, timeout);
    if (!done.exit) return 124;
    return *done.exit >= 0 ? *done.exit : 128;
  } catch (const std::system_error&) {
    return 127;
  }
}

std::string find_mkfs_ext4() {
  for (const char* p : {"/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return "mkfs.ext4";  // from PATH
}

// A 64 MiB ext4 image attached to a free loop device (autoclear: the device detaches itself
// when the filesystem is unmounted and the device closed) and mounted on `dir`.
class Ext4LoopMount {
 public:
  // Empty when it worked, else why not (the test is skipped with that message).
  std::string setup(const fs::path& image, const fs::path& dir) {
    {
      UniqueFd img(::open(image.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
      if (!img || ::ftruncate(img.get(), 64 << 20) != 0) return "cannot create the image file";
    }
    const int mkfs =
        run_command({find_mkfs_ext4(), "-q", "-F", image.string()}, std::chrono::seconds(60));
    if (mkfs == 127) return "mkfs.ext4 is not installed (Debian package e2fsprogs)";
    if (mkfs != 0) return "mkfs.ext4 failed with status " + std::to_string(mkfs);
    UniqueFd control(::open("/dev/loop-control", O_RDWR | O_CLOEXEC));
    if (!control)
      return "no loop devices here (/dev/loop-control: " + std::string(strerror(errno)) + ")";
    UniqueFd img(::open(image.c_str(), O_RDWR | O_CLOEXEC));
    if (!img) return "cannot reopen the image";
    // Another process may take the free device between the two calls: retry a few times.
    for (int attempt = 0; attempt < 8 && device_.empty(); ++attempt) {
      const int n = ::ioctl(control.get(), LOOP_CTL_GET_FREE);
      if (n < 0) return "LOOP_CTL_GET_FREE: " + std::string(strerror(errno));
      const std::string dev = "/dev/loop" + std::to_string(n);
      UniqueFd loop(::open(dev.c_str(), O_RDWR | O_CLOEXEC));
      if (!loop) continue;
      loop_config config{};
      config.fd = static_cast<__u32>(img.get());
      config.info.lo_flags = LO_FLAGS_AUTOCLEAR;
      if (::ioctl(loop.get(), LOOP_CONFIGURE, &config) != 0) continue;
      device_ = dev;
      loop_ = std::move(loop);
    }
    if (device_.empty()) return "could not attach the image to a loop device";
    const int err = mount_.mount(device_, dir, "ext4", 0, "");
    // The mount holds the device now; closing ours lets autoclear detach it at unmount.
    loop_.reset();
    if (err != 0) return "mount -t ext4 " + device_ + ": " + strerror(err);
    return {};
  }
  const std::string& device() const { return device_; }
  const fs::path& path() const { return mount_.path(); }

 private:
  std::string device_;
  UniqueFd loop_;
  Mount mount_;
};

// Asserts the answers every Linux local filesystem gives.
void expect_linux_local_answers(const std::vector<Fact>& facts) {
  const auto f = by_name(facts);
  const std::map<std::string, std::string> expected = {
      {"flock_supported", "yes"},
      {"fcntl_supported", "yes"},
      {"ofd_supported", "yes"},
      {"close_any_fd_drops_fcntl", "yes"},
      {"flock_fcntl_interact", "no"},
      {"flock_shared_across_fork", "yes"},
      {"two_opens_conflict_flock", "yes"},
      {"two_opens_conflict_ofd", "yes"},
      {"two_opens_conflict_fcntl", "no"},
      {"o_excl_atomic", "yes"},
      {"link_nlink_2", "yes"},
      {"rename_atomic_for_readers", "yes"},
      {"auto_mechanism", "flock"},
  };
  for (const auto& [name, value] : expected) {
    const auto it = f.find(name);
    ASSERT_NE(it, f.end()) << "missing fact " << name << "\n" << dump(facts);
    EXPECT_EQ(it->second.value, value) << name << ": " << it->second.detail;
    EXPECT_FALSE(it->second.detail.empty()) << name;
  }
  // The evidence behind two of the answers: every round had one winner, and the reader really
  // saw the file change under it (a reader that saw one version proves nothing about rename).
  EXPECT_NE(f.at("o_excl_atomic").detail.find("exactly one winner in 50,"), std::string::npos)
      << f.at("o_excl_atomic").detail;
  std::smatch m;
  const std::string rename_detail = f.at("rename_atomic_for_readers").detail;
  ASSERT_TRUE(std::regex_search(rename_detail, m, std::regex(R"(\((\d+) version changes seen\))")))
      << rename_detail;
  EXPECT_GE(std::stoul(m[1].str()), 2u) << rename_detail;
}

// The experiments leave nothing behind in the probed directory.
void expect_empty(const fs::path& dir) {
  EXPECT_TRUE(fs::is_empty(dir)) << dir << " still holds "
                                 << (fs::is_empty(dir)
                                         ? ""
                                         : fs::directory_iterator(dir)->path().string());
}

class MountedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "mounting a filesystem needs root";
    enter_private_mount_namespace();
  }
  // A tmpfs on a directory whose name has a space (the mount table escapes it as \040).
  void mount_tmpfs(unsigned long flags = 0) {
    const int err =
        tmpfs_.mount("tmpfs", base_ / "tmpfs mnt", "tmpfs", flags, "size=16m,mode=0755");
    if (err != 0) GTEST_SKIP() << "cannot mount a tmpfs: " << strerror(err);
  }

  test::TempDir base_;
  Mount tmpfs_;
};

TEST_F(MountedTest, IdentifiesTmpfsWithItsMountPointAndOptions) {
  mount_tmpfs();
  const fs::path sub = tmpfs_.path() / "a" / "b";
  fs::create_directories(sub);
  const FsIdentity id = identify_filesystem(sub);
  EXPECT_EQ(id.type, "tmpfs");
  EXPECT_EQ(id.magic, 0x01021994u);
  EXPECT_EQ(id.mount_point, fs::canonical(tmpfs_.path()).string());
  EXPECT_EQ(id.source, "tmpfs");
  EXPECT_NE(id.options.find("size=16384k"), std::string::npos) << id.options;
  EXPECT_EQ(id.options.rfind("rw,", 0), 0u) << id.options;
}

TEST_F(MountedTest, IdentifiesExt4OnALoopMount) {
  Ext4LoopMount ext4;
  if (const std::string why = ext4.setup(base_ / "ext4.img", base_ / "ext4"); !why.empty()) {
    GTEST_SKIP() << why;
  }
  const FsIdentity id = identify_filesystem(ext4.path());
  EXPECT_EQ(id.type, "ext4");
  EXPECT_EQ(id.magic, 0xef53u);
  EXPECT_EQ(id.mount_point, fs::canonical(ext4.path()).string());
  EXPECT_EQ(id.source, ext4.device());
}

TEST_F(MountedTest, LinuxLocalAnswersOnTmpfs) {
  mount_tmpfs();
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<Fact> facts = probe_semantics(tmpfs_.path(), nullptr);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  expect_linux_local_answers(facts);
  const auto f = by_name(facts);
  EXPECT_EQ(f.at("fs_type").value, "tmpfs");
  EXPECT_EQ(f.at("mount_point").value, fs::canonical(tmpfs_.path()).string());
  EXPECT_NE(f.at("mount_options").value.find("size=16384k"), std::string::npos);
  EXPECT_EQ(f.count("peer_same_export"), 0u);
  expect_empty(tmpfs_.path());
  EXPECT_LT(secs, 30.0) << "a hang, not a measurement";
  std::cout << "probe_semantics on tmpfs took " << secs << " s\n" << dump(facts);
}

TEST_F(MountedTest, LinuxLocalAnswersOnExt4) {
  Ext4LoopMount ext4;
  if (const std::string why = ext4.setup(base_ / "ext4.img", base_ / "ext4"); !why.empty()) {
    GTEST_SKIP() << why;
  }
  const fs::path dir = ext4.path() / "probe";
  fs::create_directory(dir);
  const std::vector<Fact> facts = probe_semantics(dir, nullptr);
  expect_linux_local_answers(facts);
  const auto f = by_name(facts);
  EXPECT_EQ(f.at("fs_type").value, "ext4");
  EXPECT_EQ(f.at("mount_source").value, ext4.device());
  expect_empty(dir);
}

// A bind mount is a second mount of the same directory: the competing processes work through
// it, and a local filesystem answers exactly as before.
TEST_F(MountedTest, PeerThroughABindMountGivesTheSameAnswers) {
  mount_tmpfs();
  Mount bind;
  if (const int err = bind.mount(tmpfs_.path().string(), base_ / "peer", nullptr, MS_BIND, "");
      err != 0) {
    GTEST_SKIP() << "cannot bind-mount: " << strerror(err);
  }
  const fs::path peer = bind.path();
  const std::vector<Fact> facts = probe_semantics(tmpfs_.path(), &peer);
  expect_linux_local_answers(facts);
  const auto f = by_name(facts);
  EXPECT_EQ(f.at("peer_same_export").value, "yes") << f.at("peer_same_export").detail;
  EXPECT_EQ(f.at("peer_fs_type").value, "tmpfs");
  EXPECT_EQ(f.at("peer_mount_point").value, fs::canonical(peer).string());
  for (const char* name :
       {"close_any_fd_drops_fcntl", "flock_fcntl_interact", "rename_atomic_for_readers"}) {
    EXPECT_NE(f.at(name).detail.find("through the peer mount"), std::string::npos)
        << name << ": " << f.at(name).detail;
  }
  EXPECT_NE(f.at("link_nlink_2").detail.find("through the peer mount st_nlink=2"),
            std::string::npos)
      << f.at("link_nlink_2").detail;
}

// Two bindfs mounts of one directory (no lock forwarding: each mount keeps its own locks). The
// experiments that need a held lock to exclude the competitor through the peer cannot ask their
// question there: "not applicable", saying why, rather than an error or a wrong "no".
TEST(FsProbe, LocksThatDoNotCrossMountsMakeLockFactsNotApplicable) {
  if (::geteuid() != 0 || !fs::exists("/dev/fuse")) GTEST_SKIP() << "needs root and /dev/fuse";
  test::TempDir dir;
  const fs::path src = dir / "src", a = dir / "a", b = dir / "b";
  for (const auto& d : {src, a, b}) fs::create_directories(d);
  test::SpawnOptions quiet;
  quiet.out = test::Stdio::null;
  quiet.err = test::Stdio::null;
  quiet.search_path = true;
  if (test::run({"bindfs", src.string(), a.string()}, quiet).exit != 0) {
    GTEST_SKIP() << "bindfs is not installed or cannot mount";
  }
  struct Unmount {
    std::vector<fs::path> paths;
    ~Unmount() {
      for (const auto& p : paths) ::umount2(p.c_str(), MNT_DETACH);
    }
  } unmount{{a}};
  ASSERT_EQ(test::run({"bindfs", src.string(), b.string()}, quiet).exit, 0);
  unmount.paths.push_back(b);
  const std::vector<Fact> facts = probe_semantics(a, &b);
  const auto f = by_name(facts);
  for (const char* name :
       {"close_any_fd_drops_fcntl", "flock_fcntl_interact", "flock_shared_across_fork"}) {
    EXPECT_EQ(f.at(name).value, "not applicable") << name << ": " << f.at(name).detail;
    EXPECT_NE(f.at(name).detail.find("do not exclude it at all here"), std::string::npos)
        << f.at(name).detail;
  }
  EXPECT_EQ(f.at("o_excl_atomic").value.rfind("error", 0), std::string::npos)
      << f.at("o_excl_atomic").detail;
}

TEST_F(MountedTest, ReadOnlyDirectoryIsAnEnvironmentError) {
  mount_tmpfs(MS_RDONLY);
  try {
    probe_semantics(tmpfs_.path(), nullptr);
    FAIL() << "probing a read-only filesystem must throw";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::read_only_file_system) << e.what();
    EXPECT_NE(std::string(e.what()).find(tmpfs_.path().string()), std::string::npos) << e.what();
  }
}

// Without root: whatever filesystem holds $TMPDIR, every experiment decides.
TEST(FsProbe, EveryExperimentDecidesInATempDir) {
  test::TempDir dir;
  const std::vector<Fact> facts = probe_semantics(dir.path(), nullptr);
  const auto f = by_name(facts);
  EXPECT_EQ(f.at("fs_type").value, identify_filesystem(dir.path()).type);
  EXPECT_FALSE(f.at("mount_point").value.empty());
  EXPECT_EQ(f.count("kernel"), 1u);
  for (const char* name :
       {"flock_supported", "fcntl_supported", "ofd_supported", "close_any_fd_drops_fcntl",
        "flock_fcntl_interact", "flock_shared_across_fork", "two_opens_conflict_flock",
        "two_opens_conflict_ofd", "two_opens_conflict_fcntl", "o_excl_atomic", "link_nlink_2",
        "rename_atomic_for_readers", "auto_mechanism"}) {
    ASSERT_EQ(f.count(name), 1u) << name << "\n" << dump(facts);
    EXPECT_EQ(f.at(name).value.rfind("error", 0), std::string::npos)
        << name << " = " << f.at(name).value;
  }
  expect_empty(dir.path());
}

// A peer directory that is not the same directory is reported and not used.
TEST(FsProbe, UnrelatedPeerDirectoryIsReportedAndIgnored) {
  test::TempDir dir;
  test::TempDir other;
  const fs::path& peer = other.path();
  const auto f = by_name(probe_semantics(dir.path(), &peer));
  EXPECT_EQ(f.at("peer_same_export").value, "no");
  EXPECT_EQ(f.at("o_excl_atomic").value, "yes");
  EXPECT_EQ(f.at("o_excl_atomic").detail.find("peer"), std::string::npos);
  EXPECT_EQ(f.at("close_any_fd_drops_fcntl").detail.find("peer"), std::string::npos);
}

TEST(FsProbe, MissingDirectoryThrows) {
  test::TempDir dir;
  EXPECT_THROW(identify_filesystem(dir / "missing"), std::system_error);
  EXPECT_THROW(probe_semantics(dir / "missing", nullptr), std::system_error);
}

}  // namespace
}  // namespace locksmith::harness

#endif  // LOCKSMITH_OS_LINUX

// End to end: `locksmith probe` (run_probe, with real worker processes re-executing the
// locksmith binary) on a tmpfs and on an ext4 loop mount made here, plus a stress run with the
// kill nemesis on each, and a broken lock on each so the verdict is shown to mean something.
namespace locksmith::harness {
namespace {

void expect_probe_all_safe(const fs::path& dir, const std::string& fs_type) {
  ProbeOptions o;
  o.dir = dir;
  o.duration = std::chrono::milliseconds(300);
  o.worker_exe = LOCKSMITH_BINARY;
  const Report r = run_probe(o);
  EXPECT_EQ(r.exit_code(), 0);
  ASSERT_EQ(r.primitives.size(), 8u);
  for (const auto& p : r.primitives) {
    EXPECT_EQ(p.verdict, PrimitiveVerdict::safe) << p.name << ": " << p.reason;
    EXPECT_GT(p.stats.at("acquired"), 0) << p.name;
  }
  const auto f = by_name(r.facts);
  EXPECT_EQ(f.at("fs_type").value, fs_type);
  EXPECT_EQ(f.at("auto_mechanism").value, "flock");
}

void expect_stress_verdicts(const fs::path& dir) {
  StressOptions good;
  good.spec = "flock:" + (dir / "kill.lock").string();
  good.workers = 3;
  good.duration = std::chrono::milliseconds(600);
  good.nemesis_kill = true;
  good.nemesis_interval = std::chrono::milliseconds(100);
  good.worker_exe = LOCKSMITH_BINARY;
  const StressResult ok = run_stress(good);
  for (const auto& c : ok.checks)
    EXPECT_NE(c.verdict, Verdict::fail) << c.name << ": " << c.summary;
  EXPECT_GT(std::count_if(ok.history.events.begin(), ok.history.events.end(),
                          [](const Event& e) { return e.type == EventType::crash; }),
            0);

  StressOptions bad = good;
  bad.spec = "broken:create:" + (dir / "create.lock").string();
  bad.nemesis_kill = false;
  bad.duration.reset();
  bad.iterations = 100;
  const StressResult broken = run_stress(bad);
  EXPECT_TRUE(std::any_of(broken.checks.begin(), broken.checks.end(),
                          [](const CheckResult& c) { return c.verdict == Verdict::fail; }));
}

TEST_F(MountedTest, ProbeAndStressEndToEndOnTmpfs) {
  mount_tmpfs();
  expect_probe_all_safe(tmpfs_.path(), "tmpfs");
  expect_stress_verdicts(tmpfs_.path());
}

TEST_F(MountedTest, ProbeAndStressEndToEndOnExt4) {
  Ext4LoopMount ext4;
  if (const std::string why = ext4.setup(base_ / "ext4.img", base_ / "ext4"); !why.empty()) {
    GTEST_SKIP() << why;
  }
  expect_probe_all_safe(ext4.path(), "ext4");
  expect_stress_verdicts(ext4.path());
}

}  // namespace
}  // namespace locksmith::harness

namespace locksmith::harness {
namespace {

// --peer-dir: odd-numbered workers lock through a second mount (here a bind mount) of the same
// directory. A local filesystem must stay SAFE that way, and a broken lock must still be caught
// when its two halves only meet through the shared guarded file.
TEST_F(MountedTest, ProbeWithPeerDirectoryRunsHalfTheWorkersThroughIt) {
  mount_tmpfs();
  Mount bind;
  if (const int err = bind.mount(tmpfs_.path().string(), base_ / "peer", nullptr, MS_BIND, "");
      err != 0) {
    GTEST_SKIP() << "cannot bind-mount: " << strerror(err);
  }
  ProbeOptions o;
  o.dir = tmpfs_.path();
  o.peer_dir = bind.path();
  o.duration = std::chrono::milliseconds(300);
  o.only = {"flock", "fcntl"};
  o.worker_exe = LOCKSMITH_BINARY;
  const Report r = run_probe(o);
  EXPECT_EQ(r.exit_code(), 0);
  EXPECT_EQ(r.peer_directory, fs::absolute(bind.path()).string());
  ASSERT_EQ(r.primitives.size(), 2u);
  for (const auto& p : r.primitives) {
    EXPECT_EQ(p.verdict, PrimitiveVerdict::safe) << p.name << ": " << p.reason;
  }

  StressOptions s;
  s.spec = "broken:noop:" + (tmpfs_.path() / "n.lock").string();
  s.peer_spec = "broken:noop:" + (bind.path() / "n.lock").string();
  s.workers = 2;
  s.iterations = 200;
  s.worker_exe = LOCKSMITH_BINARY;
  const StressResult broken = run_stress(s);
  EXPECT_TRUE(std::any_of(broken.checks.begin(), broken.checks.end(),
                          [](const CheckResult& c) { return c.verdict == Verdict::fail; }));
}

}  // namespace
}  // namespace locksmith::harness

// `locksmith probe DIR` (the real binary) makes its lock files and scratch files in
// subdirectories of DIR and removes them, whether the probe succeeds or its stress runs fail.
namespace locksmith::harness {
namespace {

int probe_cli(const std::string& args) {
  const std::string cmd =
      "timeout 120 " + std::string(LOCKSMITH_BINARY) + " probe -q " + args + " 2>/dev/null";
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

TEST(ProbeCli, LeavesNothingBehindInTheDirectory) {
  const test::TempDir dir;
  EXPECT_EQ(probe_cli(dir.path().string() + " --only flock -d 0.2"), 0);
  expect_empty(dir.path());
}

// A peer directory that is no second mount of DIR: the peer's workers find no guard file and
// the stress run fails; neither directory keeps anything.
TEST(ProbeCli, LeavesNothingBehindWhenAStressRunFails) {
  const test::TempDir dir;
  const test::TempDir other;
  EXPECT_NE(probe_cli(dir.path().string() + " --peer-dir " + other.path().string() +
                      " --only flock,sem -d 0.2"),
            0);
  expect_empty(dir.path());
  expect_empty(other.path());
}

}  // namespace
}  // namespace locksmith::harness
