// The table of job kinds. Each kind lives in its own file and contributes one entry here.
#include "jobs/job.h"

namespace scion::jobs {

// One declaration per kind file (jobs/<kind>.cc).
Kind CommandKind();
Kind GpdpKind();
Kind TrainKind();
Kind EvalKind();
Kind LowraKind();
Kind HedgehogKind();
Kind GraftKind();

const std::vector<Kind>& AllKinds() {
  static const std::vector<Kind> kinds = {
      CommandKind(),
      GpdpKind(),
      TrainKind(),
      EvalKind(),
      LowraKind(),
      HedgehogKind(),
      GraftKind(),
  };
  return kinds;
}

const Kind* FindKind(const std::string& name) {
  for (const Kind& k : AllKinds())
    if (k.name == name) return &k;
  return nullptr;
}

}  // namespace scion::jobs
