#include "worker/transfers.h"

#include <filesystem>
#include <fstream>

#include "common/sha256.h"
#include "worker/log.h"

namespace scion::worker {

using proto::Command;
using proto::Message;

// A JSON integer >= 0, whether it was parsed (unsigned) or built in code (signed).
static bool IsOffset(const nlohmann::json& j) {
  return j.is_number_unsigned() || (j.is_number_integer() && j.get<int64_t>() >= 0);
}

Transfers::Transfers(ArtifactCache* cache, SendFn send, std::chrono::milliseconds timeout, int max_resends,
                     Offload offload)
    : cache_(cache), send_(std::move(send)), timeout_(timeout), max_resends_(max_resends), offload_(std::move(offload)) {
  if (!offload_) offload_ = [](Work work, std::function<void(Result<std::string>)> then) { then(work()); };
}

// ---- downloads ------------------------------------------------------------------------------

void Transfers::Fetch(const std::string& sha256, uint64_t size, FetchDone done) {
  if (cache_->Has(sha256, size)) {
    cache_->Touch(sha256);
    done(Status::Ok(), cache_->PathFor(sha256));
    return;
  }
  auto& waiting = waiters_[sha256];
  waiting.push_back(std::move(done));
  if (waiting.size() > 1) return;  // already queued or in flight
  download_queue_.emplace_back(sha256, size);
  if (!download_) StartNextDownload();
}

void Transfers::StartNextDownload() {
  while (!download_ && !download_queue_.empty()) {
    auto [sha, size] = download_queue_.front();
    download_queue_.pop_front();
    if (Status st = cache_->BeginPart(sha); !st.ok()) {
      download_ = Download{sha, size, 0, 0, false, Clock::now()};
      FinishDownload(st, "");
      continue;
    }
    download_ = Download{sha, size, 0, 0, false, Clock::now()};
    if (size == 0) return Commit();
    RequestChunk();
  }
}

void Transfers::RequestChunk() {
  uint64_t length = std::min<uint64_t>(proto::kArtifactChunkBytes, download_->size - download_->offset);
  download_->sent = Clock::now();
  send_(Message{Command::kArtifactGet,
                {{"sha256", download_->sha}, {"offset", download_->offset}, {"length", length}},
                {}});
}

// Hashes the complete part file and moves it into the cache, off the loop.
void Transfers::Commit() {
  download_->committing = true;
  offload_([cache = cache_, sha = download_->sha, size = download_->size] { return cache->CommitPart(sha, size); },
           [this](Result<std::string> path) {
             FinishDownload(path.ok() ? Status::Ok() : path.status(), path.ok() ? *path : "");
           });
}

void Transfers::FinishDownload(Status st, const std::string& path) {
  std::string sha = download_->sha;
  download_.reset();
  if (!st.ok()) cache_->DropPart(sha);
  auto callers = std::move(waiters_[sha]);
  waiters_.erase(sha);
  for (auto& done : callers) done(st, path);
  StartNextDownload();
}

void Transfers::OnChunk(const Message& m) {
  if (!download_ || download_->committing) return;  // a late duplicate after a resend
  const auto& b = m.body;
  if (b.contains("error")) {
    // An error may come without a sha256; with one download in flight it can only be ours.
    if (b.contains("sha256") && b["sha256"] != download_->sha) return;
    std::string why = b["error"].is_string() ? b["error"].get<std::string>() : b["error"].dump();
    FinishDownload(Status::NotFound("artifact " + download_->sha + ": " + why), "");
    return;
  }
  if (!b.contains("sha256") || b["sha256"] != download_->sha) return;
  if (!b.contains("offset") || !IsOffset(b["offset"]) || b["offset"].get<uint64_t>() != download_->offset)
    return;  // stale (answer to a request we already resent)
  if (m.payload.empty() || download_->offset + m.payload.size() > download_->size) {
    FinishDownload(Status::Corruption("artifact " + download_->sha + ": bad chunk of " +
                                      std::to_string(m.payload.size()) + " bytes at offset " +
                                      std::to_string(download_->offset)),
                   "");
    return;
  }
  if (Status st = cache_->AppendPart(download_->sha, download_->offset, m.payload); !st.ok()) {
    FinishDownload(st, "");
    return;
  }
  bytes_fetched_ += m.payload.size();
  download_->offset += m.payload.size();
  download_->resends = 0;
  if (download_->offset < download_->size) {
    RequestChunk();
    return;
  }
  Commit();
}

// ---- uploads --------------------------------------------------------------------------------

void Transfers::Upload(const std::string& path, UploadDone done) {
  Up up;
  up.path = path;
  up.done = std::move(done);
  upload_queue_.push_back(std::move(up));
  if (!upload_) StartNextUpload();
}

void Transfers::StartNextUpload() {
  while (!upload_ && !upload_queue_.empty()) {
    upload_ = std::move(upload_queue_.front());
    upload_queue_.pop_front();
    std::error_code ec;
    upload_->size = std::filesystem::file_size(upload_->path, ec);
    if (ec || !std::filesystem::is_regular_file(upload_->path)) {
      FinishUpload(Status::NotFound(upload_->path + ": not a readable file"));
      continue;
    }
    upload_->hashing = true;
    offload_([path = upload_->path] { return Sha256File(path); }, [this](Result<std::string> sha) {
      upload_->hashing = false;
      if (!sha.ok()) return FinishUpload(sha.status());
      upload_->sha = *sha;
      SendUploadChunk();
    });
  }
}

void Transfers::SendUploadChunk() {
  Up& u = *upload_;
  u.chunk = std::min<uint64_t>(proto::kArtifactChunkBytes, u.size - u.offset);
  std::string data(u.chunk, '\0');
  std::ifstream in(u.path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(u.offset));
  in.read(data.data(), static_cast<std::streamsize>(u.chunk));
  if (!in) {
    FinishUpload(Status::IoError(u.path + ": read failed at offset " + std::to_string(u.offset)));
    return;
  }
  u.sent = Clock::now();
  send_(Message{Command::kArtifactPut, {{"sha256", u.sha}, {"size", u.size}, {"offset", u.offset}}, std::move(data)});
}

void Transfers::FinishUpload(Status st) {
  Up done = std::move(*upload_);
  upload_.reset();
  done.done(st, done.sha, done.size);
  StartNextUpload();
}

void Transfers::OnPutAck(const Message& m) {
  if (!upload_ || upload_->hashing) return;
  const auto& b = m.body;
  if (b.contains("sha256") && b["sha256"] != upload_->sha) return;
  if (b.contains("error")) {
    std::string why = b["error"].is_string() ? b["error"].get<std::string>() : b["error"].dump();
    FinishUpload(Status::FailedPrecondition("upload of " + upload_->path + " refused: " + why));
    return;
  }
  if (!b.contains("sha256")) return;
  Up& u = *upload_;
  // The ack names the chunk's offset (or, equally accepted, where the next chunk starts).
  auto off = b.find("offset");
  auto comp = b.find("complete");
  // Malformed: ignore it and let the resend timer ask again.
  if (off == b.end() || !IsOffset(*off) || (comp != b.end() && !comp->is_boolean())) return;
  uint64_t offset = off->get<uint64_t>();
  bool complete = comp != b.end() && comp->is_boolean() && comp->get<bool>();
  if (complete) {
    bytes_uploaded_ += u.chunk;
    FinishUpload(Status::Ok());
    return;
  }
  if (offset != u.offset && offset != u.offset + u.chunk) return;  // stale duplicate
  bytes_uploaded_ += u.chunk;
  u.offset += u.chunk;
  u.resends = 0;
  if (u.offset >= u.size) {
    FinishUpload(Status::Corruption("upload of " + u.path + ": coordinator did not complete the artifact"));
    return;
  }
  SendUploadChunk();
}

void Transfers::Tick(Clock::time_point now) {
  if (download_ && !download_->committing && now - download_->sent > timeout_) {
    if (++download_->resends > max_resends_) {
      FinishDownload(Status::Unavailable("artifact " + download_->sha + ": coordinator did not answer"), "");
    } else {
      LogWarn("artifact " + download_->sha + ": no answer, asking again at offset " + std::to_string(download_->offset));
      RequestChunk();
    }
  }
  if (upload_ && !upload_->hashing && now - upload_->sent > timeout_) {
    if (++upload_->resends > max_resends_) {
      FinishUpload(Status::Unavailable("upload of " + upload_->path + ": coordinator did not answer"));
    } else {
      LogWarn("upload of " + upload_->path + ": no ack, resending offset " + std::to_string(upload_->offset));
      SendUploadChunk();
    }
  }
}

}  // namespace scion::worker
