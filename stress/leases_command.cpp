#include "leases_command.hpp"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "locksmith/error.hpp"
#include "locksmith/spec.hpp"

#ifdef LOCKSMITH_HAVE_REDIS
#include "locksmith/redis/registry.hpp"
#include "locksmith/redis/spec.hpp"
#endif

namespace locksmith::cli {

struct LeasesCommand::State {
  CLI::App* leases = nullptr;
  CLI::App* list = nullptr;
  CLI::App* show = nullptr;
  CLI::App* acquire = nullptr;
  CLI::App* keep_alive = nullptr;
  CLI::App* extend = nullptr;
  CLI::App* release = nullptr;
  std::string server = "redis://127.0.0.1:6379";
  std::string name;
  std::string token;
  std::string ttl;
  std::string by;
  std::string timeout = "0";
  std::string creator;
  bool json = false;
  bool force = false;
};

namespace {

constexpr const char* kLeasesHelp =
    "Named leases on Redis with a record of who holds them (creator, host, pid, created, fence).\n"
    "A lease NAME is the redis-py Lock / RedisLease key PREFIX+NAME (default prefix\n"
    "locksmith:lease:), so redis-py and redis:// locks on that key exclude registered leases.\n"
    "Exit status: 0 ok; 1 held by someone else, not the owner, or no such lease; 2 usage;\n"
    "3 server error (unreachable, authentication, script error).";

constexpr const char* kServerHelp =
    "redis://[USER:PASSWORD@]HOST[:PORT][?prefix=P&db=N&connect_timeout=D&command_timeout=D]\n"
    "(default redis://127.0.0.1:6379)";

}  // namespace

LeasesCommand::LeasesCommand(CLI::App& app) : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.leases = app.add_subcommand("leases", kLeasesHelp);
  s.leases->require_subcommand(1);
  s.leases->footer(kServerHelp);
  const auto common = [&s](CLI::App* cmd) { cmd->add_option("--server", s.server, kServerHelp); };
  const auto named = [&s, &common](CLI::App* cmd) {
    cmd->add_option("name", s.name, "Lease name")->required();
    common(cmd);
  };
  s.list = s.leases->add_subcommand("list", "List the live leases (pruning records of gone ones)");
  common(s.list);
  s.list->add_flag("--json", s.json, "JSON output");
  s.show = s.leases->add_subcommand("show", "Show one lease (exit 1 when nobody holds it)");
  named(s.show);
  s.show->add_flag("--json", s.json, "JSON output");
  s.acquire = s.leases->add_subcommand(
      "acquire",
      "Take the lease and print its token and fence; the lease outlives this command until its\n"
      "ttl runs out or `release --token` (keep the token to release, keep-alive or extend).\n"
      "The record's pid is this command's parent (the shell or script that asked).");
  named(s.acquire);
  s.acquire->add_option("--ttl", s.ttl, "Time to live, e.g. 30s, 5m, 1.5h")->required();
  s.acquire->add_option("--creator", s.creator, "Who holds it (default: $USER)");
  s.acquire->add_option("--timeout", s.timeout,
                        "How long to wait for the lease (default 0: fail at once when held)");
  s.acquire->add_flag("--json", s.json, "JSON output");
  s.keep_alive =
      s.leases->add_subcommand("keep-alive", "Owner only: reset the lease's time to live");
  named(s.keep_alive);
  s.keep_alive->add_option("--token", s.token, "The token printed by acquire")->required();
  s.keep_alive->add_option("--ttl", s.ttl, "New time to live (default 30s)");
  s.extend = s.leases->add_subcommand("extend", "Owner only: add to the lease's time to live");
  named(s.extend);
  s.extend->add_option("--token", s.token, "The token printed by acquire")->required();
  s.extend->add_option("--by", s.by, "How much to add, e.g. 5m")->required();
  s.release = s.leases->add_subcommand(
      "release", "Release the lease: by its owner (--token), or whoever holds it (--force)");
  named(s.release);
  auto* token = s.release->add_option("--token", s.token, "The token printed by acquire");
  auto* force = s.release->add_flag("--force", s.force, "Delete the lease whoever holds it");
  token->excludes(force);
}

