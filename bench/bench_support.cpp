#include "bench_support.hpp"

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>
#include <vector>

#ifndef LOCKSMITH_BENCH_DEFAULT_DIR
#define LOCKSMITH_BENCH_DEFAULT_DIR "."
#endif

namespace locksmith::bench {
namespace {

class ScratchDir {
 public:
  ScratchDir() {
    const char* env = std::getenv("LOCKSMITH_BENCH_DIR");
    const std::filesystem::path base = env != nullptr && *env != '\0'
                                           ? std::filesystem::path(env)
                                           : std::filesystem::path(LOCKSMITH_BENCH_DEFAULT_DIR);
    std::filesystem::create_directories(base);
    std::string templ = (base / "locksmith-bench.XXXXXX").string();
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr) {
      throw std::system_error(errno, std::generic_category(), "mkdtemp in " + base.string());
    }
    path_ = std::filesystem::absolute(buf.data());
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace

const std::filesystem::path& bench_dir() {
  static const ScratchDir dir;
  return dir.path();
}

std::string filesystem_name(const std::filesystem::path& p) {
  struct statfs st {};
  if (::statfs(p.c_str(), &st) != 0) return std::string("unknown (") + std::strerror(errno) + ")";
  // Magic numbers from <linux/magic.h>.
  switch (static_cast<unsigned long>(st.f_type)) {
    case 0xEF53UL:
      return "ext4/ext3/ext2";
    case 0x01021994UL:
      return "tmpfs";
    case 0x58465342UL:
      return "xfs";
    case 0x9123683EUL:
      return "btrfs";
    case 0x6969UL:
      return "nfs";
    case 0x794C7630UL:
      return "overlayfs";
    case 0x2FC12FC1UL:
      return "zfs";
    case 0x65735546UL:
      return "fuse";
    default: {
      char hex[32];
      std::snprintf(hex, sizeof hex, "0x%lx", static_cast<unsigned long>(st.f_type));
      return std::string("statfs f_type ") + hex;
    }
  }
}

int raw_open(const std::filesystem::path& path) noexcept {
  return ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
}

void report_percentiles(benchmark::State& state, std::vector<double>& us,
                        const std::string& prefix) {
  if (us.empty()) return;
  std::sort(us.begin(), us.end());
  const auto pct = [&](double p) {
    return us[std::min(us.size() - 1,
                       static_cast<std::size_t>(p * static_cast<double>(us.size())))];
  };
  state.counters[prefix + "p50_us"] = pct(0.50);
  state.counters[prefix + "p90_us"] = pct(0.90);
  state.counters[prefix + "p99_us"] = pct(0.99);
  state.counters[prefix + "max_us"] = us.back();
}

}  // namespace locksmith::bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const auto& dir = locksmith::bench::bench_dir();
  benchmark::AddCustomContext("locksmith_bench_dir", dir.string());
  benchmark::AddCustomContext("locksmith_bench_fs", locksmith::bench::filesystem_name(dir));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
