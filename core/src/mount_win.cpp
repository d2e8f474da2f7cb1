// The volume holding a path, the kernel, where saved verdicts live (mount.hpp), on Windows.
#include "sys_win.hpp"

#include <cstdio>
#include <cstdlib>

#include "locksmith/mount.hpp"

namespace locksmith {

std::error_code identify_mount(const std::filesystem::path& path, MountInfo& out) {
  std::error_code ec;
  std::filesystem::path at = std::filesystem::absolute(path, ec);
  if (ec) return ec;
  wchar_t root[MAX_PATH + 1] = {};
  if (!GetVolumePathNameW(at.c_str(), root, MAX_PATH)) {
    return {static_cast<int>(GetLastError()), std::system_category()};
  }
  wchar_t fs_name[MAX_PATH + 1] = {};
  DWORD serial = 0;
  if (!GetVolumeInformationW(root, nullptr, 0, &serial, nullptr, nullptr, fs_name, MAX_PATH)) {
    return {static_cast<int>(GetLastError()), std::system_category()};
  }
  MountInfo id;
  id.type = std::filesystem::path(fs_name).string();
  id.mount_point = std::filesystem::path(root).string();
  id.source = id.mount_point;
  char fsid[16];
  std::snprintf(fsid, sizeof fsid, "%08lx", static_cast<unsigned long>(serial));
  id.fsid = fsid;
  out = std::move(id);
  return {};
}

std::string kernel_release() { return "windows"; }

std::filesystem::path VerdictStore::default_path() {
  if (const char* env = std::getenv("LOCKSMITH_VERDICTS"); env != nullptr && *env != '\0') {
    return env;
  }
  const char* base = std::getenv("LOCALAPPDATA");
  return std::filesystem::path(base != nullptr ? base : ".") / "locksmith" / "verdicts";
}

}  // namespace locksmith
