// Artifact transfers with the coordinator over the protocol: chunked ARTIFACT_GET into the local
// cache (sha256 checked) and chunked ARTIFACT_PUT of job outputs. One download and one upload are
// in flight at a time (stop-and-wait, kArtifactChunkBytes per chunk): replies are matched by sha256
// and offset, and an unanswered request is resent after a timeout (the coordinator may have
// restarted). Single-threaded: call everything from the worker's event loop; hashing (a checkpoint
// may be gigabytes) is handed to an Offload that runs it elsewhere and resumes on the loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/protocol.h"
#include "common/status.h"
#include "worker/artifact_cache.h"

namespace scion::worker {

class Transfers {
 public:
  using Clock = std::chrono::steady_clock;
  using SendFn = std::function<void(proto::Message)>;
  // Fetch: the cached path. Upload: sha256 and size of what was stored.
  using FetchDone = std::function<void(Status, const std::string& path)>;
  using UploadDone = std::function<void(Status, const std::string& sha256, uint64_t size)>;
  // Runs `work` off the caller's thread, then `then` with its result back on the caller's loop.
  // Unset: both run inline.
  using Work = std::function<Result<std::string>()>;
  using Offload = std::function<void(Work work, std::function<void(Result<std::string>)> then)>;

  Transfers(ArtifactCache* cache, SendFn send, std::chrono::milliseconds timeout, int max_resends = 30,
            Offload offload = {});

  // Calls done at once when the artifact is already cached.
  void Fetch(const std::string& sha256, uint64_t size, FetchDone done);
  // Hashes the file, then uploads it. done gets an error when the file cannot be read or the
  // coordinator refuses it.
  void Upload(const std::string& path, UploadDone done);

  void OnChunk(const proto::Message& m);   // ARTIFACT_CHUNK
  void OnPutAck(const proto::Message& m);  // ARTIFACT_PUT_ACK
  void Tick(Clock::time_point now);        // resends what timed out

  uint64_t bytes_fetched() const { return bytes_fetched_; }
  uint64_t bytes_uploaded() const { return bytes_uploaded_; }

 private:
  struct Download {
    std::string sha;
    uint64_t size = 0;
    uint64_t offset = 0;
    int resends = 0;
    bool committing = false;  // hashing the complete file off the loop
    Clock::time_point sent;
  };
  struct Up {
    std::string path, sha;
    uint64_t size = 0, offset = 0, chunk = 0;
    int resends = 0;
    bool hashing = false;     // hashing the file off the loop before the first chunk
    Clock::time_point sent;
    UploadDone done;
  };
  void StartNextDownload();
  void RequestChunk();
  void FinishDownload(Status st, const std::string& path);
  void StartNextUpload();
  void SendUploadChunk();
  void FinishUpload(Status st);
  void Commit();

  ArtifactCache* cache_;
  SendFn send_;
  std::chrono::milliseconds timeout_;
  int max_resends_;
  Offload offload_;
  std::map<std::string, std::vector<FetchDone>> waiters_;  // sha -> callers
  std::deque<std::pair<std::string, uint64_t>> download_queue_;
  std::optional<Download> download_;
  std::deque<Up> upload_queue_;
  std::optional<Up> upload_;
  uint64_t bytes_fetched_ = 0, bytes_uploaded_ = 0;
};

}  // namespace scion::worker
