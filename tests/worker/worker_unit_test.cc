// Pure pieces of the worker as tables: backoff, device selection, flags, HTTP responses, identity,
// and the artifact transfer state machine over an in-memory "wire".
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "common/sha256.h"
#include "worker/artifact_cache.h"
#include "worker/backoff.h"
#include "worker/child.h"
#include "worker/config.h"
#include "worker/devices.h"
#include "worker/health.h"
#include "worker/identity.h"
#include "worker/transfers.h"

namespace scion::worker {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

TEST(Backoff, DoublesFrom250msToA32sCapAndResets) {
  Backoff b(proto::kReconnectInitial, proto::kReconnectMax);
  std::vector<int64_t> want = {250, 500, 1000, 2000, 4000, 8000, 16000, 32000, 32000, 32000};
  for (int64_t w : want) EXPECT_EQ(b.Next().count(), w);
  b.Reset();
  EXPECT_EQ(b.Next().count(), 250);
}

std::vector<Gpu> FourGpus() {
  std::vector<Gpu> gpus;
  for (int i = 0; i < 4; ++i) {
    Gpu g;
    g.index = i;
    g.uuid = "GPU-" + std::string(1, static_cast<char>('a' + i)) + "1234567-89ab";
    gpus.push_back(g);
  }
  return gpus;
}

TEST(FilterVisible, FollowsCudaVisibleDevicesRules) {
  struct Case {
    const char* value;  // nullptr: unset
    std::vector<int> want;
  } cases[] = {
      {nullptr, {0, 1, 2, 3}},
      {"", {}},
      {"2", {2}},
      {"3,1", {3, 1}},
      {" 0 , 2 ", {0, 2}},
      {"1,7,2", {1}},       // an index that does not exist ends the list
      {"1,x,2", {1}},       // so does garbage
      {"1,1,2", {1}},       // and a repeat
      {"-1", {}},
      {"GPU-c1", {2}},      // UUID prefix
      {"GPU-b1234567-89ab,0", {1, 0}},
      {"GPU-zz", {}},
      {"MIG-1", {}},
  };
  for (const Case& c : cases) {
    std::vector<int> got;
    for (const Gpu& g : FilterVisible(FourGpus(), c.value)) got.push_back(g.index);
    EXPECT_EQ(got, c.want) << (c.value ? c.value : "(unset)");
  }
}

TEST(ParseGpuList, Table) {
  struct Case {
    const char* list;
    std::vector<int> want;
    const char* error;
  } cases[] = {
      {"0,1", {0, 1}, ""},  {"3", {3}, ""},           {"", {}, ""},
      {"none", {}, ""},     {" 2 , 0 ", {2, 0}, ""},  {"a", {}, "--gpus: 'a' is not a GPU index"},
      {"1,,2", {}, "--gpus: '' is not"},              {"-1", {}, "--gpus: '-1'"},
      {"1,1", {}, "--gpus: GPU 1 listed twice"},
  };
  for (const Case& c : cases) {
    auto got = ParseGpuList(c.list);
    if (std::string(c.error).empty()) {
      ASSERT_TRUE(got.ok()) << c.list << ": " << got.status().ToString();
      EXPECT_EQ(*got, c.want) << c.list;
    } else {
      ASSERT_FALSE(got.ok()) << c.list;
      EXPECT_NE(got.status().message().find(c.error), std::string::npos) << got.status().message();
    }
  }
}

TEST(SelectGpus, KeepsTheListedOnesOrNamesTheMissingOne) {
  auto got = SelectGpus(FourGpus(), {3, 0});
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].index, 3);
  auto missing = SelectGpus(FourGpus(), {1, 9});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("GPU 9 does not exist"), std::string::npos);
}

TEST(ParseFakeGpus, Table) {
  auto two = ParseFakeGpus("2:16:8.0");
  ASSERT_TRUE(two.ok());
  ASSERT_EQ(two->size(), 2u);
  EXPECT_EQ((*two)[1].index, 1);
  EXPECT_EQ((*two)[0].memory_total_bytes, 16ull << 30);
  EXPECT_EQ((*two)[0].memory_free_bytes, 16ull << 30);
  EXPECT_EQ((*two)[0].compute_capability, 8.0);
  auto half = ParseFakeGpus("1:0.5:9.0");
  ASSERT_TRUE(half.ok());
  EXPECT_EQ((*half)[0].memory_total_bytes, 1ull << 29);
  for (const char* bad : {"", "2", "2:16", "x:16:8.0", "2:0:8.0", "2:16:abc", "-1:16:8.0", "2:16:8.0:1", "65:1:1"}) {
    auto r = ParseFakeGpus(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("--fake-gpus"), std::string::npos) << r.status().message();
  }
}

