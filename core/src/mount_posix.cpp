// The mount holding a path: statfs() and, on Linux, /proc/self/mountinfo (type, mount point,
// source, options); the kernel release; where saved verdicts live (mount.hpp).
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string_view>
#include <type_traits>

#include "locksmith/mount.hpp"
#include "locksmith/platform.hpp"

#if defined(LOCKSMITH_OS_LINUX)
#include <sys/vfs.h>
#endif

namespace locksmith {
namespace {

#if defined(LOCKSMITH_OS_LINUX)
const char* magic_name(std::uint64_t magic) noexcept {
  struct Name {
    std::uint64_t magic;
    const char* name;
  };
  static constexpr Name kNames[] = {
      {0xef53, "ext2/ext3/ext4"}, {0x01021994, "tmpfs"},
      {0x858458f6, "ramfs"},      {0x6969, "nfs"},
      {0x58465342, "xfs"},        {0x9123683e, "btrfs"},
      {0x2fc12fc1, "zfs"},        {0x65735546, "fuse"},
      {0x794c7630, "overlayfs"},  {0xff534d42, "cifs"},
      {0xfe534d42, "smb2"},       {0x517b, "smb"},
      {0x01021997, "9p"},         {0xf2f52010, "f2fs"},
      {0x4d44, "vfat"},           {0x5346544e, "ntfs"},
      {0x7366746e, "ntfs3"},      {0x2011bab0, "exfat"},
      {0x00c36400, "ceph"},       {0x01161970, "gfs2"},
      {0x0bd00bd0, "lustre"},     {0x5346414f, "afs"},
      {0x73717368, "squashfs"},   {0x3153464a, "jfs"},
      {0x52654973, "reiserfs"},   {0xca451a4e, "bcachefs"},
      {0x47504653, "gpfs"},       {0x19830326, "fhgfs/beegfs"},
  };
  for (const auto& n : kNames) {
    if (n.magic == magic) return n.name;
  }
  return nullptr;
}

// Mount table fields escape space, tab, newline and backslash as \ooo.
std::string unescape_octal(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() &&
        std::all_of(s.begin() + static_cast<std::ptrdiff_t>(i) + 1,
                    s.begin() + static_cast<std::ptrdiff_t>(i) + 4,
                    [](char c) { return c >= '0' && c <= '7'; })) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

struct MountEntry {
  std::string device;  // "MAJ:MIN"
  std::string mount_point, fstype, source, mount_options, super_options;
};

// One line of /proc/self/mountinfo:
// ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS
bool parse_mountinfo(const std::string& line, MountEntry& e) {
  std::vector<std::string_view> f;
  std::string_view rest(line);
  while (!rest.empty()) {
    const std::size_t sp = rest.find(' ');
    f.push_back(rest.substr(0, sp));
    if (sp == std::string_view::npos) break;
    rest.remove_prefix(sp + 1);
  }
  if (f.size() < 10) return false;
  const auto dash = std::find(f.begin() + 6, f.end(), "-");
  if (f.end() - dash < 4) return false;
  e.device = std::string(f[2]);
  e.mount_point = unescape_octal(f[4]);
  e.mount_options = std::string(f[5]);
  e.fstype = unescape_octal(dash[1]);
  e.source = unescape_octal(dash[2]);
  e.super_options = unescape_octal(dash[3]);
  return true;
}

bool is_under(const std::string& path, const std::string& mount_point) {
  if (mount_point == "/") return true;
  return path.compare(0, mount_point.size(), mount_point) == 0 &&
         (path.size() == mount_point.size() || path[mount_point.size()] == '/');
}

std::string merge_options(const std::string& a, const std::string& b) {
  std::vector<std::string> seen;
  std::string out;
  for (const std::string* list : {&a, &b}) {
    std::stringstream in(*list);
    for (std::string opt; std::getline(in, opt, ',');) {
      if (opt.empty() || std::find(seen.begin(), seen.end(), opt) != seen.end()) continue;
      seen.push_back(opt);
      out += (out.empty() ? "" : ",") + opt;
    }
  }
  return out;
}

// `unique`: the device `dev` shows in exactly one mount table entry, so the answer holds for
// every path on it (no bind mount or second mount with other per-mount options).
std::error_code linux_identify(const std::string& path, dev_t dev, MountInfo& id, bool& unique) {
  struct statfs sfs {};
  if (::statfs(path.c_str(), &sfs) != 0) return {errno, std::generic_category()};
  id.magic = static_cast<std::uint64_t>(
      static_cast<std::make_unsigned_t<decltype(sfs.f_type)>>(sfs.f_type));
  if (const char* name = magic_name(id.magic)) id.type = name;
  int words[2];
  static_assert(sizeof words == sizeof sfs.f_fsid);
  std::memcpy(words, &sfs.f_fsid, sizeof words);
  char fsid[32];
  std::snprintf(fsid, sizeof fsid, "%08x%08x", static_cast<unsigned>(words[0]),
                static_cast<unsigned>(words[1]));
  id.fsid = fsid;
  // The mount holding the directory: the longest mount point above it; of equal ones, the last
  // mounted (it hides the others).
  std::ifstream in("/proc/self/mountinfo");
  MountEntry best;
  bool found = false;
  const std::string device = std::to_string(major(dev)) + ":" + std::to_string(minor(dev));
  int entries_of_device = 0;
  for (std::string line; std::getline(in, line);) {
    MountEntry e;
    if (!parse_mountinfo(line, e)) continue;
    if (e.device == device) ++entries_of_device;
    if (!is_under(path, e.mount_point)) continue;
    if (!found || e.mount_point.size() >= best.mount_point.size()) {
      best = std::move(e);
      found = true;
    }
  }
  if (found) {
    id.type = best.fstype;
    id.mount_point = best.mount_point;
    id.source = best.source;
    id.options = merge_options(best.mount_options, best.super_options);
  }
  unique = found && entries_of_device == 1 && best.device == device;
  return {};
}

// What identify_mount found per device, for as long as the mount table stays as it was: Linux
// signals any change to it by POLLPRI on an open /proc/self/mountinfo, so a repeated question
// costs a stat() and a poll() instead of reading and parsing the table. A forked child starts
// afresh (its mount namespace may differ).
class MountCache {
 public:
  std::optional<MountInfo> find(dev_t dev) {
    const std::lock_guard<std::mutex> hold(mu_);
    if (!current()) return std::nullopt;
    const auto it = by_dev_.find(dev);
    if (it == by_dev_.end()) return std::nullopt;
    return it->second;
  }
  // Keeps `m`, read from the table after find(dev) missed, unless the table changed since: then
  // what was read may already be stale, and nothing is kept.
  void put(dev_t dev, const MountInfo& m) {
    const std::lock_guard<std::mutex> hold(mu_);
    if (current()) by_dev_[dev] = m;
  }

