#include "locksmith/unique_fd.hpp"
#include "sys_win.hpp"

namespace locksmith {

void UniqueFd::reset(native_handle h) noexcept {
  const native_handle old = std::exchange(h_, h);
  if (old != kInvalid && old != nullptr) ::CloseHandle(detail::to_handle(old));
}

}  // namespace locksmith
