#include "jobs/report.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

#include <gtest/gtest.h>

namespace scion::jobs {
namespace {

Record Metric(int64_t step, std::string name, double value) {
  Record r;
  r.type = Record::Type::kMetric;
  r.step = step;
  r.name = std::move(name);
  r.value = value;
  r.time = 1700000000.5;
  return r;
}

TEST(ReportCodec, RoundTripsEveryRecordType) {
  std::vector<Record> records;
  records.push_back(Metric(7, "loss", 2.25));
  Record log;
  log.type = Record::Type::kLog;
  log.text = "step 7: \"quoted\" \t tab";
  records.push_back(log);
  Record progress;
  progress.type = Record::Type::kProgress;
  progress.value = 0.5;
  records.push_back(progress);
  Record artifact;
  artifact.type = Record::Type::kArtifact;
  artifact.name = "model";
  artifact.text = "/tmp/w/model.safetensors";
  records.push_back(artifact);
  Record outcome;
  outcome.type = Record::Type::kOutcome;
  outcome.ok = false;
  outcome.text = "params.steps: must be > 0";
  outcome.summary = {{"loss", 1.5}, {"exit_code", 3}};
  records.push_back(outcome);

  for (const Record& r : records) {
    std::string line = EncodeRecord(r);
    EXPECT_EQ(line.find('\n'), std::string::npos) << line;
    auto back = DecodeRecord(line + "\n");
    ASSERT_TRUE(back.ok()) << back.status().ToString() << " for " << line;
    EXPECT_EQ(back->type, r.type);
    EXPECT_EQ(back->step, r.step);
    EXPECT_EQ(back->name, r.name);
    EXPECT_EQ(back->value, r.value);
    EXPECT_EQ(back->text, r.text);
    EXPECT_EQ(back->ok, r.ok);
    EXPECT_EQ(back->summary, r.summary);
    if (r.type == Record::Type::kMetric) {
      EXPECT_EQ(back->time, r.time);
    }
  }
}

TEST(ReportCodec, NonFiniteMetricTravelsAsNullAndComesBackNaN) {
  std::string line = EncodeRecord(Metric(1, "loss", std::nan("")));
  EXPECT_NE(line.find("\"value\":null"), std::string::npos) << line;
  auto back = DecodeRecord(line);
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(std::isnan(back->value));
}

TEST(ReportCodec, InvalidUtf8InALogLineIsReplacedNotThrown) {
  Record log;
  log.type = Record::Type::kLog;
  log.text = std::string("bad \xff\xfe bytes");
  std::string line = EncodeRecord(log);
  auto back = DecodeRecord(line);
  ASSERT_TRUE(back.ok());
  EXPECT_NE(back->text.find("bad"), std::string::npos);
}

TEST(ReportCodec, MalformedRecordsNameWhatIsWrong) {
  struct Case {
    const char* line;
    const char* want;  // substring of the error
  } cases[] = {
      {"", "not a JSON object"},
      {"not json", "not a JSON object"},
      {"[1,2]", "not a JSON object"},
      {R"({"line":"x"})", "type: missing"},
      {R"({"type":"teleport"})", "unknown type 'teleport'"},
      {R"({"type":"metric","name":"loss","value":1})", "metric.step"},
      {R"({"type":"metric","step":1.5,"name":"loss","value":1})", "metric.step"},
      {R"({"type":"metric","step":1,"name":"","value":1})", "metric.name"},
      {R"({"type":"metric","step":1,"name":"loss","value":"1"})", "metric.value"},
      {R"({"type":"log","line":3})", "log.line"},
      {R"({"type":"progress","fraction":1.5})", "progress.fraction"},
      {R"({"type":"artifact","name":"m"})", "artifact.path"},
      {R"({"type":"outcome"})", "outcome.ok"},
      {R"({"type":"outcome","ok":true,"summary":[]})", "outcome.summary"},
      {R"({"type":"outcome","ok":true,"summary":{"x":"y"}})", "outcome.summary.x"},
  };
  for (const Case& c : cases) {
    auto r = DecodeRecord(c.line);
    ASSERT_FALSE(r.ok()) << c.line;
    EXPECT_NE(r.status().message().find(c.want), std::string::npos) << c.line << " -> " << r.status().message();
  }
}

TEST(ReportCodec, FailedOutcomeWithoutErrorGetsAGenericReason) {
  auto r = DecodeRecord(R"({"type":"outcome","ok":false})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->text, "job failed");
}

TEST(FdReporter, WritesOneDecodableLinePerRecord) {
  // A file, not a pipe: the records exceed a pipe's buffer and nobody reads concurrently.
  FILE* file = std::tmpfile();
  ASSERT_NE(file, nullptr);
  int fd = ::fileno(file);
  {
    FdReporter rep(fd);
    rep.Metric(3, "acc", 0.75);
    rep.Log(std::string(kMaxLogLineBytes + 100, 'x'));  // cut to the limit
    rep.Progress(7.0);                                  // clamped to 1
    rep.Artifact("model", "out/model.bin");
    rep.Finish(Outcome{Status::Ok(), {{"acc", 0.75}}});
  }
  ::lseek(fd, 0, SEEK_SET);
  std::string all;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) all.append(buf, static_cast<size_t>(n));
  std::fclose(file);
  std::vector<Record> got;
  size_t start = 0;
  for (size_t nl; (nl = all.find('\n', start)) != std::string::npos; start = nl + 1) {
    auto r = DecodeRecord(std::string_view(all).substr(start, nl - start));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    got.push_back(*r);
  }
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got[0].name, "acc");
  EXPECT_EQ(got[1].text.size(), kMaxLogLineBytes);
  EXPECT_EQ(got[2].value, 1.0);
  EXPECT_EQ(got[3].text, "out/model.bin");
  EXPECT_TRUE(got[4].ok);
  EXPECT_EQ(got[4].summary.at("acc"), 0.75);
}

}  // namespace
}  // namespace scion::jobs