 private:
  // Whether the entries still describe the mount table and it did not change since the last
  // question; on a change (or when it cannot tell) every entry is forgotten.
  bool current() {
    if (owner_ != ::getpid()) {
      if (fd_ >= 0) ::close(fd_);
      by_dev_.clear();
      owner_ = ::getpid();
      fd_ = ::open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
    }
    if (fd_ < 0) return false;
    struct pollfd changed {
      fd_, POLLPRI, 0
    };
    if (::poll(&changed, 1, 0) == 0) return true;
    by_dev_.clear();  // changed (or cannot tell): forget
    return false;
  }

  std::mutex mu_;
  pid_t owner_ = 0;
  int fd_ = -1;
  std::map<dev_t, MountInfo> by_dev_;
};

MountCache& mount_cache() {
  static MountCache* cache = new MountCache();  // never destroyed: usable until exit
  return *cache;
}
#endif

}  // namespace

std::error_code identify_mount(const std::filesystem::path& path, MountInfo& out) {
  std::error_code ec;
#if defined(LOCKSMITH_OS_LINUX)
  struct stat st {};
  const bool at_path = ::stat(path.c_str(), &st) == 0;
  const std::filesystem::path parent = path.has_parent_path() ? path.parent_path() : ".";
  const bool known_dev = at_path || ::stat(parent.c_str(), &st) == 0;
  if (known_dev) {
    if (auto cached = mount_cache().find(st.st_dev)) {
      out = std::move(*cached);
      return {};
    }
  }
#endif
  std::filesystem::path at = std::filesystem::canonical(path, ec);
  if (ec) {  // a lock file not made yet: its directory
    at = std::filesystem::canonical(path.has_parent_path() ? path.parent_path() : ".", ec);
    if (ec) return ec;
  }
  if (!std::filesystem::is_directory(at, ec) && at.has_parent_path()) at = at.parent_path();
  MountInfo id;
  id.type = "unknown";
#if defined(LOCKSMITH_OS_LINUX)
  bool unique = false;
  if ((ec = linux_identify(at.string(), st.st_dev, id, unique))) return ec;
  if (known_dev && unique) mount_cache().put(st.st_dev, id);
#else
  struct statvfs svfs {};
  if (::statvfs(at.c_str(), &svfs) != 0) return {errno, std::generic_category()};
  id.options = (svfs.f_flag & ST_RDONLY) != 0 ? "ro" : "rw";
  char fsid[32];
  std::snprintf(fsid, sizeof fsid, "%llx", static_cast<unsigned long long>(svfs.f_fsid));
  id.fsid = fsid;
#endif
  out = std::move(id);
  return {};
}

std::string kernel_release() {
  static const std::string release = [] {  // the running kernel does not change
    struct utsname u {};
    if (::uname(&u) != 0) return std::string("unknown");
    return std::string(u.sysname) + " " + u.release;
  }();
  return release;
}

std::filesystem::path VerdictStore::default_path() {
  if (const char* env = std::getenv("LOCKSMITH_VERDICTS"); env != nullptr && *env != '\0') {
    return env;
  }
  if (::geteuid() == 0) return "/var/lib/locksmith/verdicts";
  if (const char* xdg = std::getenv("XDG_STATE_HOME"); xdg != nullptr && *xdg == '/') {
    return std::filesystem::path(xdg) / "locksmith" / "verdicts";
  }
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home != nullptr && *home != '\0' ? home : "/tmp") / ".local" /
         "state" / "locksmith" / "verdicts";
}

}  // namespace locksmith