TEST(GpuJson, HasTheDocumentedFields) {
  Gpu g;
  g.index = 1;
  g.name = "NVIDIA H100";
  g.memory_total_bytes = 80;
  g.memory_free_bytes = 70;
  g.compute_capability = 9.0;
  g.utilization = 0.5;
  json j = GpuJson(g);
  for (const char* f : {"index", "name", "uuid", "memory_total_bytes", "memory_free_bytes", "compute_capability", "utilization"})
    EXPECT_TRUE(j.contains(f)) << f;
  EXPECT_EQ(j["memory_free_bytes"], 70);
}

TEST(Nvml, DescribesRealGpusWhenPresent) {
  auto nvml = Nvml::Load();
  if (!nvml.ok()) GTEST_SKIP() << nvml.status().message();
  auto gpus = (*nvml)->Query();
  ASSERT_TRUE(gpus.ok()) << gpus.status().ToString();
  for (const Gpu& g : *gpus) {
    EXPECT_FALSE(g.name.empty());
    EXPECT_EQ(g.uuid.rfind("GPU-", 0), 0u) << g.uuid;
    EXPECT_GT(g.memory_total_bytes, 0u);
    EXPECT_LE(g.memory_free_bytes, g.memory_total_bytes);
    EXPECT_GE(g.compute_capability, 3.0);
    EXPECT_GE(g.utilization, 0.0);
    EXPECT_LE(g.utilization, 1.0);
  }
}

TEST(CudaVisibleDevices, JoinsIndices) {
  EXPECT_EQ(CudaVisibleDevices({}), "");
  EXPECT_EQ(CudaVisibleDevices({2}), "2");
  EXPECT_EQ(CudaVisibleDevices({0, 3}), "0,3");
}

TEST(WorkerFlags, DefaultsEnvAndFlags) {
  auto none = [](const char*) -> const char* { return nullptr; };
  auto c = ParseWorkerFlags({}, none);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->coordinator, "tcp://127.0.0.1:5555");
  EXPECT_EQ(c->heartbeat, 1000ms);
  EXPECT_EQ(c->liveness, 3);
  EXPECT_FALSE(c->gpus.has_value());

  auto env = [](const char* name) -> const char* {
    if (std::string(name) == "SCION_GPUS") return "1";
    if (std::string(name) == "SCION_COORDINATOR") return "tcp://10.0.0.1:5555";
    return nullptr;
  };
  c = ParseWorkerFlags({"--gpus", "0,2", "--drain-timeout=1.5", "--kill-grace-ms", "250", "--metrics-addr", "0.0.0.0:0"}, env);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(*c->gpus, "0,2");  // the flag beats the environment
  EXPECT_EQ(c->coordinator, "tcp://10.0.0.1:5555");
  EXPECT_EQ(c->drain_timeout, 1500ms);
  EXPECT_EQ(c->kill_grace, 250ms);
}

TEST(WorkerFlags, ErrorsNameTheFlag) {
  auto none = [](const char*) -> const char* { return nullptr; };
  struct Case {
    std::vector<std::string> args;
    const char* error;
  } cases[] = {
      {{"--bogus", "1"}, "--bogus: unknown flag"},
      {{"--liveness"}, "--liveness: needs a value"},
      {{"--liveness", "0"}, "--liveness: '0' is not an integer >= 1"},
      {{"--heartbeat-ms", "abc"}, "--heartbeat-ms: 'abc'"},
      {{"--heartbeat-ms", "5"}, "--heartbeat-ms: must be >= 10"},
      {{"--drain-timeout", "-1"}, "--drain-timeout"},
      {{"--health-addr", "nohost"}, "--health-addr: want host:port"},
      {{"--metrics-addr", "127.0.0.1:99999"}, "--metrics-addr: port must be 0..65535"},
      {{"--coordinator", ""}, "--coordinator: must not be empty"},
  };
  for (const Case& c : cases) {
    auto r = ParseWorkerFlags(c.args, none);
    ASSERT_FALSE(r.ok()) << c.args[0];
    EXPECT_NE(r.status().message().find(c.error), std::string::npos) << r.status().message();
  }
  auto help = ParseWorkerFlags({"--help"}, none);
  EXPECT_EQ(help.status().code(), Status::Code::kNotFound);
  EXPECT_NE(Usage().find("--fake-gpus"), std::string::npos);
}

