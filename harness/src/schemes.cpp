// The URL schemes of the libraries this build has: specs such as redis://HOST:PORT/KEY reach
// open_lock() only after their library registered them.
#include <mutex>

#include "locksmith/harness/engine.hpp"
#if defined(LOCKSMITH_HAVE_REDIS)
#include "locksmith/redis/spec.hpp"
#endif

namespace locksmith::harness {

void register_schemes() {
  static std::once_flag once;
  std::call_once(once, [] {
#if defined(LOCKSMITH_HAVE_REDIS)
    redis::register_redis_schemes();
#endif
  });
}

}  // namespace locksmith::harness
