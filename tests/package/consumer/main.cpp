// Takes and releases a lock on argv[1]; prints "ok" on success.
#include <cstdio>
#include <mutex>

#include "locksmith/locksmith.hpp"

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  locksmith::FileLock lock(argv[1]);
  {
    std::unique_lock<locksmith::FileLock> guard(lock);
    if (!lock.owns_lock()) return 1;
  }
  std::puts(lock.owns_lock() ? "still held" : "ok");
  return lock.owns_lock() ? 1 : 0;
}
