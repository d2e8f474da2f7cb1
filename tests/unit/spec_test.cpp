// Lock specs: parse_lock_spec, parse_duration, LockSpec::to_string and open_lock.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>

#include "locksmith/file_lock.hpp"
#include "locksmith/semaphore.hpp"
#include "locksmith/spec.hpp"
#include "subprocess.hpp"
#include "test_support.hpp"
#include "unit_helpers.hpp"

namespace locksmith::unit {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// The LockError thrown for `spec`; checks that its message names the spec.
std::error_code spec_error(const std::string& spec) {
  try {
    (void)parse_lock_spec(spec);
  } catch (const LockError& e) {
    EXPECT_NE(std::string(e.what()).find("invalid lock spec"), std::string::npos) << e.what();
    EXPECT_EQ(e.target(), spec);
    return e.code();
  }
  ADD_FAILURE() << "'" << spec << "' was accepted";
  return {};
}

TEST(ParseLockSpec, EveryKind) {
  struct Case {
    const char* spec;
    const char* kind;
    const char* target;
  };
  for (const Case& c :
       {Case{"flock:/x/y", "flock", "/x/y"}, Case{"fcntl:/x/y", "fcntl", "/x/y"},
        Case{"posix:/x/y", "fcntl", "/x/y"}, Case{"ofd:/x/y", "ofd", "/x/y"},
        Case{"sem:/x/jobs?max=3", "sem", "/x/jobs"}, Case{"/x/y", "flock", "/x/y"},
        Case{"relative/y", "flock", "relative/y"}, Case{"/x/odd:name", "flock", "/x/odd:name"},
        Case{"flock:rel", "flock", "rel"}}) {
    const LockSpec s = parse_lock_spec(c.spec);
    EXPECT_EQ(s.kind, c.kind) << c.spec;
    EXPECT_EQ(s.target, c.target) << c.spec;
  }
}

TEST(ParseLockSpec, Options) {
  const LockSpec s = parse_lock_spec(
      "flock:/x?shared=1&timeout=250ms&fail_when_locked=0&perms=0600&follow_symlinks=yes");
  EXPECT_EQ(s.options.at("shared"), "1");
  EXPECT_EQ(s.options.at("timeout"), "250ms");
  EXPECT_EQ(s.options.at("fail_when_locked"), "0");
  EXPECT_EQ(s.options.at("perms"), "0600");
  EXPECT_EQ(s.options.at("follow_symlinks"), "yes");
  // A bare key is a true flag; empty pairs are skipped.
  const LockSpec t = parse_lock_spec("ofd:/x?&shared&");
  EXPECT_EQ(t.options.size(), 1u);
  EXPECT_EQ(t.options.at("shared"), "");
  EXPECT_NO_THROW(parse_lock_spec("sem:/x/n?max=2&shared=0"));
  for (const char* v : {"1", "true", "yes", "0", "false", "no"}) {
    EXPECT_NO_THROW(parse_lock_spec(std::string("flock:/x?shared=") + v)) << v;
  }
}

TEST(ParseLockSpec, BadInput) {
  for (const char* bad : {
           "",                         // empty
           "flock:",                   // no path
           "flock:?shared=1",          // no path either
           "flcok:/x",                 // a typo is not a bare path
           "bogus://host/key",         // unknown scheme
           "flock:/x?color=red",       // unknown option
           "flock:/x?shared=maybe",    // bad flag value
           "flock:/x?timeout=soon",    // bad duration
           "flock:/x?perms=0999",      // not octal
           "flock:/x?perms=17777",     // out of range
           "flock:/x?perms=",          // empty number
           "flock:/x?max=3",           // max only for sem
           "sem:/x/n",                 // sem needs max
           "sem:/x/n?max=0",           // out of range
           "sem:/x/n?max=1001",        // out of range
           "sem:/x/n?max=two",         // not a number
           "sem:/x/n?max=2&shared=1",  // a semaphore has no shared mode
       }) {
    EXPECT_EQ(spec_error(bad), errc::invalid_spec) << bad;
  }
  // The message says what is wrong.
  try {
    (void)parse_lock_spec("flcok:/x");
  } catch (const LockError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown lock kind 'flcok'"), std::string::npos);
  }
  try {
    (void)parse_lock_spec("flock:/x?color=red");
  } catch (const LockError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown option 'color'"), std::string::npos);
  }
}

// The message of the LockError thrown for `spec` (empty when it was accepted).
std::string spec_message(const std::string& spec) {
  try {
    (void)parse_lock_spec(spec);
  } catch (const LockError& e) {
    return e.what();
  }
  return {};
}

TEST(ParseLockSpec, RefusesWhatMeansNothingSayingWhy) {
  struct Case {
    const char* spec;
    const char* says;
  };
  for (const Case& c : {
           Case{"sem:/x/?max=2", "has no semaphore name"},  // slot files /x/.00.lock
           Case{"sem:/x/.?max=2", "has no semaphore name"},
           Case{"sem:/x/..?max=2", "has no semaphore name"},
           Case{":", "nothing before ':'"},  // neither kind nor path
           Case{":/x", "nothing before ':'"},
           Case{"flock:/x?timeout=1s&timeout=2s", "option 'timeout' given twice"},
           Case{"flock:/x?shared&shared=0", "option 'shared' given twice"},
           Case{"sem:/x/n?max=2&max=3", "option 'max' given twice"},
           Case{"flock:/x?perms=07777", "setuid, setgid or sticky"},
           Case{"flock:/x?perms=04644", "setuid, setgid or sticky"},
           Case{"mkdir:/x?perms=01777", "setuid, setgid or sticky"},
           Case{"flock:/x?perms=17777", "not a file mode"},
       }) {
    EXPECT_EQ(spec_error(c.spec), errc::invalid_spec) << c.spec;
    EXPECT_NE(spec_message(c.spec).find(c.says), std::string::npos)
        << c.spec << ": " << spec_message(c.spec);
  }
  EXPECT_NO_THROW(parse_lock_spec("flock:/x?perms=0777"));
  EXPECT_NO_THROW(parse_lock_spec("./:x"));  // a file whose name starts with ':'
  EXPECT_NO_THROW(parse_lock_spec("sem:jobs?max=2"));
}

TEST(ParseLockSpec, RepeatedUrlOptionsAreRefusedWithoutShowingThePassword) {
  register_lock_scheme("dupscheme",
                       [](std::string_view) -> std::unique_ptr<Lockable> { return nullptr; });
  try {
    (void)parse_lock_spec("dupscheme://user:s3cret@host:1/key?ttl=1s&ttl=2s");
    ADD_FAILURE() << "accepted";
  } catch (const LockError& e) {
    EXPECT_EQ(e.code(), errc::invalid_spec);
    EXPECT_NE(std::string(e.what()).find("option 'ttl' given twice"), std::string::npos)
        << e.what();
    EXPECT_EQ(std::string(e.what()).find("s3cret"), std::string::npos) << e.what();
    EXPECT_EQ(e.target(), "dupscheme://user:***@host:1/key?ttl=1s&ttl=2s");
  }
}

TEST(ParseLockSpec, KeepOpen) {
  const test::TempDir dir;
  auto lock = open_lock("flock:" + (dir / "k").string() + "?keep_open=1");
  auto* f = dynamic_cast<FileLock*>(lock.get());
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(f->options().keep_open);
  auto plain = open_lock("flock:" + (dir / "k").string());
  auto* p = dynamic_cast<FileLock*>(plain.get());
  ASSERT_NE(p, nullptr);
  EXPECT_FALSE(p->options().keep_open);
  EXPECT_EQ(spec_error("link:/x?keep_open=1"), errc::invalid_spec);
}

TEST(ParseLockSpec, LaterKindsAreUnsupported) {
  for (const char* spec :
       {"redis://h:6379/key", "redis+pubsub://h:6379/chan", "redlock://a:1,b:2,c:3/key"}) {
    EXPECT_EQ(spec_error(spec), errc::unsupported) << spec;
    EXPECT_THROW(open_lock(spec), LockError) << spec;
  }
}

TEST(ParseLockSpec, FileProtocolKinds) {
  const LockSpec m = parse_lock_spec("mkdir:/x/y?timeout=2s&perms=0700");
  EXPECT_EQ(m.kind, "mkdir");
  EXPECT_EQ(m.target, "/x/y");
  EXPECT_EQ(parse_lock_spec("pidfile:/run/d.pid?break_stale=1").options.at("break_stale"), "1");
  EXPECT_EQ(parse_lock_spec("dotlock:/var/mail/u?stale_age=0").options.at("stale_age"), "0");
  EXPECT_EQ(parse_lock_spec("link:/x/l?lifetime=2m&slop=1s").options.at("lifetime"), "2m");
  EXPECT_THROW(open_lock("link:/x/l?lifetime=0"), LockError);
  // Options that mean nothing for a kind are refused, naming what it accepts.
  EXPECT_EQ(parse_lock_spec("mkdir:/x?stale=off&stale_grace=1m").options.at("stale"), "off");
  EXPECT_EQ(parse_lock_spec("pidfile:/x?stale=auto").options.at("stale"), "auto");
  for (const char* spec :
       {"mkdir:/x?shared=1", "pidfile:/x?stale_age=5m", "dotlock:/x?max=2",
        "flock:/x?break_stale=1", "dotlock:/x?stale_age=soon", "link:/x?shared=1",
        "link:/x?lifetime=forever", "dotlock:/x?stale=off", "mkdir:/x?break_stale=1",
        "pidfile:/x?stale=1", "mkdir:/x?stale_grace=soon", "pidfile:/x?stale=off&break_stale=1"}) {
    EXPECT_EQ(spec_error(spec), errc::invalid_spec) << spec;
  }
  try {
    (void)parse_lock_spec("mkdir:/x?shared=1");
    ADD_FAILURE() << "accepted";
  } catch (const LockError& e) {
    EXPECT_NE(std::string(e.what()).find("known: timeout, fail_when_locked, perms"),
              std::string::npos)
        << e.what();
  }
}

// stale= reaches MkdirLock and PidLockFile: a dead holder's old lock is taken over by default.
TEST(OpenLock, StaleOptionDrivesTakeOver) {
  test::TempDir dir;
  const pid_t child = test::dead_pid();
  ASSERT_GE(child, 0);
  ASSERT_NE(::kill(child, 0), 0);  // its pid is now free
  const std::string pidfile = (dir / "p").string();
  const auto plant = [&] {
    std::FILE* f = std::fopen(pidfile.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fprintf(f, "%d\n", static_cast<int>(child));
    std::fclose(f);
  };
  plant();
  EXPECT_FALSE(open_lock("pidfile:" + pidfile)->try_lock());  // younger than stale_grace
  EXPECT_FALSE(open_lock("pidfile:" + pidfile + "?stale=off&stale_grace=0")->try_lock());
  EXPECT_FALSE(open_lock("pidfile:" + pidfile + "?break_stale=0&stale_grace=0")->try_lock());
  auto taker = open_lock("pidfile:" + pidfile + "?stale_grace=0");
  EXPECT_TRUE(taker->try_lock());
  taker->unlock();
  plant();
  auto old_spelling = open_lock("pidfile:" + pidfile + "?break_stale=1&stale_grace=0");
  EXPECT_TRUE(old_spelling->try_lock());
  old_spelling->unlock();
}

TEST(OpenLock, FileProtocolLocksFromTheSpec) {
  test::TempDir dir;
  const auto kind_of = [](const std::string& spec) { return open_lock(spec)->describe().kind; };
  const std::string base = (dir / "x").string();
  auto m = open_lock("mkdir:" + base);
  auto p = open_lock("pidfile:" + base + ".pid?break_stale=1");
  auto d = open_lock("dotlock:" + base + "?stale_age=10m");
  EXPECT_FALSE(m->supports_shared());
  EXPECT_FALSE(p->supports_shared());
  EXPECT_FALSE(d->supports_shared());
  EXPECT_NE(kind_of("mkdir:" + base), kind_of("dotlock:" + base));
  // Each really locks: a second lock from the same spec is refused while the first holds.
  for (auto* spec : {"link:", "mkdir:", "pidfile:", "dotlock:"}) {
    auto a = open_lock(std::string(spec) + base + "2");
    auto b = open_lock(std::string(spec) + base + "2");
    ASSERT_TRUE(a->try_lock()) << spec;
    EXPECT_FALSE(b->try_lock()) << spec;
    a->unlock();
    EXPECT_TRUE(b->try_lock()) << spec;
    b->unlock();
  }
}

TEST(ParseDuration, Units) {
  EXPECT_EQ(parse_duration("250ms"), 250ms);
  EXPECT_EQ(parse_duration("1.5s"), 1500ms);
  EXPECT_EQ(parse_duration("2m"), 120s);
  EXPECT_EQ(parse_duration("2min"), 120s);
  EXPECT_EQ(parse_duration("3"), 3s);
  EXPECT_EQ(parse_duration("0"), 0s);
  EXPECT_EQ(parse_duration(".5s"), 500ms);
  EXPECT_EQ(parse_duration("1h"), 1h);
  EXPECT_EQ(parse_duration("20us"), 20us);
  EXPECT_EQ(parse_duration("1500ns"), 1500ns);
}

TEST(ParseDuration, BadValues) {
  for (const char* bad :
       {"", "ms", "abc", "-1s", "1.2.3s", "5x", "1e3", "1 s", "s5", "1..s", "99999999999999h"}) {
    try {
      (void)parse_duration(bad);
      ADD_FAILURE() << "'" << bad << "' accepted";
    } catch (const LockError& e) {
      EXPECT_EQ(e.code(), errc::invalid_spec) << bad;
      EXPECT_EQ(e.target(), bad);
    }
  }
}

TEST(LockSpecToString, RoundTrips) {
  for (const char* spec :
       {"flock:/x", "fcntl:/x?shared=1", "ofd:/x?fail_when_locked=1&timeout=2s",
        "sem:/d/n?max=3&timeout=1.5s", "flock:/x?follow_symlinks=1&perms=0600"}) {
    const LockSpec s = parse_lock_spec(spec);
    const LockSpec again = parse_lock_spec(s.to_string());
    EXPECT_EQ(again.kind, s.kind);
    EXPECT_EQ(again.target, s.target);
    EXPECT_EQ(again.options, s.options);
  }
  EXPECT_EQ(parse_lock_spec("/x").to_string(), "flock:/x");
  EXPECT_EQ(parse_lock_spec("posix:/x").to_string(), "fcntl:/x");
  EXPECT_EQ(parse_lock_spec("flock:/x?timeout=1s&shared=1").to_string(),
            "flock:/x?shared=1&timeout=1s");
}

TEST(OpenLock, FileLockOptionsFromTheSpec) {
  test::TempDir dir;
  const std::string path = (dir / "lock").string();
  struct Case {
    std::string spec;
    Backend backend;
  };
  for (const Case& c : {Case{"flock:" + path, Backend::flock}, Case{path, Backend::flock},
                        Case{"fcntl:" + path, Backend::posix},
                        Case{"posix:" + path, Backend::posix}, Case{"ofd:" + path, Backend::ofd}}) {
    auto l = open_lock(c.spec);
    auto* f = dynamic_cast<FileLock*>(l.get());
    ASSERT_NE(f, nullptr) << c.spec;
    EXPECT_EQ(f->options().backend, c.backend) << c.spec;
    EXPECT_EQ(f->path(), dir / "lock");
    EXPECT_EQ(f->default_mode(), LockMode::exclusive);
    EXPECT_EQ(f->default_deadline(), kForever);
  }

  auto shared = open_lock("flock:" + path + "?shared=1&perms=0600");
  EXPECT_EQ(shared->default_mode(), LockMode::shared);
  shared->lock();
  EXPECT_EQ(shared->describe().mode, LockMode::shared);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u & ~current_umask());
  shared->unlock();

  auto failing = open_lock("flock:" + path + "?fail_when_locked=1&timeout=5s");
  EXPECT_EQ(failing->default_deadline(), Clock::time_point::min());
  const auto before = Clock::now();
  auto timed = open_lock("flock:" + path + "?timeout=250ms");
  const auto deadline = timed->default_deadline();
  EXPECT_GE(deadline, before + 250ms);
  EXPECT_LE(deadline, Clock::now() + 250ms);
  auto flag_off = open_lock("flock:" + path + "?follow_symlinks=0&shared=no");
  EXPECT_EQ(flag_off->default_mode(), LockMode::exclusive);
}

TEST(OpenLock, SemaphoreFromTheSpec) {
  test::TempDir dir;
  auto l = open_lock("sem:" + (dir / "jobs").string() + "?max=2&timeout=1s");
  auto* s = dynamic_cast<BoundedSemaphore*>(l.get());
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->maximum(), 2u);
  EXPECT_EQ(s->name(), "jobs");
  EXPECT_EQ(s->slot_path(1), dir / "jobs.01.lock");
  EXPECT_NE(s->default_deadline(), kForever);
  // A bare name lives in the current directory.
  auto here = open_lock("sem:jobs?max=1&fail_when_locked=1");
  auto* h = dynamic_cast<BoundedSemaphore*>(here.get());
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->slot_path(0), fs::path(".") / "jobs.00.lock");
  EXPECT_EQ(h->default_deadline(), Clock::time_point::min());
}

