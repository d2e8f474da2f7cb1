#include "locksmith/redis/connection.hpp"

#include <fcntl.h>
#include <hiredis.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "locksmith/error.hpp"

namespace locksmith::redis {
namespace {

class RedisCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "locksmith.redis"; }
  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::auth_failed:
        return "redis authentication failed";
      case errc::wrong_type:
        return "redis key holds a value of the wrong type";
      case errc::script_error:
        return "redis script error";
      case errc::no_script:
        return "redis script not loaded";
      case errc::server_error:
        return "redis server error";
      case errc::protocol_error:
        return "redis protocol error";
      case errc::connection_closed:
        return "redis server closed the connection";
      case errc::connect_failed:
        return "cannot connect to redis";
    }
    return "unknown redis error " + std::to_string(value);
  }
};

// with_message(): value = serial << kErrnoBits | errno, the text in a ring of kKept entries
// indexed by serial. A code whose entry was overwritten (or that was never made here) falls back
// to the errno's own text; its conditions come from the errno alone, so they never change.
constexpr int kErrnoBits = 12;  // Linux errnos are < 4096
constexpr std::size_t kKept = 1024;
constexpr int kSerials = 1 << (31 - kErrnoBits);

class MessageCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "locksmith.redis.os"; }
  std::string message(int value) const override {
    {
      const std::lock_guard lk(mu_);
      const Entry& e = ring_[slot(value)];
      if (e.value == value) return e.text;
    }
    return std::generic_category().message(errno_of(value));
  }
  std::error_condition default_error_condition(int value) const noexcept override {
    return {errno_of(value), std::generic_category()};
  }
  int record(int err, std::string text) {
    const std::lock_guard lk(mu_);
    serial_ = serial_ + 1 < kSerials ? serial_ + 1 : 1;
    const int value = (serial_ << kErrnoBits) | err;
    Entry& e = ring_[slot(value)];
    e.value = value;
    e.text = std::move(text);
    return value;
  }

 private:
  struct Entry {
    int value = 0;
    std::string text;
  };
  static int errno_of(int value) noexcept { return value & ((1 << kErrnoBits) - 1); }
  static std::size_t slot(int value) noexcept {
    return static_cast<std::size_t>(value >> kErrnoBits) % kKept;
  }
  mutable std::mutex mu_;
  std::array<Entry, kKept> ring_{};
  int serial_ = 0;
};

MessageCategory& message_category() {
  static MessageCategory category;
  return category;
}

// "250ms", "1.5s", "2s" (a budget computed as 1.999 s from a 2 s deadline reads as 2s).
std::string format_ms(std::chrono::milliseconds ms) {
  std::array<char, 32> buf{};
  if (ms.count() < 1000) {
    std::snprintf(buf.data(), buf.size(), "%lldms", static_cast<long long>(ms.count()));
    return buf.data();
  }
  std::snprintf(buf.data(), buf.size(), "%.1f", static_cast<double>(ms.count()) / 1000.0);
  std::string out = buf.data();
  if (out.size() > 2 && out.compare(out.size() - 2, 2, ".0") == 0) out.resize(out.size() - 2);
  return out + "s";
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

errc classify(std::string_view message) {
  if (starts_with(message, "NOSCRIPT")) return errc::no_script;
  if (message.find("WRONGTYPE") != std::string_view::npos) return errc::wrong_type;
  if (starts_with(message, "NOAUTH") || starts_with(message, "WRONGPASS") ||
      starts_with(message, "ERR invalid password") || starts_with(message, "ERR AUTH") ||
      starts_with(message, "ERR Client sent AUTH") || starts_with(message, "NOPERM")) {
    return errc::auth_failed;
  }
  if (message.find("script") != std::string_view::npos) return errc::script_error;
  return errc::server_error;
}

// Converts a hiredis reply; an error reply anywhere becomes `error`.
Reply convert(const redisReply* r, std::string& error) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::string;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::status;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::integer;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::array;
      out.elements.reserve(r->elements);
      for (std::size_t i = 0; i < r->elements; ++i) {
        out.elements.push_back(convert(r->element[i], error));
      }
      break;
    case REDIS_REPLY_ERROR:
      if (error.empty()) error.assign(r->str, r->len);
      break;
    default:  // REDIS_REPLY_NIL
      break;
  }
  return out;
}