TEST(HealthResponse, Table) {
  struct Case {
    const char* request;
    const char* not_ready;
    const char* status;
  } cases[] = {
      {"GET /healthz HTTP/1.1", "", "HTTP/1.0 200 OK"},
      {"GET /healthz HTTP/1.1", "draining", "HTTP/1.0 200 OK"},
      {"GET /readyz HTTP/1.1", "", "HTTP/1.0 200 OK"},
      {"GET /readyz HTTP/1.1", "draining", "HTTP/1.0 503"},
      {"GET /metrics HTTP/1.1", "", "HTTP/1.0 404"},
      {"POST /healthz HTTP/1.1", "", "HTTP/1.0 405"},
      {"", "", "HTTP/1.0 405"},
  };
  for (const Case& c : cases) {
    std::string r = HealthResponse(c.request, c.not_ready);
    EXPECT_EQ(r.rfind(c.status, 0), 0u) << c.request << " -> " << r;
  }
  EXPECT_NE(HealthResponse("GET /readyz HTTP/1.1", "draining").find("not ready: draining"), std::string::npos);
}

class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("scion-worker-unit-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

using WorkerIdentity = TempDir;

TEST_F(WorkerIdentity, IsCreatedOnceAndKept) {
  auto first = LoadOrCreateWorkerId(dir_.string(), "");
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(IsValidWorkerId(*first)) << *first;
  auto second = LoadOrCreateWorkerId(dir_.string(), "");
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*first, *second);
  auto configured = LoadOrCreateWorkerId(dir_.string(), "gpu-node-7");
  ASSERT_TRUE(configured.ok());
  EXPECT_EQ(*configured, "gpu-node-7");
  EXPECT_FALSE(LoadOrCreateWorkerId(dir_.string(), "has space").ok());
  EXPECT_FALSE(IsValidWorkerId(""));
  EXPECT_FALSE(IsValidWorkerId(std::string(129, 'a')));
  EXPECT_TRUE(IsValidWorkerId("a.b_c-1"));
}

// Transfers over an in-memory wire: the test plays the coordinator.
class TransfersTest : public TempDir {
 protected:
  void SetUp() override {
    TempDir::SetUp();
    cache_ = std::make_unique<ArtifactCache>((dir_ / "artifacts").string());
    ASSERT_TRUE(cache_->Init().ok());
    transfers_ = std::make_unique<Transfers>(cache_.get(), [this](proto::Message m) { sent_.push_back(std::move(m)); }, 100ms, 2);
  }
  // Answers every GET in sent_ from `data`, corrupting byte 0 of the first chunk when asked.
  void Serve(const std::string& sha, const std::string& data, bool corrupt = false) {
    while (!sent_.empty()) {
      proto::Message m = sent_.front();
      sent_.erase(sent_.begin());
      ASSERT_EQ(m.command, proto::Command::kArtifactGet);
      uint64_t off = m.body["offset"], len = m.body["length"];
      std::string chunk = data.substr(off, len);
      if (corrupt && off == 0) chunk[0] ^= 1;
      transfers_->OnChunk({proto::Command::kArtifactChunk, {{"sha256", sha}, {"offset", off}, {"size", chunk.size()}}, chunk});
    }
  }
  std::unique_ptr<ArtifactCache> cache_;
  std::unique_ptr<Transfers> transfers_;
  std::vector<proto::Message> sent_;
};

TEST_F(TransfersTest, FetchesInChunksChecksTheHashAndCaches) {
  std::string data(proto::kArtifactChunkBytes * 2 + 5, 'z');
  std::string sha = Sha256Hex(data);
  int calls = 0;
  std::string path;
  auto done = [&](Status st, const std::string& p) {
    ASSERT_TRUE(st.ok()) << st.ToString();
    ++calls;
    path = p;
  };
  transfers_->Fetch(sha, data.size(), done);
  transfers_->Fetch(sha, data.size(), done);  // a second job wanting the same input: one download
  Serve(sha, data);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(path, cache_->PathFor(sha));
  EXPECT_EQ(transfers_->bytes_fetched(), data.size());
  transfers_->Fetch(sha, data.size(), done);  // cached: at once, nothing sent
  EXPECT_EQ(calls, 3);
  EXPECT_TRUE(sent_.empty());
}

TEST_F(TransfersTest, CorruptDownloadIsRejected) {
  std::string data = "hello artifact";
  std::string sha = Sha256Hex(data);
  Status result;
  transfers_->Fetch(sha, data.size(), [&](Status st, const std::string&) { result = st; });
  Serve(sha, data, /*corrupt=*/true);
  EXPECT_EQ(result.code(), Status::Code::kCorruption);
  EXPECT_FALSE(cache_->Has(sha, data.size()));
}

