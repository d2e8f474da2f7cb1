// The umbrella header alone is enough to use every part of locksmith::core: this file includes
// nothing else from locksmith (test_support.hpp only makes a temporary directory).
#include "locksmith/locksmith.hpp"

#include <gtest/gtest.h>

#include "test_support.hpp"

namespace locksmith::unit {
namespace {

TEST(UmbrellaHeader, DeclaresAutoLock) {
  const test::TempDir dir;
  AutoLock lock(dir / "auto");
  ASSERT_TRUE(lock.try_lock());
  EXPECT_TRUE(lock.mechanism().has_value());
  lock.unlock();
}

#if defined(LOCKSMITH_OS_POSIX)
TEST(UmbrellaHeader, DeclaresFileStore) {
  const test::TempDir dir;
  FileStore store(dir / "store");
  store.prepare();
  FileStore::Writer w = store.create("m");
  w.write("hello");
  w.commit();
  EXPECT_TRUE(store.claim("m", "test"));
  EXPECT_EQ(store.read("m", FileStore::kCur), "hello");
}
#endif

}  // namespace
}  // namespace locksmith::unit
