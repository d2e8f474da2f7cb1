// The multi-process test binary's main: GoogleTest, or a child role when a test re-runs this
// binary as `--locksmith-child=ROLE ARGS...` (see child_roles.cpp).
#include <signal.h>

#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "mp_support.hpp"

int main(int argc, char** argv) {
  // A child that died must show up as EPIPE on its stdin, not kill the test binary.
  ::signal(SIGPIPE, SIG_IGN);
  if (argc >= 2) {
    const std::string_view first = argv[1];
    if (first.substr(0, locksmith::mp::kChildFlag.size()) == locksmith::mp::kChildFlag) {
      const std::string role(first.substr(locksmith::mp::kChildFlag.size()));
      return locksmith::mp::run_child_role(role, std::vector<std::string>(argv + 2, argv + argc));
    }
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