LeasesCommand::~LeasesCommand() = default;

bool LeasesCommand::selected() const { return state_->leases->parsed(); }

#ifndef LOCKSMITH_HAVE_REDIS

int LeasesCommand::run() const {
  std::fprintf(stderr, "locksmith leases: this build has no Redis support (hiredis)\n");
  return kLeasesServer;
}

#else

namespace {

namespace lr = locksmith::redis;
using std::chrono::milliseconds;

struct Server {
  lr::ConnectOptions options;
  std::string prefix = "locksmith:lease:";
};

// redis://AUTHORITY[/][?OPTIONS]: prefix= is ours, the rest goes to the redis:// spec parser.
Server parse_server(const std::string& url) {
  constexpr std::string_view scheme = "redis://";
  if (url.compare(0, scheme.size(), scheme) != 0) {
    throw LockError(locksmith::make_error_code(locksmith::errc::invalid_spec),
                    "--server (expected redis://[USER:PASSWORD@]HOST[:PORT])", url);
  }
  std::string rest = url.substr(scheme.size());
  std::string query;
  if (const auto q = rest.find('?'); q != std::string::npos) {
    query = rest.substr(q + 1);
    rest.resize(q);
  }
  if (const auto slash = rest.find('/'); slash != std::string::npos) {
    if (slash + 1 != rest.size()) {
      throw LockError(locksmith::make_error_code(locksmith::errc::invalid_spec),
                      "--server (no /KEY here: leases are named on the command line)", url);
    }
    rest.resize(slash);
  }
  Server out;
  std::string passed;
  std::string_view qv = query;
  while (!qv.empty()) {
    const auto amp = qv.find('&');
    const std::string_view item = qv.substr(0, amp);
    qv = amp == std::string_view::npos ? std::string_view() : qv.substr(amp + 1);
    if (item.substr(0, 7) == "prefix=") {
      out.prefix = std::string(item.substr(7));
    } else if (!item.empty()) {
      passed += passed.empty() ? "?" : "&";
      passed += item;
    }
  }
  out.options = lr::parse_redis_spec("redis://" + rest + "/leases" + passed).server;
  return out;
}

milliseconds parse_ms(const std::string& text, const char* what) {
  try {
    return std::chrono::ceil<milliseconds>(parse_duration(text));
  } catch (const LockError&) {
    throw LockError(locksmith::make_error_code(locksmith::errc::invalid_spec),
                    std::string(what) + " (a duration such as 250ms, 30s, 5m or 1.5h)", text);
  }
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

// 3d4h, 4m05s, 12.3s, 250ms.
std::string human(milliseconds d) {
  const long long ms = d.count();
  char buf[64];
  if (ms < 1000) {
    std::snprintf(buf, sizeof buf, "%lldms", ms);
  } else if (ms < 60'000) {
    std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms) / 1000);
  } else if (ms < 3'600'000) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", ms / 60'000, ms / 1000 % 60);
  } else if (ms < 86'400'000) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", ms / 3'600'000, ms / 60'000 % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lldd%02lldh", ms / 86'400'000, ms / 3'600'000 % 24);
  }
  return buf;
}

std::optional<milliseconds> age_of(const lr::LeaseRecord& r) {
  if (!r.created) return std::nullopt;
  return std::max(milliseconds(0), std::chrono::duration_cast<milliseconds>(
                                       std::chrono::system_clock::now() - *r.created));
}

