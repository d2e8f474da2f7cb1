// FileStore between processes: P producers and C consumers on one store, every message claimed
// exactly once and intact; producers SIGKILLed mid-write leave no partial message in new/.
// The checker is first shown to catch a broken (check-then-move) claim.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fs_util.hpp"
#include "locksmith/filestore.hpp"
#include "subprocess.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
using locksmith::FileStore;
using locksmith::test::Channel;
using locksmith::test::Subprocess;
using locksmith::test::TempDir;
namespace fs = std::filesystem;

// Writes one message in pieces (header, then 4 KiB chunks) so that a kill can land mid-write.
void produce(FileStore& store, int producer, int seq) {
  const std::string body = fstest::message_body(producer, seq);
  FileStore::Writer w = store.create(FileStore::unique_name());
  w.write(fstest::message_header(producer, seq, body));
  for (std::size_t off = 0; off < body.size(); off += 4096) {
    w.write(std::string_view(body).substr(off, 4096));
  }
  w.commit();
}

// A deliberately broken claim: look, copy, unlink — two consumers can both "win".
std::optional<std::string> broken_claim_next(FileStore& store) {
  for (const auto& p : store.list("new")) {
    const std::string name = p.filename().string();
    std::string content;
    if (store.read(name, "new", content)) continue;  // gone
    std::this_thread::sleep_for(1ms);                // widen the window
    std::error_code ec;
    fs::remove(p, ec);
    std::ofstream(store.path() / "cur" / name, std::ios::binary) << content;
    return name;
  }
  return std::nullopt;
}

// True once every producer has exited (all of them hold the write end of `done_fd`'s pipe).
bool wait_done(int done_fd, int timeout_ms) {
  pollfd p{done_fd, POLLIN, 0};
  const int r = ::poll(&p, 1, timeout_ms);
  return r > 0 && (p.revents & (POLLHUP | POLLIN)) != 0;
}

int consume(const fs::path& root, const fs::path& report, int done_fd, bool broken) {
  FileStore store(root);
  const std::string me = "consumer-" + std::to_string(::getpid());
  std::ofstream out(report);
  const auto deadline = std::chrono::steady_clock::now() + locksmith::test::kWaitLimit;
  while (std::chrono::steady_clock::now() < deadline) {
    // Completion is checked before the scan: an empty scan after it means all were claimed.
    const bool done = wait_done(done_fd, 0);
    const std::optional<std::string> name =
        broken ? broken_claim_next(store) : store.claim_next(me);
    if (name) {
      const auto id = fstest::check_message(store.read(*name, "cur"));
      out << *name << ' ' << (id ? id->producer : -1) << ' ' << (id ? id->seq : -1) << ' '
          << (id ? "ok" : "bad") << '\n';
      continue;
    }
    if (done) {
      out.flush();
      return out ? 0 : 4;
    }
    wait_done(done_fd, 2);  // wakes at once when the last producer exits
  }
  return 3;
}

struct Outcome {
  int claims = 0;
  int duplicates = 0;
  int bad_content = 0;
  int missing = 0;
  int unknown = 0;
  int failed_children = 0;
};

Outcome exchange(const fs::path& root, const fs::path& reports, int producers, int consumers,
                 int messages, bool broken_claim) {
  FileStore store(root, 0644, /*sync=*/!broken_claim);
  store.prepare();
  int pipefd[2];
  EXPECT_EQ(::pipe(pipefd), 0);
  std::vector<Subprocess> kids;
  for (int c = 0; c < consumers; ++c) {
    const fs::path report = reports / ("consumer-" + std::to_string(c) + ".txt");
    kids.push_back(Subprocess::fork([&, report](Channel&) {
      ::close(pipefd[1]);
      return consume(root, report, pipefd[0], broken_claim);
    }));
  }
  for (int p = 0; p < producers; ++p) {
    kids.push_back(Subprocess::fork([&, p](Channel&) {
      ::close(pipefd[0]);
      FileStore s(root);
      for (int seq = 0; seq < messages; ++seq) produce(s, p, seq);
      return 0;  // exiting closes the write end
    }));
  }
  ::close(pipefd[1]);
  ::close(pipefd[0]);
  Outcome o;
  for (Subprocess& kid : kids) {
    if (kid.wait_exit() != 0) ++o.failed_children;
  }
  std::map<std::string, int> claimed_names;
  std::map<std::pair<int, int>, int> claimed_ids;
  for (int c = 0; c < consumers; ++c) {
    std::ifstream in(reports / ("consumer-" + std::to_string(c) + ".txt"));
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string name, status;
      int p = -1, seq = -1;
      fields >> name >> p >> seq >> status;
      ++o.claims;
      if (status != "ok") ++o.bad_content;
      if (++claimed_names[name] > 1) ++o.duplicates;
      if (status == "ok") {
        if (p < 0 || p >= producers || seq < 0 || seq >= messages) ++o.unknown;
        ++claimed_ids[{p, seq}];
      }
    }
  }
  for (int p = 0; p < producers; ++p) {
    for (int seq = 0; seq < messages; ++seq) {
      if (claimed_ids.count({p, seq}) == 0) ++o.missing;
    }
  }
  return o;
}