// hiredis 0.14 writes with write(2), which raises SIGPIPE on a connection the server has reset
// and kills a program that does not ignore it; blocking the signal around every command costs
// four system calls. So hiredis only formats commands and parses replies here: the socket I/O is
// send(MSG_NOSIGNAL) and recv(2) on its blocking fd, whose SO_SNDTIMEO/SO_RCVTIMEO (set by
// redisSetTimeout) bound each call by the command timeout.

// Milliseconds left before `deadline` for a poll(), at most `cap` and at least 1.
int poll_ms(std::chrono::steady_clock::time_point deadline, std::chrono::milliseconds cap) {
  const auto left =
      std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  const auto ms = std::clamp<long long>(std::min(left, cap).count(), 1, INT_MAX);
  return static_cast<int>(ms);
}

// Writes all of [p, p+n); 0 or the errno (EAGAIN: the send timeout passed). With a deadline
// (not kNoDeadline) the sends do not block: a full socket buffer is waited for with poll()
// until the deadline, `cap` at most per wait.
int write_all(int fd, const char* p, std::size_t n, std::chrono::steady_clock::time_point deadline,
              std::chrono::milliseconds cap) noexcept {
  const bool bounded = deadline != Connection::kNoDeadline;
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL | (bounded ? MSG_DONTWAIT : 0));
    if (w < 0) {
      const int e = errno;
      if (e == EINTR) continue;
      if (bounded && (e == EAGAIN || e == EWOULDBLOCK)) {
        pollfd pfd{};
        pfd.fd = fd;
        pfd.events = POLLOUT;
        const int pr = ::poll(&pfd, 1, poll_ms(deadline, cap));
        if (pr > 0) continue;
        if (pr < 0 && errno == EINTR) continue;
        return pr == 0 ? EAGAIN : errno;
      }
      return e;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return 0;
}

struct CommandDeleter {
  void operator()(char* c) const noexcept { redisFreeCommand(c); }
};

struct ReplyDeleter {
  void operator()(void* r) const noexcept { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<void, ReplyDeleter>;

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  if (ms.count() <= 0) ms = std::chrono::milliseconds(1);
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

// --- SHA1 (FIPS 180-1), only to name scripts for EVALSHA. ---
std::uint32_t rol(std::uint32_t v, int n) { return (v << n) | (v >> (32 - n)); }

void sha1_block(std::array<std::uint32_t, 5>& h, const unsigned char* p) {
  std::array<std::uint32_t, 80> w{};
  for (std::size_t i = 0; i < 16; ++i) {
    w[i] = (std::uint32_t{p[4 * i]} << 24) | (std::uint32_t{p[4 * i + 1]} << 16) |
           (std::uint32_t{p[4 * i + 2]} << 8) | std::uint32_t{p[4 * i + 3]};
  }
  for (std::size_t i = 16; i < 80; ++i) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
  for (std::size_t i = 0; i < 80; ++i) {
    std::uint32_t f = 0;
    std::uint32_t k = 0;
    if (i < 20) {
      f = (b & c) | (~b & d);
      k = 0x5A827999;
    } else if (i < 40) {
      f = b ^ c ^ d;
      k = 0x6ED9EBA1;
    } else if (i < 60) {
      f = (b & c) | (b & d) | (c & d);
      k = 0x8F1BBCDC;
    } else {
      f = b ^ c ^ d;
      k = 0xCA62C1D6;
    }
    const std::uint32_t t = rol(a, 5) + f + e + k + w[i];
    e = d;
    d = c;
    c = rol(b, 30);
    b = a;
    a = t;
  }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
  h[4] += e;
}

}  // namespace

const std::error_category& redis_category() noexcept {
  static const RedisCategory category;
  return category;
}

std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), redis_category()}; }

std::error_code with_message(std::error_code os_error, std::string message) {
  if (os_error.category() != std::generic_category() || os_error.value() <= 0 ||
      os_error.value() >= (1 << kErrnoBits)) {
    return os_error;
  }
  return {message_category().record(os_error.value(), std::move(message)), message_category()};
}

