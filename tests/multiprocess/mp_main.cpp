// The multi-process test binary's main: GoogleTest, or a child role when a test re-runs this
// binary as `--locksmith-child=ROLE ARGS...` (see child_roles.cpp).
#include <signal.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "mp_support.hpp"

int main(int argc, char** argv) {
  // A child that died must show up as EPIPE on its stdin, not kill the test binary.
  ::signal(SIGPIPE, SIG_IGN);
  if (const auto role = locksmith::test::child_role(argc, argv)) {
    return locksmith::mp::run_child_role(*role, std::vector<std::string>(argv + 2, argv + argc));
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