std::string to_json(const lr::LeaseRecord& r) {
  std::string o = "{\"name\":" + json_string(r.name) + ",\"key\":" + json_string(r.key) +
                  ",\"state\":" + json_string(lr::to_string(r.state)) + ",\"registered\":" +
                  (r.state == lr::LeaseRecord::State::registered ? "true" : "false");
  const auto opt_str = [&o](const char* k, const std::string& v) {
    o += ",\"" + std::string(k) + "\":" + (v.empty() ? "null" : json_string(v));
  };
  const auto opt_num = [&o](const char* k, std::optional<long long> v) {
    o += ",\"" + std::string(k) + "\":" + (v ? std::to_string(*v) : "null");
  };
  opt_str("creator", r.creator);
  opt_str("host", r.host);
  opt_num("pid", r.pid);
  opt_num("created_ms",
          r.created
              ? std::optional<long long>(
                    std::chrono::duration_cast<milliseconds>(r.created->time_since_epoch()).count())
              : std::nullopt);
  const auto age = age_of(r);
  opt_num("age_ms", age ? std::optional<long long>(age->count()) : std::nullopt);
  opt_num("fence",
          r.fence ? std::optional<long long>(static_cast<long long>(*r.fence)) : std::nullopt);
  opt_num("expires_in_ms",
          r.ttl_remaining ? std::optional<long long>(r.ttl_remaining->count()) : std::nullopt);
  return o + "}";
}

void print_table(const std::vector<lr::LeaseRecord>& records) {
  std::vector<std::vector<std::string> > rows;
  rows.push_back({"NAME", "CREATOR", "HOST", "PID", "AGE", "EXPIRES IN", "FENCE", "STATE"});
  for (const auto& r : records) {
    const auto age = age_of(r);
    rows.push_back({r.name, r.creator.empty() ? "-" : r.creator, r.host.empty() ? "-" : r.host,
                    r.pid ? std::to_string(*r.pid) : "-", age ? human(*age) : "-",
                    r.ttl_remaining ? human(*r.ttl_remaining) : "never",
                    r.fence ? std::to_string(*r.fence) : "-", lr::to_string(r.state)});
  }
  std::vector<std::size_t> width(rows.front().size(), 0);
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    std::printf("%s\n", line.c_str());
  }
}

int exit_for(std::error_code ec) {
  if (ec == locksmith::errc::busy || ec == locksmith::errc::timeout ||
      ec == locksmith::errc::not_locked || ec == locksmith::errc::lock_lost) {
    return kLeasesBusy;
  }
  if (ec == locksmith::errc::invalid_spec || ec == std::errc::invalid_argument) return kLeasesUsage;
  return kLeasesServer;
}

int fail(const char* what, std::error_code ec, const std::string& message) {
  std::fprintf(stderr, "locksmith leases %s: %s\n", what,
               message.empty() ? ec.message().c_str() : message.c_str());
  return exit_for(ec);
}

}  // namespace

