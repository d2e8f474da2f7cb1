#include <unistd.h>

#include "locksmith/unique_fd.hpp"

namespace locksmith {

void UniqueFd::reset(native_handle h) noexcept {
  const native_handle old = std::exchange(h_, h);
  // Never retried: on Linux the fd is released even when close() reports EINTR.
  if (old != kInvalid) ::close(old);
}

}  // namespace locksmith
