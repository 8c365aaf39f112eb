// Consistency of the container assets where no container engine is available to build them:
//   - Dockerfile: ARGs used in FROM are declared before the first FROM; every `COPY --from` names
//     an earlier stage; every other COPY source exists in the build context (the repository)
//   - compose file: each service's build.dockerfile exists in its context and build.target is a
//     stage of it; every relative bind-mount source exists
// Usage: node container_check.mjs NPM_DIR REPO COMPOSE.yaml
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const [npmDir, repo, composeFile] = process.argv.slice(2);
if (!npmDir || !repo || !composeFile) {
  console.error("usage: node container_check.mjs NPM_DIR REPO COMPOSE.yaml");
  process.exit(2);
}
const YAML = createRequire(path.join(path.resolve(npmDir), "package.json"))("yaml");
const problems = [];

// Dockerfile instructions with continuation lines joined; comments and parser directives dropped.
function instructions(text) {
  const out = [];
  let cur = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!cur && (line === "" || line.startsWith("#"))) continue;
    cur += (cur ? " " : "") + line.replace(/\\$/, "").trim();
    if (!line.endsWith("\\")) { out.push(cur); cur = ""; }
  }
  if (cur) out.push(cur);
  return out;
}

function stagesOf(dockerfile, context) {
  const where = path.relative(repo, dockerfile);
  const stages = [];
  const globalArgs = new Set();
  for (const ins of instructions(readFileSync(dockerfile, "utf8"))) {
    const [op, ...rest] = ins.split(/\s+/);
    const OP = op.toUpperCase();
    if (OP === "ARG" && stages.length === 0) globalArgs.add(rest[0].split("=")[0]);
    if (OP === "FROM") {
      for (const m of ins.matchAll(/\$\{?(\w+)/g)) {
        if (!globalArgs.has(m[1])) problems.push(`${where}: FROM uses \${${m[1]}} without an ARG before the first FROM`);
      }
      const as = ins.match(/\sAS\s+(\S+)/i);
      stages.push(as ? as[1] : String(stages.length));
    }
    if (OP === "COPY" || OP === "ADD") {
      const from = ins.match(/--from=(\S+)/);
      const args = rest.filter((a) => !a.startsWith("--"));
      if (from) {
        if (!stages.slice(0, -1).includes(from[1])) problems.push(`${where}: ${ins}: no earlier stage "${from[1]}"`);
      } else {
        for (const src of args.slice(0, -1)) {
          if (src !== "." && !existsSync(path.join(context, src))) {
            problems.push(`${where}: ${ins}: ${src} is not in the build context`);
          }
        }
      }
    }
  }
  if (stages.length === 0) problems.push(`${where}: no FROM`);
  return stages;
}

const composeDir = path.dirname(path.resolve(composeFile));
const doc = YAML.parseDocument(readFileSync(composeFile, "utf8"), { merge: true });
const compose = doc.toJS({ maxAliasCount: 100 });
let services = 0;
for (const [name, svc] of Object.entries(compose.services ?? {})) {
  services++;
  if (svc.build) {
    const context = path.resolve(composeDir, svc.build.context ?? ".");
    const dockerfile = path.resolve(context, svc.build.dockerfile ?? "Dockerfile");
    if (!existsSync(dockerfile)) {
      problems.push(`${composeFile}: service ${name}: ${dockerfile} does not exist`);
      continue;
    }
    const stages = stagesOf(dockerfile, context);
    if (svc.build.target && !stages.includes(svc.build.target)) {
      problems.push(`${composeFile}: service ${name}: build target "${svc.build.target}" is not a stage (${stages.join(", ")})`);
    }
  }
  for (const v of svc.volumes ?? []) {
    const src = typeof v === "string" ? v.split(":")[0] : v.source;
    if (src && (src.startsWith("./") || src.startsWith("../")) && !existsSync(path.resolve(composeDir, src))) {
      problems.push(`${composeFile}: service ${name}: mount source ${src} does not exist`);
    }
  }
}
if (problems.length) {
  for (const p of new Set(problems)) console.error(p);  // a Dockerfile shared by services reports once
  console.error(`FAILED: ${problems.length} problem(s)`);
  process.exit(1);
}
console.log(`ok: ${services} compose services; Dockerfile stages, copies and mounts consistent`);