std::string sha1_hex(std::string_view data) {
  std::array<std::uint32_t, 5> h = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  std::string msg(data);
  const std::uint64_t bits = static_cast<std::uint64_t>(data.size()) * 8;
  msg.push_back(static_cast<char>(0x80));
  while (msg.size() % 64 != 56) msg.push_back('\0');
  for (int i = 7; i >= 0; --i) msg.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
  for (std::size_t at = 0; at < msg.size(); at += 64) {
    sha1_block(h, reinterpret_cast<const unsigned char*>(msg.data() + at));
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(40);
  for (const std::uint32_t v : h) {
    for (int shift = 28; shift >= 0; shift -= 4) out.push_back(kHex[(v >> shift) & 0xf]);
  }
  return out;
}

Script::Script(std::string source) : source_(std::move(source)), sha1_(sha1_hex(source_)) {}

void Connection::ContextDeleter::operator()(redisContext* c) const noexcept { redisFree(c); }

Connection::Connection(ConnectOptions options) : options_(std::move(options)) {}
Connection::Connection(Connection&&) noexcept = default;
Connection& Connection::operator=(Connection&&) noexcept = default;
Connection::~Connection() = default;

std::string Connection::endpoint() const {
  if (options_.host.find(':') != std::string::npos) {
    return "[" + options_.host + "]:" + std::to_string(options_.port);
  }
  return options_.host + ":" + std::to_string(options_.port);
}

void Connection::close() noexcept { ctx_.reset(); }

std::chrono::milliseconds Connection::budget(std::chrono::milliseconds option) const noexcept {
  const auto cap = std::max(option, std::chrono::milliseconds(1));
  if (deadline_ == kNoDeadline) return cap;
  const auto left =
      std::chrono::ceil<std::chrono::milliseconds>(deadline_ - std::chrono::steady_clock::now());
  return std::clamp(left, std::chrono::milliseconds(1), cap);
}

std::string Connection::no_answer(std::chrono::milliseconds waited) const {
  return "redis " + endpoint() + " did not answer within " + format_ms(waited);
}

Result Connection::fail(std::error_code ec, std::string message) {
  last_error_ = message;
  return Result(ec, std::move(message));
}

std::error_code Connection::connect() {
  ctx_.reset();
  errno = 0;
  const auto connect_budget = budget(options_.connect_timeout);
  redisContext* raw =
      redisConnectWithTimeout(options_.host.c_str(), options_.port, to_timeval(connect_budget));
  const int saved = errno;
  std::unique_ptr<redisContext, ContextDeleter> ctx(raw);
  const std::string where = "cannot connect to redis at " + endpoint() + ": ";
  if (!ctx) {
    return fail(std::make_error_code(std::errc::not_enough_memory), where + "out of memory")
        .error();
  }
  if (ctx->err != 0) {
    if (ctx->err == REDIS_ERR_IO && (saved == ETIMEDOUT || saved == EINPROGRESS)) {
      return fail(std::make_error_code(std::errc::timed_out),
                  no_answer(connect_budget) + " (TCP connect)")
          .error();
    }
    if (ctx->err == REDIS_ERR_IO && saved != 0) {
      return fail(std::error_code(saved, std::generic_category()), where + std::strerror(saved))
          .error();
    }
    return fail(make_error_code(errc::connect_failed), where + ctx->errstr).error();
  }
  // hiredis 0.14 cannot open the socket with SOCK_CLOEXEC; set it now.
  const int flags = ::fcntl(ctx->fd, F_GETFD);
  if (flags >= 0) ::fcntl(ctx->fd, F_SETFD, flags | FD_CLOEXEC);
  if (redisSetTimeout(ctx.get(), to_timeval(options_.command_timeout)) != REDIS_OK) {
    const int e = errno;
    return fail(std::error_code(e, std::generic_category()),
                where + "cannot set the command timeout: " + std::strerror(e))
        .error();
  }
  ctx_ = std::move(ctx);
  if (!options_.password.empty()) {
    Result r = options_.user.empty() ? command({"AUTH", options_.password})
                                     : command({"AUTH", options_.user, options_.password});
    if (!r) {
      std::error_code ec = r.error();
      if (ec.category() == redis_category() && ec != errc::connection_closed) {
        ec = make_error_code(errc::auth_failed);
      }
      ctx_.reset();
      const std::string who = options_.user.empty() ? "" : " as user '" + options_.user + "'";
      return fail(ec, "redis " + endpoint() + ": AUTH" + who + " failed: " + r.message()).error();
    }
  }
  if (options_.db != 0) {
    Result r = command({"SELECT", std::to_string(options_.db)});
    if (!r) {
      ctx_.reset();
      return fail(r.error(), "redis " + endpoint() + ": SELECT " + std::to_string(options_.db) +
                                 " failed: " + r.message())
          .error();
    }
  }
  last_error_.clear();
  return {};
}

Result Connection::run(int argc, const char** argv, const std::size_t* lens) {
  // A connection the server closed while we were not using it (CLIENT KILL, timeout, restart)
  // is reopened before the command rather than failing it: a command on a connection already
  // known to be closed cannot have run. One non-blocking peek: EOF or an error means closed.
  if (ctx_ && ctx_->reader->pos == ctx_->reader->len) {
    char probe = 0;
    const ssize_t n = ::recv(ctx_->fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      ctx_.reset();
    }
  }
  if (const auto ec = write_command(argc, argv, lens)) return Result(ec, last_error_);
  ReplyPtr reply;
  {
    void* raw = nullptr;
    if (const auto ec = read_reply(raw)) return Result(ec, last_error_);
    reply.reset(raw);
  }
  std::string error;
  Reply out = convert(static_cast<redisReply*>(reply.get()), error);
  if (!error.empty()) {
    return fail(make_error_code(classify(error)), "redis " + endpoint() + ": " + error);
  }
  last_error_.clear();
  return Result(std::move(out));
}

Result Connection::command(std::initializer_list<std::string_view> args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (const auto a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  return run(static_cast<int>(argv.size()), argv.data(), lens.data());
}

Result Connection::command(const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  return run(static_cast<int>(argv.size()), argv.data(), lens.data());
}

Result Connection::eval(const Script& script, std::initializer_list<std::string_view> keys,
                        std::initializer_list<std::string_view> args) {
  const std::string nkeys = std::to_string(keys.size());
  std::array<const char*, 16> argv{};
  std::array<std::size_t, 16> lens{};
  if (3 + keys.size() + args.size() > argv.size()) {
    return fail(std::make_error_code(std::errc::argument_list_too_long),
                "redis: too many script arguments");
  }
  std::size_t n = 0;
  const auto push = [&](std::string_view s) {
    argv[n] = s.data();
    lens[n] = s.size();
    ++n;
  };
  push("EVALSHA");
  push(script.sha1());
  push(nkeys);
  for (const auto k : keys) push(k);
  for (const auto a : args) push(a);
  return run_script(script, static_cast<int>(n), argv.data(), lens.data());
}

Result Connection::eval_list(const Script& script, const std::vector<std::string>& keys,
                             const std::vector<std::string>& args) {
  const std::string nkeys = std::to_string(keys.size());
  std::vector<const char*> argv{"EVALSHA", script.sha1().c_str(), nkeys.c_str()};
  std::vector<std::size_t> lens{7, script.sha1().size(), nkeys.size()};
  argv.reserve(3 + keys.size() + args.size());
  lens.reserve(argv.capacity());
  for (const auto* list : {&keys, &args}) {
    for (const std::string& a : *list) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
  }
  return run_script(script, static_cast<int>(argv.size()), argv.data(), lens.data());
}

Result Connection::run_script(const Script& script, int argc, const char** argv,
                              std::size_t* lens) {
  Result r = run(argc, argv, lens);
  if (r.error() == errc::no_script) {
    argv[0] = "EVAL";
    lens[0] = 4;
    argv[1] = script.source().data();
    lens[1] = script.source().size();
    r = run(argc, argv, lens);
  }
  return r;
}

std::error_code Connection::send(std::initializer_list<std::string_view> args) {
  std::array<const char*, 16> argv{};
  std::array<std::size_t, 16> lens{};
  if (args.size() > argv.size()) {
    return fail(std::make_error_code(std::errc::argument_list_too_long),
                "redis: too many command arguments")
        .error();
  }
  std::size_t n = 0;
  for (const auto a : args) {
    argv[n] = a.data();
    lens[n] = a.size();
    ++n;
  }
  return write_command(static_cast<int>(n), argv.data(), lens.data());
}

std::error_code Connection::write_command(int argc, const char** argv, const std::size_t* lens) {
  if (!ctx_) {
    if (const auto ec = connect()) return ec;
  }
  char* raw = nullptr;
  const long long len = redisFormatCommandArgv(&raw, argc, argv, lens);
  const std::unique_ptr<char, CommandDeleter> command(raw);
  if (len < 0 || raw == nullptr) {
    return fail(std::make_error_code(std::errc::not_enough_memory), "redis: out of memory").error();
  }
  const int e =
      write_all(ctx_->fd, raw, static_cast<std::size_t>(len), deadline_, options_.command_timeout);
  if (e == 0) return {};
  ctx_.reset();  // a partly written command leaves the stream unusable
  if (e == EAGAIN || e == EWOULDBLOCK) {
    return fail(std::make_error_code(std::errc::timed_out),
                "redis " + endpoint() + " did not take a command within " +
                    format_ms(budget(options_.command_timeout)))
        .error();
  }
  return fail(std::error_code(e, std::generic_category()),
              "redis " + endpoint() + ": send: " + std::strerror(e))
      .error();
}

std::error_code Connection::read_reply(void*& out) {
  for (;;) {
    if (redisReaderGetReply(ctx_->reader, &out) != REDIS_OK) {
      std::string what = "redis " + endpoint() + ": " + std::string(ctx_->reader->errstr);
      ctx_.reset();
      return fail(make_error_code(errc::protocol_error), std::move(what)).error();
    }
    if (out != nullptr) return {};
    // Without a deadline, SO_RCVTIMEO (the command timeout) bounds the recv; with one, a poll()
    // first waits for no longer than is left.
    auto waited = options_.command_timeout;
    if (deadline_ != kNoDeadline) {
      waited = budget(options_.command_timeout);
      pollfd pfd{};
      pfd.fd = ctx_->fd;
      pfd.events = POLLIN;
      const int pr =
          ::poll(&pfd, 1, static_cast<int>(std::min<long long>(waited.count(), INT_MAX)));
      if (pr < 0 && errno == EINTR) continue;
      if (pr == 0) {
        ctx_.reset();
        return fail(std::make_error_code(std::errc::timed_out), no_answer(waited)).error();
      }
    }
    std::array<char, 16384> buf;  // NOLINT(cppcoreguidelines-pro-type-member-init): filled by recv
    const ssize_t n = ::recv(ctx_->fd, buf.data(), buf.size(), 0);
    if (n > 0) {
      if (redisReaderFeed(ctx_->reader, buf.data(), static_cast<std::size_t>(n)) != REDIS_OK) {
        ctx_.reset();
        return fail(std::make_error_code(std::errc::not_enough_memory), "redis: out of memory")
            .error();
      }
      continue;
    }
    const int e = n == 0 ? 0 : errno;
    if (e == EINTR) continue;
    ctx_.reset();  // hiredis contexts are unusable after an error
    if (e == 0) {
      return fail(make_error_code(errc::connection_closed),
                  "redis " + endpoint() + ": the server closed the connection")
          .error();
    }
    if (e == EAGAIN || e == EWOULDBLOCK) {
      return fail(std::make_error_code(std::errc::timed_out), no_answer(waited)).error();
    }
    return fail(std::error_code(e, std::generic_category()),
                "redis " + endpoint() + ": recv: " + std::strerror(e))
        .error();
  }
}

Result Connection::read_until(std::chrono::steady_clock::time_point deadline) {
  if (!ctx_) {
    return fail(make_error_code(errc::connection_closed),
                "redis " + endpoint() + ": not connected");
  }
  for (;;) {
    void* raw = nullptr;
    if (redisGetReplyFromReader(ctx_.get(), &raw) != REDIS_OK) {
      std::string what = "redis " + endpoint() + ": " + std::string(ctx_->errstr);
      ctx_.reset();
      return fail(make_error_code(errc::protocol_error), std::move(what));
    }
    if (raw != nullptr) {
      const ReplyPtr reply(raw);
      std::string error;
      Reply out = convert(static_cast<redisReply*>(raw), error);
      if (!error.empty()) {
        return fail(make_error_code(classify(error)), "redis " + endpoint() + ": " + error);
      }
      return Result(std::move(out));
    }
    // A deadline in the past still looks at the socket once, without waiting.
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    const bool last = left.count() <= 0;
    pollfd pfd{};
    pfd.fd = ctx_->fd;
    pfd.events = POLLIN;
    const int wait_ms = last ? 0 : left.count() > 60'000 ? 60'000 : static_cast<int>(left.count());
    const int pr = ::poll(&pfd, 1, wait_ms);
    if (pr < 0) {
      const int e = errno;
      if (e == EINTR) continue;
      return fail(std::error_code(e, std::generic_category()),
                  "redis " + endpoint() + ": poll: " + std::strerror(e));
    }
    if (pr == 0) {
      if (last) return Result(locksmith::make_error_code(locksmith::errc::timeout), "");
      continue;  // re-checks the deadline
    }
    errno = 0;
    if (redisBufferRead(ctx_.get()) != REDIS_OK) {
      const int saved = errno;
      std::string what = "redis " + endpoint() + ": " + std::string(ctx_->errstr);
      const bool eof = ctx_->err == REDIS_ERR_EOF;
      ctx_.reset();
      return fail(eof || saved == 0 ? make_error_code(errc::connection_closed)
                                    : std::error_code(saved, std::generic_category()),
                  std::move(what));
    }
  }
}

}  // namespace locksmith::redis