TEST(OpenLock, HandBuiltSpecsAreValidated) {
  LockSpec unknown{"nosuch", "/x", {}};
  EXPECT_THROW(open_lock(unknown), LockError);
  LockSpec sem_without_max{"sem", "/x/n", {}};
  try {
    (void)open_lock(sem_without_max);
    ADD_FAILURE() << "sem without max accepted";
  } catch (const LockError& e) {
    EXPECT_EQ(e.code(), errc::invalid_spec);
  }
  LockSpec bad_value{"flock", "/x", {{"timeout", "soon"}}};
  EXPECT_THROW(open_lock(bad_value), LockError);
}

// A URL scheme registered by another library: open_lock hands the whole spec to its opener.
std::unique_ptr<Lockable> open_test_scheme(std::string_view spec) {
  const LockSpec s = parse_lock_spec(spec);
  if (s.options.count("bad")) {
    throw LockError(make_error_code(errc::invalid_spec), "invalid lock spec (bad)", spec);
  }
  LockOptions o;
  o.fail_when_locked = true;
  return std::make_unique<FileLock>(s.target, o);
}

TEST(RegisterLockScheme, OpenLockUsesTheOpener) {
  EXPECT_EQ(spec_error("testscheme://x"), errc::invalid_spec);  // unknown until registered
  register_lock_scheme("testscheme", &open_test_scheme);
  const test::TempDir dir;
  const std::string path = (dir.path() / "k").string();
  const std::string spec = "testscheme://" + path + "?any=thing&other";
  const LockSpec parsed = parse_lock_spec(spec);
  EXPECT_TRUE(parsed.url);
  EXPECT_EQ(parsed.kind, "testscheme");
  EXPECT_EQ(parsed.target, path);
  EXPECT_EQ(parsed.options.at("any"), "thing");  // the opener, not the core, judges options
  EXPECT_EQ(parsed.to_string(), "testscheme://" + path + "?any=thing&other=");
  auto lock = open_lock(spec);
  ASSERT_NE(dynamic_cast<FileLock*>(lock.get()), nullptr);
  EXPECT_EQ(lock->describe().target, path);
  EXPECT_EQ(lock->default_deadline(), Clock::time_point::min());
  auto again = open_lock(parsed);  // a LockSpec goes the same way
  EXPECT_EQ(again->describe().target, path);
  EXPECT_THROW(open_lock(spec + "&bad=1"), LockError);
}

}  // namespace
}  // namespace locksmith::unit
