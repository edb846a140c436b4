// The REST API as the UI uses it: one fetch wrapper that adds the bearer token and turns the
// server's error envelope {"error": {code, message, details}} into an ApiError.

const TOKEN_KEY = "heteroflow.token";

// sessionStorage only: the token dies with the tab and never sits in localStorage or a URL.
export function getToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}
export function setToken(token: string | null): void {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export interface FieldError {
  field: string;
  message: string;
  type?: string;
}

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
    public details: Record<string, unknown> = {},
  ) {
    super(message);
  }
  get fields(): FieldError[] {
    const f = this.details["fields"];
    return Array.isArray(f) ? (f as FieldError[]) : [];
  }
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const token = getToken();
  if (token) headers["Authorization"] = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp: Response;
  try {
    resp = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (exc) {
    throw new ApiError(0, "unreachable", `the server does not answer (${String(exc)})`);
  }
  if (resp.status === 204) return undefined as T;
  const type = resp.headers.get("content-type") ?? "";
  const data: unknown = type.includes("json") ? await resp.json() : await resp.text();
  if (!resp.ok) {
    const err = (data as { error?: { code?: string; message?: string; details?: Record<string, unknown> } })
      ?.error;
    throw new ApiError(resp.status, err?.code ?? "error", err?.message ?? resp.statusText, err?.details ?? {});
  }
  return data as T;
}

export const get = <T>(path: string) => api<T>("GET", path);

// ---------------------------------------------------------------- shapes of /api/v1

export type Role = "admin" | "operator" | "viewer" | "agent" | "gateway";

export interface WhoAmI {
  user_id: string;
  name: string;
  role: Role;
  token_id: string;
}

export interface Task {
  id: string;
  group_id: string;
  rank: number;
  status: string;
  status_reason: string;
  gpu_required: number;
  gpu_type: string | null;
  gpu_id: string | null;
  node_id: string | null;
  node_name: string | null;
  address: string | null;
  alloc_id: string | null;
  sleep_mode: string | null;
  gpu_released: boolean;
  updated_at: string | null;
}

export interface TaskGroup {
  id: string;
  name: string;
  status: string;
  status_reason: string;
  parallelism: string;
  world_size: number;
  node_count: number;
  current_replicas: number;
  min_replicas: number;
  max_replicas: number;
  endpoint: string | null;
  image: string;
  engine: string | null;
  model_path: string;
  model_name: string;
  gpu_required: number;
  gpu_type: string | null;
  qos: string;
  idle_timeout_minutes: number;
  created_at: string | null;
  updated_at: string | null;
  nomad_job_id: string | null;
  tasks: Task[];
}

export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

export interface ApiKey {
  id: string;
  endpoint_id: string;
  name: string;
  prefix: string;
  active: boolean;
  created_at: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
}
export interface NewApiKey extends ApiKey {
  key: string;
}

export interface Route {
  id: string;
  model_name: string;
  task_group_id: string | null;
  upstream_url: string | null;
  engine: string | null;
  priority: number;
  weight: number;
  version: string;
  status: string;
}

export interface CreatedTaskGroup extends TaskGroup {
  route: Route | null;
  api_key: NewApiKey | null;
}

export interface NodeModel {
  node_id: string;
  node_name: string;
  name: string;
  format: string;
  path: string;
  size_bytes: number;
  parameter_count: number | null;
  quantization: string | null;
  estimated_vram_mb: number | null;
  vram_explanation: string;
}

export interface Gpu {
  vendor: string;
  index: number;
  uuid: string;
  name: string;
  memory_total_mb: number;
  memory_used_mb: number;
  utilization_percent?: number | null;
  temperature_c?: number | null;
  healthy?: boolean;
}

export interface NodeInfo {
  id: string;
  name: string;
  status: string;
  status_reason: string;
  gpus: Gpu[];
  engines: string[];
  model_count: number;
  last_heartbeat: string;
}

export interface User {
  id: string;
  name: string;
  role: Role;
  disabled: boolean;
  created_at: string | null;
}
export interface CreatedUser extends User {
  token: { id: string; name: string; token: string };
}

export interface AuditEntry {
  id: number;
  at: string;
  actor_name: string;
  action: string;
  object_type: string;
  object_id: string;
  details: Record<string, unknown>;
}

export interface Usage {
  bucket_start: string;
  api_key_id: string | null;
  route_id: string | null;
  model_name: string | null;
  requests: number;
  errors: number;
  prompt_tokens: number;
  completion_tokens: number;
}

export interface EngineInfo {
  engine: string;
  default_image: string;
  vendors: string[];
  cpu_capable: boolean;
  health_path: string;
  sleep_api: string | null;
}
export interface Engines {
  engines: EngineInfo[];
  chains: Record<string, string[]>;
}

export function canWrite(role: Role | undefined): boolean {
  return role === "admin" || role === "operator";
}
