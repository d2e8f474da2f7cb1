// A blocking connection to one Redis server (hiredis underneath), with the errors that locking
// code needs to tell apart.
//
// Semantics
//  - One Connection is one TCP connection; it is not thread-safe (guard it with a mutex to share).
//  - connect() applies the connect timeout to the TCP handshake and the command timeout to every
//    later read and write; AUTH (password, or ACL user + password) and SELECT run on every
//    (re)connect. set_deadline() cuts both to what is left before a caller's deadline (a lock's
//    acquire), so that a server that accepts connections but does not answer (stopped, hung)
//    costs no more than the caller allowed. A command that fails with an I/O error leaves the
//    connection closed; the next command reconnects once before sending.
//  - The socket is made close-on-exec right after it is created (hiredis 0.14 cannot create it so,
//    so a fork+exec racing with connect() in another thread may inherit it).
//  - Errors are std::error_codes, each with a message that keeps the server's or the OS's words
//    and names host:port: an unreachable server keeps the OS errno (generic_category, e.g.
//    ECONNREFUSED), a command timeout is ETIMEDOUT ("redis HOST:PORT did not answer within 2s"),
//    server replies map to redis::errc below.
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

struct redisContext;  // hiredis

namespace locksmith::redis {

// Failures that are not OS errors.
enum class errc {
  auth_failed = 1,    // AUTH refused (WRONGPASS), NOAUTH (required), NOPERM (ACL forbids it)
  wrong_type,         // WRONGTYPE: the key holds a value of another type
  script_error,       // a Lua script failed to compile or raised an error
  no_script,          // NOSCRIPT: EVALSHA of a script the server does not have (handled inside)
  server_error,       // any other error reply
  protocol_error,     // the reply could not be parsed, or had an unexpected shape
  connection_closed,  // the server closed the connection
  connect_failed,     // cannot connect for a reason without errno (e.g. unknown host name)
};

const std::error_category& redis_category() noexcept;
std::error_code make_error_code(errc e) noexcept;

// `os_error` (generic_category) with `message` as its message(): it still compares equal to the
// same std::errc conditions (ec == std::errc::timed_out), but says which server failed and how.
// For interfaces that return a bare std::error_code (Lockable::acquire), where "Connection timed
// out" alone would not say which server did not answer. The texts of the last 1024 such codes
// are kept; an older code's message() is the plain strerror() text. Codes of other categories
// are returned unchanged. Note that value() is not the errno: compare with std::errc conditions.
std::error_code with_message(std::error_code os_error, std::string message);

struct ConnectOptions {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string user;      // ACL user name; empty = the default user
  std::string password;  // empty = no AUTH
  int db = 0;            // SELECT db when not 0
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds command_timeout{5000};
};

// A server reply (RESP2).
struct Reply {
  enum class Type { nil, string, status, integer, array };
  Type type = Type::nil;
  std::string str;              // string and status
  long long integer = 0;        // integer
  std::vector<Reply> elements;  // array

  bool is_nil() const noexcept { return type == Type::nil; }
};

// A reply, or an error code with its message.
class Result {
 public:
  Result() = default;
  explicit Result(Reply r) : reply_(std::move(r)) {}
  Result(std::error_code ec, std::string message) : ec_(ec), message_(std::move(message)) {}

  bool ok() const noexcept { return !ec_; }
  explicit operator bool() const noexcept { return ok(); }
  const Reply& value() const noexcept { return reply_; }
  Reply& value() noexcept { return reply_; }
  std::error_code error() const noexcept { return ec_; }
  // The full message: the server's error reply or the OS error, with host:port.
  const std::string& message() const noexcept { return message_; }

 private:
  Reply reply_;
  std::error_code ec_;
  std::string message_;
};

// A Lua script run by EVALSHA, falling back to EVAL when the server answers NOSCRIPT (a restarted
// or flushed server); the SHA1 is computed here, so no SCRIPT LOAD round trip is needed.
class Script {
 public:
  explicit Script(std::string source);
  const std::string& source() const noexcept { return source_; }
  const std::string& sha1() const noexcept { return sha1_; }

