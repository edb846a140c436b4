// The create form's rules come from the server's own OpenAPI document (the request schema
// of POST /api/v1/task-groups), checked with Ajv, plus the few rules the server enforces in
// code rather than in the schema; messages are worded as the server words them, so what
// the form says next to a field is what the server would answer.
import Ajv2020, { type ErrorObject, type ValidateFunction } from "ajv/dist/2020";

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type Errors = Record<string, string>;
interface OpenApiDoc {
  paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: Json }> } }>>;
  components: { schemas: Record<string, Json> };
}

export function requestSchema(doc: OpenApiDoc, path: string, method = "post"): Record<string, Json> {
  const body = doc.paths[path]?.[method]?.requestBody?.content["application/json"]?.schema;
  if (!body) throw new Error(`the API document has no request body for ${method} ${path}`);
  // Refs point into #/components/schemas: keep them resolvable from this root.
  return { ...(body as Record<string, Json>), components: doc.components as unknown as Json };
}

export function schemaProperty(root: Record<string, Json>, name: string): Record<string, Json> {
  const resolved = resolve(root, root);
  const props = (resolved["properties"] ?? {}) as Record<string, Json>;
  return resolve(root, (props[name] ?? {}) as Record<string, Json>);
}

function resolve(root: Record<string, Json>, node: Record<string, Json>): Record<string, Json> {
  const ref = node["$ref"];
  if (typeof ref !== "string" || !ref.startsWith("#/")) return node;
  let at: Json = root;
  for (const part of ref.slice(2).split("/")) at = (at as Record<string, Json>)[part];
  return resolve(root, at as Record<string, Json>);
}

const ajv = new Ajv2020({ allErrors: true, strict: false, validateFormats: false });
const compiled = new WeakMap<object, ValidateFunction>();

export function schemaErrors(schema: Record<string, Json>, body: Json): Errors {
  let validate = compiled.get(schema);
  if (!validate) {
    validate = ajv.compile(schema);
    compiled.set(schema, validate);
  }
  if (validate(body)) return {};
  return pickErrors(validate.errors ?? []);
}

function fieldOf(e: ErrorObject): string {
  const path = e.instancePath.split("/").filter(Boolean);
  if (e.keyword === "required") path.push(String(e.params.missingProperty));
  if (e.keyword === "additionalProperties") path.push(String(e.params.additionalProperty));
  return path.join(".") || "(body)";
}

// Optional fields are "anyOf: [the rule, null]": a wrong value fails both branches, and
// the useful error is the rule's, not "must be null" or "must match a schema in anyOf".
const NOISE = new Set(["anyOf", "oneOf", "if", "then"]);
function pickErrors(errors: ErrorObject[]): Errors {
  const out: Errors = {};
  const rank = (e: ErrorObject) =>
    NOISE.has(e.keyword) ? 3 : e.keyword === "type" && e.params.type === "null" ? 2 : e.keyword === "type" ? 1 : 0;
  for (const e of [...errors].sort((a, b) => rank(a) - rank(b))) {
    const field = fieldOf(e);
    if (!(field in out)) out[field] = message(e);
  }
  return out;
}

// pydantic's wording for the same failures (see the server's 422 answers).
export function message(e: ErrorObject): string {
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case "required":
      return "required";
    case "additionalProperties":
      return "unknown field";
    case "pattern":
      return `String should match pattern '${String(p.pattern)}'`;
    case "minimum":
      return `Input should be greater than or equal to ${String(p.limit)}`;
    case "maximum":
      return `Input should be less than or equal to ${String(p.limit)}`;
    case "exclusiveMinimum":
      return `Input should be greater than ${String(p.limit)}`;
    case "exclusiveMaximum":
      return `Input should be less than ${String(p.limit)}`;
    case "minLength":
      return `String should have at least ${String(p.limit)} character${p.limit === 1 ? "" : "s"}`;
    case "maxLength":
      return `String should have at most ${String(p.limit)} characters`;
    case "enum": {
      const values = (p.allowedValues as unknown[]).map((v) => `'${String(v)}'`);
      return `Input should be ${values.length > 1 ? values.slice(0, -1).join(", ") + " or " + values[values.length - 1] : values[0]}`;
    }
    case "const":
      return `Input should be '${String(p.allowedValue)}'`;
    case "type":
      return p.type === "integer" ? "Input should be a valid integer" : p.type === "string" ? "Input should be a valid string" : `Input should be a valid ${String(p.type)}`;
    default:
      return e.message ?? "invalid";
  }
}

// ---------------------------------------------------------------- rules the server checks in code

const PORTS = /^([0-9]{1,5})(?::([0-9]{1,5}))?$/;
const GPUS_PER_NODE = 8;