int LeasesCommand::run() const {
  const State& s = *state_;
  // Before connecting: a bad name is a usage error whether or not the server answers.
  if (!s.list->parsed()) {
    if (const std::string why = lr::LeaseRegistry::name_problem(s.name); !why.empty()) {
      std::fprintf(stderr, "locksmith leases: invalid lease name: %s\n", why.c_str());
      return kLeasesUsage;
    }
  }
  try {
    const Server server = parse_server(s.server);
    lr::LeaseRegistry registry(server.options, server.prefix);
    if (s.list->parsed()) {
      std::vector<lr::LeaseRecord> records;
      if (const auto ec = registry.list(records)) return fail("list", ec, registry.last_error());
      if (s.json) {
        std::string o = "[";
        for (const auto& r : records) o += (o.size() > 1 ? "," : "") + to_json(r);
        std::printf("%s]\n", o.c_str());
      } else if (records.empty()) {
        std::printf("no leases\n");
      } else {
        print_table(records);
      }
      return kLeasesOk;
    }
    if (s.show->parsed()) {
      std::optional<lr::LeaseRecord> record;
      if (const auto ec = registry.show(s.name, record)) {
        return fail("show", ec, registry.last_error());
      }
      if (!record) {
        if (s.json) std::printf("null\n");
        std::fprintf(stderr, "locksmith leases show: no lease %s on %s\n", s.name.c_str(),
                     registry.endpoint().c_str());
        return kLeasesBusy;
      }
      if (s.json) {
        std::printf("%s\n", to_json(*record).c_str());
      } else {
        print_table({*record});
      }
      return kLeasesOk;
    }
    if (s.acquire->parsed()) {
      lr::LeaseOptions options;
      options.ttl = parse_ms(s.ttl, "--ttl");
      if (options.ttl.count() < 1) {
        throw LockError(locksmith::make_error_code(locksmith::errc::invalid_spec),
                        "--ttl (at least 1ms)", s.ttl);
      }
      options.timeout = parse_ms(s.timeout, "--timeout");
      std::string creator = s.creator;
      if (creator.empty()) {
        const char* user = std::getenv("USER");
        creator = user != nullptr && *user != '\0' ? user : "unknown";
      }
      // This command exits at once: the lease is the caller's (the parent process).
      options.info = {{"pid", std::to_string(::getppid())}};
      auto lease = registry.open(s.name, creator, options);
      if (const auto ec = lease->acquire(LockMode::exclusive, lease->default_deadline())) {
        if (is_contended(ec)) {
          std::string holder;
          std::optional<lr::LeaseRecord> record;
          if (!registry.show(s.name, record) && record) {
            holder = record->state == lr::LeaseRecord::State::registered
                         ? " by " + record->creator + " on " + record->host + " (pid " +
                               (record->pid ? std::to_string(*record->pid) : "?") + ")"
                         : std::string(" by an unregistered owner");
            if (record->ttl_remaining) holder += ", expires in " + human(*record->ttl_remaining);
          }
          std::fprintf(stderr, "locksmith leases acquire: lease %s on %s is held%s\n",
                       s.name.c_str(), registry.endpoint().c_str(), holder.c_str());
          return kLeasesBusy;
        }
        return fail("acquire", ec, lease->last_error());
      }
      const std::string token = lease->token();
      const std::string fence = lease->fence() ? std::to_string(*lease->fence()) : "null";
      lease->detach();  // it lives on until its ttl or `release --token`
      if (s.json) {
        std::printf("{\"name\":%s,\"key\":%s,\"token\":%s,\"fence\":%s,\"ttl_ms\":%lld}\n",
                    json_string(s.name).c_str(), json_string(registry.key(s.name)).c_str(),
                    json_string(token).c_str(), fence.c_str(),
                    static_cast<long long>(options.ttl.count()));
      } else {
        std::printf("token %s\nfence %s\n", token.c_str(), fence.c_str());
      }
      return kLeasesOk;
    }
    if (s.keep_alive->parsed()) {
      const auto ttl = parse_ms(s.ttl.empty() ? std::string("30s") : s.ttl, "--ttl");
      if (const auto ec = registry.keep_alive(s.name, s.token, ttl)) {
        return fail("keep-alive", ec, registry.last_error());
      }
      return kLeasesOk;
    }
    if (s.extend->parsed()) {
      if (const auto ec = registry.extend(s.name, s.token, parse_ms(s.by, "--by"))) {
        return fail("extend", ec, registry.last_error());
      }
      return kLeasesOk;
    }
    if (s.release->parsed()) {
      if (s.force) {
        bool existed = false;
        if (const auto ec = registry.force_release(s.name, &existed)) {
          return fail("release", ec, registry.last_error());
        }
        if (!existed) {
          // As for a release by token: a lease that is not there is status 1 (the README's
          // "no such lease"), so a script learns that it deleted nothing.
          std::fprintf(stderr, "locksmith leases release: no lease %s on %s (nothing deleted)\n",
                       s.name.c_str(), registry.endpoint().c_str());
          return kLeasesBusy;
        }
        return kLeasesOk;
      }
      if (s.token.empty()) {
        std::fprintf(stderr,
                     "locksmith leases release: give --token TOKEN (the owner's, printed by "
                     "acquire) or --force (delete it whoever holds it)\n");
        return kLeasesUsage;
      }
      if (const auto ec = registry.release(s.name, s.token)) {
        return fail("release", ec, registry.last_error());
      }
      return kLeasesOk;
    }
  } catch (const LockError& e) {
    std::fprintf(stderr, "locksmith leases: %s\n", e.what());
    return exit_for(e.code());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "locksmith leases: %s\n", e.what());
    return kLeasesServer;
  }
  return kLeasesUsage;
}

#endif

}  // namespace locksmith::cli
