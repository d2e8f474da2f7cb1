// Helpers of the FileStore tests: self-checking messages and directory listings. (Child
// processes come from tests/support/subprocess.hpp.)
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace fstest {

// A message that proves its own integrity: a header line
// "LSFS1 p=<producer> s=<seq> n=<body length> h=<fnv1a-64 of body>\n" and a body of
// pseudo-random bytes derived from (producer, seq). Lengths vary from 0 to ~20 KiB so that many
// messages take several write() calls.
std::string make_message(int producer, int seq);
// Its header and body, separately (a producer writes them in pieces).
std::string message_body(int producer, int seq);
std::string message_header(int producer, int seq, const std::string& body);

struct MessageId {
  int producer = -1;
  int seq = -1;
};
// The id of a complete, intact message; nullopt for anything truncated or corrupted.
std::optional<MessageId> check_message(const std::string& content);

// Names (not paths) in a directory, sorted; empty if it does not exist.
std::vector<std::string> names_in(const std::filesystem::path& dir);

}  // namespace fstest
