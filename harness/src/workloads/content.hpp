// Self-checking content shared by the atomic-write and FileStore workloads: a version (or message
// id) whose every byte is derived from it, so a partial or mixed read is recognisable.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace locksmith::harness::detail {

// "locksmith-atomic VERSION LENGTH\n" + LENGTH payload bytes + "\n".
std::string versioned_content(std::int64_t version);
// The version `content` holds, or nullopt when it is not one complete version.
std::optional<std::int64_t> parse_versioned(const std::string& content);
// Reads the whole file; false on ENOENT. Throws std::system_error naming the file otherwise.
bool read_whole(const std::string& path, std::string& out);
// A version number no other worker uses: (worker + 1) << 32 | op.
std::int64_t unique_version(std::uint32_t worker, std::uint32_t op);

}  // namespace locksmith::harness::detail