type Body = Record<string, Json>;
const num = (v: Json | undefined): number | undefined => (typeof v === "number" ? v : undefined);

export function codeRuleErrors(body: Body): Errors {
  const out: Errors = {};
  const ports = body["ports"];
  if (typeof ports === "string") {
    const m = PORTS.exec(ports);
    if (!m) out["ports"] = "Value error, ports must be 'CONTAINER' or 'HOST:CONTAINER', e.g. '8000' or '8080:8000'";
    else if ([m[1], m[2]].filter(Boolean).some((n) => Number(n) < 1 || Number(n) > 65535))
      out["ports"] = "Value error, port numbers must be 1-65535";
  }
  const mp = body["model_path"];
  if (typeof mp === "string" && mp.length > 0) {
    if (/[\0\n\r\t]/.test(mp)) out["model_path"] = "Value error, model_path must not contain control characters";
    else if (!mp.startsWith("/")) out["model_path"] = "Value error, model_path must be an absolute path, e.g. /models/qwen2.5-7b";
    else if (mp.split("/").includes("..")) out["model_path"] = "Value error, model_path must not contain '..' segments";
  }
  const min = num(body["min_replicas"]) ?? 1;
  const max = num(body["max_replicas"]) ?? 0;
  if (max && max < min)
    out["max_replicas"] = `Value error, max_replicas (${max}) is below min_replicas (${min}); use 0 for no upper limit`;
  const hc = body["health_check"] as Body | undefined;
  if (hc && (num(hc["timeout_seconds"]) ?? 3) > (num(hc["interval_seconds"]) ?? 10))
    out["health_check.timeout_seconds"] = "Value error, timeout_seconds must not exceed interval_seconds";
  Object.assign(out, topologyErrors(body));
  return out;
}

// The deployment-mode rules (the server's plan_topology), so the GPU table never shows a
// deployment the server would refuse.
export function topologyErrors(body: Body): Errors {
  const mode = (body["parallelism"] as string | undefined) ?? "none";
  const gpus = num(body["gpu_required"]) ?? 1;
  const ws = num(body["world_size"]);
  if (mode === "none") {
    if (ws !== undefined && ws !== 1)
      return { world_size: "a single-GPU service has world_size 1; use tensor_parallel, split or data_parallel for more" };
    return {};
  }
  if (mode === "tensor_parallel") {
    const size = ws ?? gpus;
    if (gpus === 0) return { gpu_required: "tensor_parallel needs GPUs; gpu_required is 0" };
    if (ws !== undefined && gpus !== 1 && gpus !== ws)
      return {
        gpu_required: `tensor_parallel puts all world_size=${ws} GPUs in one task; gpu_required=${gpus} disagrees (omit it or make it equal)`,
      };
    if (size < 1 || size > GPUS_PER_NODE)
      return { world_size: `tensor_parallel keeps all GPUs on one node, so world_size must be 1-${GPUS_PER_NODE}, got ${size}` };
    return {};
  }
  if (ws === undefined) return { world_size: `${mode} needs world_size (replica count)` };
  return {};
}

export interface Topology {
  nodes: number;
  tasks: number;
  gpusPerTask: number;
  totalGpus: number;
}

export function planTopology(body: Body): Topology | null {
  if (Object.keys(topologyErrors(body)).length) return null;
  const mode = (body["parallelism"] as string | undefined) ?? "none";
  const gpus = num(body["gpu_required"]) ?? 1;
  const ws = num(body["world_size"]);
  if (mode === "none") return { nodes: 1, tasks: 1, gpusPerTask: gpus, totalGpus: gpus };
  if (mode === "tensor_parallel") {
    const size = ws ?? gpus;
    return { nodes: 1, tasks: 1, gpusPerTask: size, totalGpus: size };
  }
  const replicas = ws ?? 1;
  const per = mode === "split" ? Math.min(1, gpus) : gpus;
  return { nodes: Math.ceil(replicas / GPUS_PER_NODE), tasks: replicas, gpusPerTask: per, totalGpus: per * replicas };
}

/** Every error the server would answer for this body, keyed by the field's dotted path. */
export function validateCreate(schema: Record<string, Json>, body: Body): Errors {
  return { ...codeRuleErrors(body), ...schemaErrors(schema, body) };
}

/** Form values to the request body: empty optional inputs are left out, as the API expects. */
export function compact(value: Json | undefined): Json | undefined {
  if (value === "" || value === null || value === undefined) return undefined;
  if (Array.isArray(value)) return value;
  if (typeof value === "object") {
    const out: Record<string, Json> = {};
    for (const [k, v] of Object.entries(value)) {
      const c = compact(v);
      if (c !== undefined) out[k] = c;
    }
    return out;
  }
  return value;
}
