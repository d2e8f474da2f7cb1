// UniqueFd: the one owner of an OS file handle. Move-only; closes on destruction.
#pragma once

#include <utility>

#include "locksmith/platform.hpp"

namespace locksmith {

class UniqueFd {
 public:
#if defined(LOCKSMITH_OS_WINDOWS)
  static inline const native_handle kInvalid = reinterpret_cast<native_handle>(-1);
#else
  static constexpr native_handle kInvalid = -1;
#endif

  UniqueFd() noexcept = default;
  explicit UniqueFd(native_handle h) noexcept : h_(h) {}
  UniqueFd(UniqueFd&& other) noexcept : h_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  native_handle get() const noexcept { return h_; }
  bool valid() const noexcept { return h_ != kInvalid; }
  explicit operator bool() const noexcept { return valid(); }

  // Gives up ownership without closing.
  native_handle release() noexcept { return std::exchange(h_, kInvalid); }

  // Closes the current handle (never retried: a failed close has still released the fd).
  void reset(native_handle h = kInvalid) noexcept;

 private:
  native_handle h_ = kInvalid;
};

}  // namespace locksmith
