// Validates Strimzi, KEDA and Prometheus Operator custom resources against their CRD schemas, offline.
//
//   node deploy/tools/validate-crds.mjs < documents.json      (a JSON array of manifests)
//
// Prints a JSON array with one entry per input document: {"kind": ..., "name": ..., "errors": [...]}.
// Two checks per document, both generated from the operators' published CRDs:
//   1. the model's own validate(): types, enums, required fields, bounds, patterns (ajv, from the CRD);
//   2. the TypeScript compiler's excess-property check against the model's declared type, which names
//      every field the CRD does not define, at any depth (the CRD schemas do not forbid unknown fields,
//      and the API server would silently prune them: a typo would be lost without an error).
// A document whose apiVersion/kind has no model here is reported as an error, never skipped.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const here = dirname(fileURLToPath(import.meta.url));

// apiVersion/kind -> [module with the model class, exported interface of the document type]
const MODELS = {
  "kafka.strimzi.io/v1/Kafka": ["@kubernetes-models/strimzi-kafka-operator/kafka.strimzi.io/v1/Kafka", "IKafka"],
  "kafka.strimzi.io/v1/KafkaNodePool": [
    "@kubernetes-models/strimzi-kafka-operator/kafka.strimzi.io/v1/KafkaNodePool", "IKafkaNodePool"],
  "kafka.strimzi.io/v1/KafkaTopic": [
    "@kubernetes-models/strimzi-kafka-operator/kafka.strimzi.io/v1/KafkaTopic", "IKafkaTopic"],
  "kafka.strimzi.io/v1beta2/Kafka": [
    "@kubernetes-models/strimzi-kafka-operator/kafka.strimzi.io/v1beta2/Kafka", "IKafka"],
  "kafka.strimzi.io/v1beta2/KafkaNodePool": [
    "@kubernetes-models/strimzi-kafka-operator/kafka.strimzi.io/v1beta2/KafkaNodePool", "IKafkaNodePool"],
  "kafka.strimzi.io/v1beta2/KafkaTopic": [
    "@kubernetes-models/strimzi-kafka-operator/kafka.strimzi.io/v1beta2/KafkaTopic", "IKafkaTopic"],
  "monitoring.coreos.com/v1/PodMonitor": [
    "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor", "IPodMonitor"],
  "monitoring.coreos.com/v1/PrometheusRule": [
    "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule", "IPrometheusRule"],
  "keda.sh/v1alpha1/ScaledObject": ["@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject", "IScaledObject"],
  "keda.sh/v1alpha1/TriggerAuthentication": [
    "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication", "ITriggerAuthentication"],
};

function describe(doc) {
  return { kind: doc?.kind ?? "?", name: doc?.metadata?.name ?? "?" };
}

async function modelErrors(doc, modulePath) {
  const mod = await import(modulePath);
  const Model = mod[doc.kind];
  try {
    new Model(doc).validate();
    return [];
  } catch (err) {
    return [`schema: ${err.message}`];
  }
}

function typeErrors(docs, results) {
  // One generated file, one document per line, so each diagnostic maps back to its document.
  const dir = mkdtempSync(join(here, ".check-"));
  try {
    const lines = [];
    const imports = new Map();
    docs.forEach((doc, index) => {
      const model = MODELS[`${doc?.apiVersion}/${doc?.kind}`];
      if (!model) return;
      const [modulePath, iface] = model;
      const alias = `T${imports.size}`;
      if (!imports.has(modulePath)) imports.set(modulePath, { alias, iface });
      const { alias: typeName } = imports.get(modulePath);
      lines.push([index, `export const d${index}: ${typeName} = ${JSON.stringify(doc)};`]);
    });
    const header = [...imports].map(([path, { alias, iface }]) => `import type { ${iface} as ${alias} } from "${path}";`);
    const body = lines.map(([, text]) => text);
    const source = [...header, ...body].join("\n") + "\n";
    const file = join(dir, "documents.ts");
    writeFileSync(file, source);
    const program = ts.createProgram([file], {
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      types: [],
    });
    for (const diag of ts.getPreEmitDiagnostics(program)) {
      const text = ts.flattenDiagnosticMessageText(diag.messageText, " ");
      if (!diag.file || diag.file.fileName !== file) {
        throw new Error(`type check failed outside the documents: ${text}`);
      }
      const { line, character } = diag.file.getLineAndCharacterOfPosition(diag.start ?? 0);
      const entry = lines[line - header.length];
      if (!entry) throw new Error(`type check failed in the imports: ${text}`);
      const [index, lineText] = entry;
      results[index].errors.push(`fields: ${text} (near: ${lineText.slice(character, character + 60)})`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  const docs = JSON.parse(readFileSync(0, "utf8"));
  if (!Array.isArray(docs)) throw new Error("expected a JSON array of documents on standard input");
  const results = docs.map((doc) => ({ ...describe(doc), errors: [] }));
  for (const [index, doc] of docs.entries()) {
    const model = MODELS[`${doc?.apiVersion}/${doc?.kind}`];
    if (!model) {
      results[index].errors.push(`no CRD schema here for ${doc?.apiVersion} ${doc?.kind}`);
      continue;
    }
    results[index].errors.push(...(await modelErrors(doc, model[0])));
  }
  typeErrors(docs, results);
  process.stdout.write(JSON.stringify(results));
}

main().catch((err) => {
  process.stderr.write(`validate-crds: ${err.stack ?? err}\n`);
  process.exit(2);
});
