#include "token.hpp"

#include <sys/random.h>

#include <array>
#include <cerrno>

namespace locksmith::redis::detail {

std::error_code random_bytes(void* out, std::size_t size) noexcept {
  auto* p = static_cast<unsigned char*>(out);
  std::size_t have = 0;
  while (have < size) {
    const ssize_t n = ::getrandom(p + have, size - have, 0);
    if (n < 0) {
      const int e = errno;
      if (e == EINTR) continue;
      return {e, std::generic_category()};
    }
    have += static_cast<std::size_t>(n);
  }
  return {};
}

std::error_code new_token(std::string& out) {
  std::array<unsigned char, 16> bytes{};
  if (const auto ec = random_bytes(bytes.data(), bytes.size())) return ec;
  static constexpr char kHex[] = "0123456789abcdef";
  out.clear();
  out.reserve(32);
  for (const unsigned char b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xf]);
  }
  return {};
}

}  // namespace locksmith::redis::detail
