// Validates Grafana dashboards against Grafana's own dashboard and panel schemas, as published in
// the @grafana/schema package (TypeScript types generated from Grafana's CUE kinds).
//
// For each dashboard it writes a TypeScript module that assigns the dashboard JSON to the
// Dashboard type, and each panel's options (and field-config `custom` block, where the panel kind
// defines one) to that panel kind's Options/FieldConfig types, then type-checks it with tsc.
// Object literals get TypeScript's excess-property check, so an unknown or misspelt field fails,
// as does a wrong type or an enum value Grafana does not know.
//
// Usage: node dashboard_schema.mjs NPM_DIR DASHBOARD.json...
import { readFileSync } from "node:fs";
import path from "node:path";

import { typecheck } from "./typecheck.mjs";

const PANEL_CFG = {  // panel type -> [module under @grafana/schema, has a FieldConfig type]
  timeseries: ["timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen", true],
  stat: ["stat/panelcfg/x/StatPanelCfg_types.gen", false],
  bargauge: ["bargauge/panelcfg/x/BarGaugePanelCfg_types.gen", false],
  gauge: ["gauge/panelcfg/x/GaugePanelCfg_types.gen", false],
  table: ["table/panelcfg/x/TablePanelCfg_types.gen", true],
  text: ["text/panelcfg/x/TextPanelCfg_types.gen", false],
};

const [npmDir, ...files] = process.argv.slice(2);
if (!npmDir || files.length === 0) {
  console.error("usage: node dashboard_schema.mjs NPM_DIR DASHBOARD.json...");
  process.exit(2);
}

const lines = [
  'import type { Dashboard } from "@grafana/schema";',
  ...Object.entries(PANEL_CFG).map(([t, [mod]]) =>
    `import type * as ${t} from "@grafana/schema/dist/esm/raw/composable/${mod}";`),
  // JSON carries enum values as plain strings; map each string enum to the union of its values.
  "type Json<T> = T extends string ? `${T}` : T extends Array<infer U> ? Array<Json<U>> :",
  "  T extends object ? { [K in keyof T]: Json<T[K]> } : T;",
];
const problems = [];
files.forEach((file, d) => {
  let dash;
  try {
    dash = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    problems.push(`${file}: not JSON: ${e.message}`);
    return;
  }
  lines.push(`// ${path.basename(file)}`);
  lines.push(`export const dashboard${d}: Json<Dashboard> = ${JSON.stringify(dash, null, 1)};`);
  const panels = (dash.panels ?? []).flatMap((p) => [p, ...(p.type === "row" ? p.panels ?? [] : [])]);
  for (const p of panels) {
    if (p.type === "row") continue;
    const cfg = PANEL_CFG[p.type];
    if (!cfg) {
      problems.push(`${file}: panel ${p.id} "${p.title}": type "${p.type}" has no schema here (add it to PANEL_CFG)`);
      continue;
    }
    const tag = `${path.basename(file)} panel ${p.id} "${p.title}"`;
    lines.push(`// ${tag}`);
    lines.push(`export const d${d}_p${p.id}_options: Json<${p.type}.Options> = ${JSON.stringify(p.options ?? {})};`);
    const custom = p.fieldConfig?.defaults?.custom;
    if (cfg[1] && custom !== undefined) {
      lines.push(`export const d${d}_p${p.id}_custom: Json<${p.type}.FieldConfig> = ${JSON.stringify(custom)};`);
    }
  }
});

typecheck(npmDir, "dashboard-check", lines, problems);
if (problems.length) {
  for (const p of problems) console.error(p);
  console.error(`FAILED: ${problems.length} schema problem(s)`);
  process.exit(1);
}
console.log(`ok: ${files.length} dashboard(s) match Grafana's dashboard and panel schemas`);
