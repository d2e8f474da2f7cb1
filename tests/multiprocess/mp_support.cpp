#include "mp_support.hpp"

#include <fstream>
#include <string>

namespace locksmith::mp {

bool catches_signal(pid_t pid, int signo) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("SigCgt:", 0) == 0) {
      const unsigned long long mask = std::stoull(line.substr(7), nullptr, 16);
      return ((mask >> (signo - 1)) & 1ULL) != 0;
    }
  }
  return false;
}

}  // namespace locksmith::mp