struct Shape {
  int producers, consumers, messages;
};

class FileStoreExchange : public ::testing::TestWithParam<Shape> {};

TEST_P(FileStoreExchange, EveryMessageIsClaimedExactlyOnceAndIntact) {
  const Shape s = GetParam();
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    TempDir dir;
    fs::create_directory(dir / "reports");
    const Outcome o =
        exchange(dir / "store", dir / "reports", s.producers, s.consumers, s.messages, false);
    EXPECT_EQ(o.failed_children, 0);
    EXPECT_EQ(o.claims, s.producers * s.messages);
    EXPECT_EQ(o.duplicates, 0);
    EXPECT_EQ(o.bad_content, 0);
    EXPECT_EQ(o.missing, 0);
    EXPECT_EQ(o.unknown, 0);
    // The store agrees: everything in cur/, intact; nothing left in new/ or tmp/.
    EXPECT_TRUE(fstest::names_in(dir / "store" / "new").empty());
    EXPECT_TRUE(fstest::names_in(dir / "store" / "tmp").empty());
    FileStore store(dir / "store");
    const auto cur = store.list("cur");
    EXPECT_EQ(cur.size(), static_cast<std::size_t>(s.producers * s.messages));
    int intact = 0;
    for (const auto& p : cur) {
      intact += fstest::check_message(store.read(p.filename().string(), "cur")).has_value();
    }
    EXPECT_EQ(intact, s.producers * s.messages);
  }
}

std::string shape_name(const ::testing::TestParamInfo<Shape>& param) {
  const Shape& s = param.param;
  return "P" + std::to_string(s.producers) + "C" + std::to_string(s.consumers) + "M" +
         std::to_string(s.messages);
}

INSTANTIATE_TEST_SUITE_P(Shapes, FileStoreExchange,
                         ::testing::Values(Shape{1, 1, 40}, Shape{3, 3, 60}, Shape{4, 2, 50},
                                           Shape{2, 5, 60}),
                         shape_name);

// The same checker must see the broken claim hand some message out twice.
TEST(FileStoreChecker, CatchesABrokenClaim) {
  int duplicates = 0;
  for (int round = 0; round < 3 && duplicates == 0; ++round) {
    TempDir dir;
    fs::create_directory(dir / "reports");
    const Outcome o = exchange(dir / "store", dir / "reports", 2, 4, 40, true);
    EXPECT_EQ(o.failed_children, 0);
    duplicates += o.duplicates;
    std::printf("broken claim round %d: %d claims, %d duplicates\n", round, o.claims, o.duplicates);
  }
  EXPECT_GT(duplicates, 0) << "the checker did not catch a check-then-move claim";
}

// A producer killed while writing leaves tmp/ litter and nothing partial in new/ or cur/.
TEST(FileStoreKill, ProducerKilledMidWriteLeavesNoPartialMessage) {
  TempDir dir;
  FileStore store(dir.path());
  store.prepare();
  Subprocess child;
  ASSERT_NO_THROW(child = Subprocess::fork([&](Channel& parent) {
                    FileStore s(dir.path());
                    FileStore::Writer w = s.create("victim");
                    w.write(std::string(10000, 'x'));
                    if (!parent.send('w')) return 2;
                    ::pause();  // killed here, mid-message
                    w.commit();
                    return 0;
                  }));
  const auto written = child.receive();
  ASSERT_TRUE(written.has_value());
  ASSERT_EQ(*written, 'w');
  const auto status = child.kill(SIGKILL);
  EXPECT_EQ(status, -SIGKILL) << status.value_or(-1000);
  EXPECT_EQ(fstest::names_in(dir / "tmp"), std::vector<std::string>{"victim"});
  EXPECT_TRUE(fstest::names_in(dir / "new").empty());
  EXPECT_TRUE(fstest::names_in(dir / "cur").empty());
  EXPECT_EQ(store.claim_next("c"), std::nullopt);
}

// A producer publishing as fast as it can, killed at an arbitrary point: every message in new/
// is complete; at most the one in flight is left in tmp/.
TEST(FileStoreKill, ProducerKilledAtRandomLeavesOnlyCompleteMessages) {
  for (int round = 0; round < 5; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    TempDir dir;
    FileStore store(dir.path(), 0644, /*sync=*/false);
    store.prepare();
    Subprocess child;
    ASSERT_NO_THROW(child = Subprocess::fork([&](Channel& parent) {
                      FileStore s(dir.path(), 0644, false);
                      for (int seq = 0;; ++seq) {
                        produce(s, 0, seq);
                        if (seq == 20 + round * 7 && !parent.send('n')) return 2;
                      }
                    }));
    ASSERT_EQ(child.receive(), 'n');
    const auto status = child.kill(SIGKILL);
    EXPECT_EQ(status, -SIGKILL) << status.value_or(-1000);
    const auto published = store.list("new");
    EXPECT_GE(published.size(), static_cast<std::size_t>(21 + round * 7));
    for (const auto& m : published) {
      EXPECT_TRUE(fstest::check_message(store.read(m.filename().string(), "new")).has_value()) << m;
    }
    EXPECT_LE(fstest::names_in(dir / "tmp").size(), 1u);
  }
}

}  // namespace