TEST_F(TransfersTest, ErrorReplyAndSilenceFailTheFetch) {
  std::string sha(64, 'b');
  Status result = Status::Ok();
  transfers_->Fetch(sha, 10, [&](Status st, const std::string&) { result = st; });
  transfers_->OnChunk({proto::Command::kArtifactChunk, {{"error", "unknown artifact"}}, {}});
  EXPECT_EQ(result.code(), Status::Code::kNotFound);
  EXPECT_NE(result.message().find("unknown artifact"), std::string::npos);

  std::string sha2(64, 'c');
  result = Status::Ok();
  bool called = false;
  transfers_->Fetch(sha2, 10, [&](Status st, const std::string&) { result = st; called = true; });
  auto t = std::chrono::steady_clock::now();
  for (int i = 1; i <= 3; ++i) transfers_->Tick(t + i * 150ms);  // two resends, then give up
  EXPECT_TRUE(called);
  EXPECT_EQ(result.code(), Status::Code::kUnavailable);
  int gets = 0;
  for (const auto& m : sent_) gets += m.command == proto::Command::kArtifactGet && m.body["sha256"] == sha2;
  EXPECT_EQ(gets, 3);
}

TEST_F(TransfersTest, UploadsInChunksUntilComplete) {
  std::string data(proto::kArtifactChunkBytes + 10, 'q');
  fs::path file = dir_ / "out.bin";
  std::ofstream(file, std::ios::binary) << data;
  Status result = Status::Internal("not called");
  std::string got_sha;
  transfers_->Upload(file.string(), [&](Status st, const std::string& sha, uint64_t size) {
    result = st;
    got_sha = sha;
    EXPECT_EQ(size, data.size());
  });
  std::string received;
  while (!sent_.empty()) {
    proto::Message m = sent_.front();
    sent_.erase(sent_.begin());
    ASSERT_EQ(m.command, proto::Command::kArtifactPut);
    EXPECT_EQ(m.body["offset"], received.size());
    received += m.payload;
    bool complete = received.size() == data.size();
    transfers_->OnPutAck({proto::Command::kArtifactPutAck,
                          {{"sha256", m.body["sha256"]}, {"offset", m.body["offset"]}, {"complete", complete}}, {}});
  }
  EXPECT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(received, data);
  EXPECT_EQ(got_sha, Sha256Hex(data));
}

TEST_F(TransfersTest, MalformedAcksAreIgnoredNotFatal) {
  fs::path file = dir_ / "small.bin";
  std::ofstream(file, std::ios::binary) << "abc";
  Status result = Status::Internal("not called");
  transfers_->Upload(file.string(), [&](Status st, const std::string&, uint64_t) { result = st; });
  ASSERT_EQ(sent_.size(), 1u);
  std::string sha = sent_[0].body["sha256"];
  for (json body : {json{{"sha256", sha}, {"offset", "0"}, {"complete", true}}, json{{"sha256", sha}, {"offset", -4}},
                    json{{"sha256", sha}, {"offset", 0}, {"complete", "yes"}}, json{{"sha256", 7}}})
    transfers_->OnPutAck({proto::Command::kArtifactPutAck, body, {}});
  EXPECT_EQ(result.code(), Status::Code::kInternal) << "no malformed ack may complete the upload";
  transfers_->OnPutAck({proto::Command::kArtifactPutAck, {{"sha256", sha}, {"offset", 0}, {"complete", true}}, {}});
  EXPECT_TRUE(result.ok()) << result.ToString();
}

TEST_F(TransfersTest, UploadOfAMissingFileFails) {
  Status result;
  transfers_->Upload((dir_ / "nope").string(), [&](Status st, const std::string&, uint64_t) { result = st; });
  EXPECT_EQ(result.code(), Status::Code::kNotFound);
  EXPECT_TRUE(sent_.empty());
}

