// Helpers of the FileStore tests: self-checking messages and forked children with bounded waits.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace fstest {

using namespace std::chrono_literals;

// Every wait in these tests is bounded by this.
inline constexpr std::chrono::milliseconds kWait = 60s;

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

// Forks; the child runs fn and _exits with its result (125 if it throws).
pid_t fork_child(const std::function<int()>& fn);
// waitpid status, or -1 if the child did not end within `timeout` (it is then SIGKILLed).
int wait_child(pid_t pid, std::chrono::milliseconds timeout = kWait);
bool exited_ok(int status);

// Names (not paths) in a directory, sorted; empty if it does not exist.
std::vector<std::string> names_in(const std::filesystem::path& dir);

}  // namespace fstest
