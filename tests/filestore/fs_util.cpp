#include "fs_util.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

namespace fstest {
namespace {

std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

}  // namespace

std::string message_body(int producer, int seq) {
  std::uint64_t state = mix((static_cast<std::uint64_t>(producer) << 32) ^
                            static_cast<std::uint64_t>(seq) ^ 0x9e3779b97f4a7c15ULL);
  const std::size_t len = state % 20000;
  std::string body(len, '\0');
  for (std::size_t i = 0; i < len; ++i) {
    state = mix(state + i);
    body[i] = static_cast<char>(state & 0xff);
  }
  return body;
}

std::string message_header(int producer, int seq, const std::string& body) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "LSFS1 p=%d s=%d n=%zu h=%016" PRIx64 "\n", producer, seq,
                body.size(), fnv1a(body));
  return buf;
}

std::string make_message(int producer, int seq) {
  std::string body = message_body(producer, seq);
  return message_header(producer, seq, body) + body;
}

std::optional<MessageId> check_message(const std::string& content) {
  const auto nl = content.find('\n');
  if (nl == std::string::npos) return std::nullopt;
  MessageId id;
  std::size_t n = 0;
  std::uint64_t h = 0;
  const std::string header = content.substr(0, nl);
  if (std::sscanf(header.c_str(), "LSFS1 p=%d s=%d n=%zu h=%" SCNx64, &id.producer, &id.seq, &n,
                  &h) != 4) {
    return std::nullopt;
  }
  const std::string body = content.substr(nl + 1);
  if (body.size() != n || fnv1a(body) != h) return std::nullopt;
  if (body != message_body(id.producer, id.seq)) return std::nullopt;
  return id;
}

std::vector<std::string> names_in(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace fstest
