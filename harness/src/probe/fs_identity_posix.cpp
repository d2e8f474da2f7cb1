// Which filesystem holds a directory, as locksmith::identify_mount (mount.hpp) sees it, and the
// facts the probe reports about it. See fs_probe.hpp.
#include <cstdint>
#include <cstdio>
#include <string>
#include <system_error>
#include <vector>

#include "locksmith/mount.hpp"
#include "probe_internal.hpp"

namespace locksmith::harness {
namespace {

std::string hex(std::uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

namespace probe {

std::vector<Fact> identity_facts(const FsIdentity& id, const std::string& prefix) {
  std::string how = id.magic != 0 ? "statfs f_type " + hex(id.magic) : std::string("statfs");
  return {
      {prefix + "fs_type", id.type, how + "; mounted from " + id.source},
      {prefix + "mount_point", id.mount_point, "the mount holding the directory"},
      {prefix + "mount_source", id.source, "what is mounted there"},
      {prefix + "mount_options", id.options, "per-mount options, then the superblock's"},
  };
}

}  // namespace probe

FsIdentity identify_filesystem(const std::filesystem::path& dir) {
  FsIdentity id;
  if (const std::error_code ec = identify_mount(std::filesystem::canonical(dir), id)) {
    throw std::system_error(ec, "statfs '" + dir.string() + "'");
  }
  return id;
}

}  // namespace locksmith::harness
