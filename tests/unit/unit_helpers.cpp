#include "unit_helpers.hpp"

#include <sys/stat.h>

namespace locksmith::unit {

int run_self(const std::string& mode, const std::vector<std::string>& env, int ignore_signal) {
  test::SpawnOptions o;
  o.in = test::Stdio::null;
  o.out = test::Stdio::inherit;
  o.drop_env_prefix = "LOCKSMITH_";  // the child's environment is ours to set
  o.env = env;
  if (ignore_signal > 0) o.ignore_signals = {ignore_signal};
  Subprocess child = Subprocess::self(mode, {}, o);
  const auto code = child.wait_exit();
  return code && *code >= 0 ? *code : -1;
}

std::set<std::string> listing(const std::filesystem::path& dir) {
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.insert(entry.path().filename().string());
  }
  return names;
}

unsigned current_umask() {
  const mode_t old = ::umask(022);
  ::umask(old);
  return static_cast<unsigned>(old);
}

}  // namespace locksmith::unit