// Hashing runs off the loop: until the offloaded hash returns, nothing is sent or resent, and
// late chunks are ignored; then the transfer goes on where it stopped.
TEST_F(TransfersTest, HashingIsOffloadedAndNothingIsResentMeanwhile) {
  std::vector<std::pair<Transfers::Work, std::function<void(Result<std::string>)>>> pending;
  Transfers t(cache_.get(), [this](proto::Message m) { sent_.push_back(std::move(m)); }, 100ms, 2,
              [&](Transfers::Work w, std::function<void(Result<std::string>)> then) {
                pending.emplace_back(std::move(w), std::move(then));
              });
  const std::string data(1000, 'u');
  const fs::path file = dir_ / "out.bin";
  std::ofstream(file, std::ios::binary) << data;
  std::string stored;
  t.Upload(file.string(), [&](Status st, const std::string& sha, uint64_t) { ASSERT_TRUE(st.ok()); stored = sha; });
  ASSERT_EQ(pending.size(), 1u);
  t.Tick(std::chrono::steady_clock::now() + std::chrono::hours(1));
  EXPECT_TRUE(sent_.empty()) << "an upload was sent or resent before its hash was known";
  auto [work, then] = std::move(pending.back());
  pending.clear();
  then(work());
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_EQ(sent_[0].command, proto::Command::kArtifactPut);
  EXPECT_EQ(sent_[0].body["sha256"], Sha256Hex(data));
  sent_.clear();
  t.OnPutAck({proto::Command::kArtifactPutAck, {{"sha256", Sha256Hex(data)}, {"offset", 0}, {"complete", true}}, {}});
  EXPECT_EQ(stored, Sha256Hex(data));

  // A download: the last chunk hands the commit (hash + rename) off; the caller hears after it.
  const std::string sha = Sha256Hex(data);
  std::string path;
  t.Fetch(sha, data.size(), [&](Status st, const std::string& p) { ASSERT_TRUE(st.ok()) << st.ToString(); path = p; });
  ASSERT_EQ(sent_.size(), 1u);
  sent_.clear();
  t.OnChunk({proto::Command::kArtifactChunk, {{"sha256", sha}, {"offset", 0}, {"size", data.size()}}, data});
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_TRUE(path.empty());
  t.OnChunk({proto::Command::kArtifactChunk, {{"sha256", sha}, {"offset", 0}, {"size", data.size()}}, data});
  t.Tick(std::chrono::steady_clock::now() + std::chrono::hours(1));
  EXPECT_TRUE(sent_.empty()) << "a chunk was requested again while the download was being committed";
  auto [cwork, cthen] = std::move(pending.back());
  cthen(cwork());
  EXPECT_EQ(path, cache_->PathFor(sha));
  EXPECT_TRUE(cache_->Has(sha, data.size()));
}

using ArtifactCacheTest = TempDir;

// Puts `data` into the cache through the download path and returns its sha256.
static std::string Put(ArtifactCache& cache, const std::string& data) {
  const std::string sha = Sha256Hex(data);
  EXPECT_TRUE(cache.BeginPart(sha).ok());
  EXPECT_TRUE(cache.AppendPart(sha, 0, data).ok());
  EXPECT_TRUE(cache.CommitPart(sha, data.size()).ok());
  return sha;
}

TEST_F(ArtifactCacheTest, EvictsLeastRecentlyUsedFilesNotInUseUntilUnderTheCap) {
  ArtifactCache cache((dir_ / "artifacts").string(), 2500);  // room for two 1000-byte files
  ASSERT_TRUE(cache.Init().ok());
  const std::string a = Put(cache, std::string(1000, 'a'));
  const std::string b = Put(cache, std::string(1000, 'b'));
  const std::string c = Put(cache, std::string(1000, 'c'));
  // Oldest first: a, then b, then c; a was used again last, and b is an input of a running job.
  const auto now = fs::file_time_type::clock::now();
  fs::last_write_time(cache.PathFor(a), now - std::chrono::hours(3));
  fs::last_write_time(cache.PathFor(b), now - std::chrono::hours(2));
  fs::last_write_time(cache.PathFor(c), now - std::chrono::hours(1));
  cache.Touch(a);
  EXPECT_EQ(cache.Evict({b}), 1000u);  // c goes: the least recently used one not in use
  EXPECT_TRUE(cache.Has(a, 1000));
  EXPECT_TRUE(cache.Has(b, 1000));
  EXPECT_FALSE(cache.Has(c, 1000));
  EXPECT_EQ(cache.Evict({}), 0u);  // under the cap now

  // Everything in use: over the cap, but nothing may go.
  const std::string d = Put(cache, std::string(1000, 'd'));
  EXPECT_EQ(cache.Evict({a, b, d}), 0u);
  EXPECT_TRUE(cache.Has(a, 1000) && cache.Has(b, 1000) && cache.Has(d, 1000));

  ArtifactCache uncapped((dir_ / "artifacts").string());
  EXPECT_EQ(uncapped.Evict({}), 0u);
}

}  // namespace
}  // namespace scion::worker
