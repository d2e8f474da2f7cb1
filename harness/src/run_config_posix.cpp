// RunConfig to and from run.json (one schema, versioned), and run ids from the OS.
#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include "locksmith/harness/run_config.hpp"

namespace locksmith::harness {
namespace {

using nlohmann::json;

template <class T>
void take(const json& j, const char* key, T& out, const std::string& origin) {
  const auto it = j.find(key);
  if (it == j.end()) {
    throw std::runtime_error("'" + origin + "': run description has no field '" + key + "'");
  }
  try {
    out = it->get<T>();
  } catch (const json::exception&) {
    throw std::runtime_error("'" + origin + "': field '" + key + "' has the wrong type (" +
                             it->dump() + ")");
  }
}

}  // namespace

std::string RunConfig::nemesis_text() const {
  std::string out;
  for (const auto& n : nemesis) out += (out.empty() ? "" : ",") + n;
  return out;
}

RunInfo RunConfig::info() const {
  RunInfo i;
  i.spec = spec;
  i.kind = kind;
  i.max_holders = max_holders;
  i.shared_mix = shared_ratio > 0;
  i.workers = workers;
  i.timeout_ns = timeout_ns;
  i.duration_ns = duration_ns;
  i.start_ns = start_ns;
  i.nemesis = nemesis_text();
  i.counter = counter;
  i.fenced = fenced;
  i.expiry_bound_ns = expiry_bound_ns;
  return i;
}

std::string RunConfig::to_json() const {
  const json j = {
      {"schema", kSchemaVersion},
      {"run_id", run_id},
      {"hostname", hostname},
      {"host", host},
      {"hosts", hosts},
      {"first_worker_id", first_worker_id},
      {"spec", spec},
      {"peer_spec", peer_spec},
      {"kind", kind},
      {"workload", workload},
      {"processes", processes},
      {"threads", threads},
      {"workers", workers},
      {"max_holders", max_holders},
      {"shared_ratio", shared_ratio},
      {"hold_ns", hold_ns},
      {"think_ns", think_ns},
      {"timeout_ns", timeout_ns},
      {"duration_ns", duration_ns},
      {"iterations", iterations},
      {"start_ns", start_ns},
      {"nemesis", nemesis},
      {"nemesis_interval_ns", nemesis_interval_ns},
      {"pause_for_ns", pause_for_ns},
      {"tolerate_failures", tolerate_failures},
      {"counter", counter},
      {"guard", guard},
      {"peer_guard", peer_guard},
      {"fenced", fenced},
      {"expiry_bound_ns", expiry_bound_ns},
      {"keep_alive", keep_alive},
  };
  return j.dump(2) + "\n";
}

RunConfig RunConfig::from_json(const std::string& text, const std::string& origin) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw std::runtime_error("'" + origin +
                             "' is not a run description (invalid JSON: " + e.what() + ")");
  }
  if (!j.is_object()) throw std::runtime_error("'" + origin + "' is not a run description");
  int schema = 0;
  if (!j.contains("schema")) {
    throw std::runtime_error("'" + origin +
                             "' was written by an older locksmith (no schema version); re-run");
  }
  take(j, "schema", schema, origin);
  if (schema != kSchemaVersion) {
    throw std::runtime_error("'" + origin + "' has schema " + std::to_string(schema) +
                             "; this locksmith reads schema " + std::to_string(kSchemaVersion));
  }
  RunConfig c;
  take(j, "run_id", c.run_id, origin);
  take(j, "hostname", c.hostname, origin);
  take(j, "host", c.host, origin);
  take(j, "hosts", c.hosts, origin);
  take(j, "first_worker_id", c.first_worker_id, origin);
  take(j, "spec", c.spec, origin);
  take(j, "peer_spec", c.peer_spec, origin);
  take(j, "kind", c.kind, origin);
  take(j, "workload", c.workload, origin);
  take(j, "processes", c.processes, origin);
  take(j, "threads", c.threads, origin);
  take(j, "workers", c.workers, origin);
  take(j, "max_holders", c.max_holders, origin);
  take(j, "shared_ratio", c.shared_ratio, origin);
  take(j, "hold_ns", c.hold_ns, origin);
  take(j, "think_ns", c.think_ns, origin);
  take(j, "timeout_ns", c.timeout_ns, origin);
  take(j, "duration_ns", c.duration_ns, origin);
  take(j, "iterations", c.iterations, origin);
  take(j, "start_ns", c.start_ns, origin);
  take(j, "nemesis", c.nemesis, origin);
  take(j, "nemesis_interval_ns", c.nemesis_interval_ns, origin);
  take(j, "pause_for_ns", c.pause_for_ns, origin);
  take(j, "tolerate_failures", c.tolerate_failures, origin);
  take(j, "counter", c.counter, origin);
  take(j, "guard", c.guard, origin);
  take(j, "peer_guard", c.peer_guard, origin);
  take(j, "fenced", c.fenced, origin);
  take(j, "expiry_bound_ns", c.expiry_bound_ns, origin);
  take(j, "keep_alive", c.keep_alive, origin);
  if (c.run_id.size() != 32 ||
      c.run_id.find_first_not_of("0123456789abcdef") != std::string::npos) {
    throw std::runtime_error("'" + origin + "': run_id '" + c.run_id + "' is not 32 hex digits");
  }
  if (c.workers == 0 || c.workers != c.processes * c.threads || c.host >= c.hosts) {
    throw std::runtime_error("'" + origin + "': workers " + std::to_string(c.workers) + " of " +
                             std::to_string(c.processes) + " processes x " +
                             std::to_string(c.threads) + " threads, host " +
                             std::to_string(c.host) + " of " + std::to_string(c.hosts) +
                             " do not add up");
  }
  return c;
}

RunConfig RunConfig::load(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) {
    const int err = errno != 0 ? errno : ENOENT;
    throw std::system_error(err, std::generic_category(), "cannot read '" + file.string() + "'");
  }
  std::stringstream text;
  text << in.rdbuf();
  return from_json(text.str(), file.string());
}

void RunConfig::save(const std::filesystem::path& file) const {
  const std::string text = to_json();
  const std::filesystem::path tmp = file.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) {
    throw std::system_error(errno, std::generic_category(), "cannot create '" + tmp.string() + "'");
  }
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : ENOSPC;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw std::system_error(err, std::generic_category(), "cannot write '" + tmp.string() + "'");
    }
    done += static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0 || ::rename(tmp.c_str(), file.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw std::system_error(err, std::generic_category(), "cannot write '" + file.string() + "'");
  }
}

std::string new_run_id() {
  std::array<unsigned char, 16> bytes{};
  std::size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::getrandom(bytes.data() + got, bytes.size() - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::system_error(errno, std::generic_category(), "getrandom");
    got += static_cast<std::size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

}  // namespace locksmith::harness
