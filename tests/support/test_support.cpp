#include "test_support.hpp"

#include <cstdlib>
#include <stdexcept>
#include <string>
#include <system_error>

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>

namespace locksmith::test {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base && *base ? base : "/tmp") + "/locksmith-test-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {
    throw std::system_error(errno, std::generic_category(), "mkdtemp " + templ);
  }
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

bool fail_syscalls(const std::vector<long>& numbers, int err, bool fcntl_locks,
                   std::optional<std::pair<unsigned, std::uint32_t>> only_if_arg) {
#if defined(__x86_64__)
  constexpr std::uint32_t kArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
  constexpr std::uint32_t kArch = AUDIT_ARCH_AARCH64;
#else
  constexpr std::uint32_t kArch = 0;
#endif
  if (kArch == 0) return false;
  const auto fail = static_cast<std::uint32_t>(SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA));
  constexpr auto kNr = static_cast<std::uint32_t>(offsetof(seccomp_data, nr));
  constexpr auto kArchAt = static_cast<std::uint32_t>(offsetof(seccomp_data, arch));
  constexpr auto kCmd = static_cast<std::uint32_t>(offsetof(seccomp_data, args[1]));  // low word
  std::vector<sock_filter> prog = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kArchAt),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kArch, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kNr),
  };
  for (const long n : numbers) {
    if (!only_if_arg) {
      prog.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(n), 0, 1));
      prog.push_back(BPF_STMT(BPF_RET | BPF_K, fail));
      continue;
    }
    // nr == n ? (arg == V ? fail : allow) : next; the accumulator is reloaded with nr after.
    const auto arg_at =
        static_cast<std::uint32_t>(offsetof(seccomp_data, args) + 8 * only_if_arg->first);
    prog.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(n), 0, 4));
    prog.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, arg_at));
    prog.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, only_if_arg->second, 0, 1));
    prog.push_back(BPF_STMT(BPF_RET | BPF_K, fail));
    prog.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  }
  if (fcntl_locks) {
    const std::vector<sock_filter> fcntl_rules = {
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_fcntl, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kCmd),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, F_SETLK, 4, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, F_SETLKW, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, F_OFD_SETLK, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, F_OFD_SETLKW, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, fail),
    };
    prog.insert(prog.end(), fcntl_rules.begin(), fcntl_rules.end());
  } else {
    prog.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  }
  sock_fprog fprog{static_cast<unsigned short>(prog.size()), prog.data()};
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return false;
  return ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog) == 0;
}

}  // namespace locksmith::test
