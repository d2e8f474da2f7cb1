// Helpers of the Redis tests: a fixture with its own redis-server, and connection options for it.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "locksmith/redis/connection.hpp"
#include "locksmith/redis/lease.hpp"
#include "redis_server.hpp"

namespace locksmith::redis::testing {

class RedisTest : public ::testing::Test {
 protected:
  // Extra redis-server arguments of this fixture's server.
  virtual std::vector<std::string> server_args() const { return {}; }

  void SetUp() override {
    try {
      server_ = std::make_unique<RedisServer>(server_args());
    } catch (const std::exception& e) {
      FAIL() << e.what();
    }
  }
  void TearDown() override { server_.reset(); }

  ConnectOptions server() const {
    ConnectOptions o;
    o.host = server_->host();
    o.port = server_->port();
    o.connect_timeout = std::chrono::seconds(5);
    o.command_timeout = std::chrono::seconds(5);
    return o;
  }
  // A plain connection to the server, for looking at keys.
  Connection& admin() {
    if (!admin_) admin_ = std::make_unique<Connection>(server());
    return *admin_;
  }
  // The string at `key`, or "(nil)".
  std::string get(const std::string& key) {
    const Result r = admin().command({"GET", key});
    if (!r) return "(error: " + r.message() + ")";
    return r.value().is_nil() ? "(nil)" : r.value().str;
  }
  long long pttl(const std::string& key) {
    const Result r = admin().command({"PTTL", key});
    return r ? r.value().integer : -100;
  }

  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<Connection> admin_;
};

}  // namespace locksmith::redis::testing