 private:
  std::string source_;
  std::string sha1_;
};

// Lower-case hex SHA1 of `data` (what Redis uses to name scripts).
std::string sha1_hex(std::string_view data);

class Connection {
 public:
  Connection() = default;
  explicit Connection(ConnectOptions options);
  Connection(Connection&&) noexcept;
  Connection& operator=(Connection&&) noexcept;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // Connects (closing any previous connection), authenticates and selects the db.
  std::error_code connect();
  // From now on, every connect and every command's send and reply (not read_until(), whose
  // callers give their own deadline) also ends by `deadline`: the options' timeouts are cut to the
  // time left. A wait cut short fails like a timeout (ETIMEDOUT), its message naming host:port
  // and how long the server had. kNoDeadline: the options' timeouts alone.
  static constexpr std::chrono::steady_clock::time_point kNoDeadline =
      std::chrono::steady_clock::time_point::max();
  void set_deadline(std::chrono::steady_clock::time_point deadline) noexcept {
    deadline_ = deadline;
  }
  std::chrono::steady_clock::time_point deadline() const noexcept { return deadline_; }
  bool connected() const noexcept { return ctx_ != nullptr; }
  void close() noexcept;

  // Sends one command and reads its reply. Error replies become errors.
  Result command(std::initializer_list<std::string_view> args);
  Result command(const std::vector<std::string>& args);
  // Runs `script` with `keys` and `args` (EVALSHA, EVAL on NOSCRIPT).
  Result eval(const Script& script, std::initializer_list<std::string_view> keys,
              std::initializer_list<std::string_view> args);
  // The same for argument lists of any length (a registry record's fields, say).
  Result eval_list(const Script& script, const std::vector<std::string>& keys,
                   const std::vector<std::string>& args);

  // Pub/sub support for a connection that has subscribed: sends without reading the reply.
  std::error_code send(std::initializer_list<std::string_view> args);
  // Reads the next reply (pushed message or command reply), waiting until `deadline` at most.
  // errc::timeout (locksmith) when nothing arrived in time; the connection stays usable.
  Result read_until(std::chrono::steady_clock::time_point deadline);

  // The message of the last failure ("" after a success).
  const std::string& last_error() const noexcept { return last_error_; }
  const ConnectOptions& options() const noexcept { return options_; }
  // "host:port" for messages.
  std::string endpoint() const;
  // The message of a wait for this server that timed out: "redis HOST:PORT did not answer
  // within 1.5s".
  std::string no_answer(std::chrono::milliseconds waited) const;
  std::string no_answer(std::chrono::steady_clock::duration waited) const {
    return no_answer(std::chrono::ceil<std::chrono::milliseconds>(waited));
  }

 private:
  struct ContextDeleter {
    void operator()(redisContext* c) const noexcept;
  };
  Result run(int argc, const char** argv, const std::size_t* lens);
  // run() of EVALSHA argv; on NOSCRIPT, again as EVAL with the script's source.
  Result run_script(const Script& script, int argc, const char** argv, std::size_t* lens);
  std::error_code write_command(int argc, const char** argv, const std::size_t* lens);
  std::error_code read_reply(void*& out);  // one reply (a redisReply*), connected
  Result fail(std::error_code ec, std::string message);
  // `option` cut to the time left before deadline_ (at least 1 ms).
  std::chrono::milliseconds budget(std::chrono::milliseconds option) const noexcept;
  ConnectOptions options_;
  std::unique_ptr<redisContext, ContextDeleter> ctx_;
  std::string last_error_;
  std::chrono::steady_clock::time_point deadline_ = kNoDeadline;
};

}  // namespace locksmith::redis

template <>
struct std::is_error_code_enum<locksmith::redis::errc> : std::true_type {};
