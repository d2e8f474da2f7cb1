// The one bound on every wait in the test suites.
#pragma once

#include <chrono>

namespace locksmith::test {

// Long enough never to fire on a healthy run on a loaded machine, short enough that a hang fails
// the test well before the ctest timeout (LOCKSMITH_TEST_TIMEOUT, 120 s). Nothing waits this long
// when things work: waits end on a pipe, a file or an exit, and this only bounds them.
inline constexpr std::chrono::milliseconds kWaitLimit{30000};

}  // namespace locksmith::test
