// Type-checks generated TypeScript with the project's pinned tsc: the deploy checks express "this
// JSON/YAML object satisfies that schema" as `const x: SchemaType = {...}` lines, each preceded by a
// `// <where>` comment, and report each compiler error against the object it came from.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";

// Writes `lines` to <npmDir>/<name>/check.ts, runs tsc on it, and appends one message per error
// (prefixed with the nearest `// ` comment above the offending line) to `problems`.
export function typecheck(npmDir, name, lines, problems) {
  const work = path.join(npmDir, name);
  mkdirSync(work, { recursive: true });
  writeFileSync(path.join(work, "check.ts"), lines.join("\n") + "\n");
  writeFileSync(path.join(work, "tsconfig.json"), JSON.stringify({
    compilerOptions: { strict: true, noEmit: true, module: "esnext", moduleResolution: "bundler",
                       skipLibCheck: true, target: "es2022", types: [] },
    files: ["check.ts"],
  }));
  try {
    execFileSync(path.join(npmDir, "node_modules", ".bin", "tsc"), ["-p", work, "--pretty", "false"],
                 { stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    const before = problems.length;
    const out = (e.stdout?.toString() ?? "") + (e.stderr?.toString() ?? "");
    for (const line of out.split("\n").filter(Boolean)) {
      const m = line.match(/check\.ts\((\d+),\d+\): (.*)/);
      if (!m) { problems.push(line); continue; }
      let i = Number(m[1]) - 1;
      while (i >= 0 && !lines[i].startsWith("//")) i--;
      problems.push(`${i >= 0 ? lines[i].slice(3) : "?"}: ${m[2]}`);
    }
    if (problems.length === before) problems.push(`tsc failed: ${e.message}`);
  }
}
