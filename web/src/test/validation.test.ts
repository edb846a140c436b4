import { describe, expect, it } from "vitest";
import doc from "./openapi.json";
import { planTopology, requestSchema, validateCreate } from "../validation";
import { EMPTY, toBody } from "../pages/CreateService";

// The document the server publishes (generated from the bridge before each run).
const schema = requestSchema(doc as never, "/api/v1/task-groups");
const good = {
  ...toBody(EMPTY),
  name: "my-qwen-service",
  image: "vllm/vllm-openai:latest",
  model_path: "/models/Qwen2.5-7B-Instruct",
};

describe("create form rules (the server's)", () => {
  it("accepts the seed's example", () => {
    expect(validateCreate(schema, good)).toEqual({});
  });

  it("names the three required fields", () => {
    const errors = validateCreate(schema, toBody(EMPTY));
    expect(errors).toMatchObject({ name: "required", image: "required", model_path: "required" });
  });

  it("words a bad name as pydantic does", () => {
    expect(validateCreate(schema, { ...good, name: "Bad Name" })).toEqual({
      name: "String should match pattern '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'",
    });
  });

  it("checks ranges, nested fields and enums", () => {
    const errors = validateCreate(schema, {
      ...good,
      gpu_required: 65,
      route: { version: "v1", weight: 101, priority: 0 },
      qos: "platinum",
    });
    expect(errors["gpu_required"]).toBe("Input should be less than or equal to 64");
    expect(errors["route.weight"]).toBe("Input should be less than or equal to 100");
    expect(errors["qos"]).toMatch(/^Input should be 'gold', 'silver' or 'bronze'$/);
  });

  it("reports the rule of an optional field, not its null branch", () => {
    expect(validateCreate(schema, { ...good, estimated_gpu_memory_mb: -1 })).toEqual({
      estimated_gpu_memory_mb: "Input should be greater than or equal to 0",
    });
  });

  it("refuses unknown fields", () => {
    expect(validateCreate(schema, { ...good, gpus: 2 })).toEqual({ gpus: "unknown field" });
  });

  it("applies the rules the server checks in code", () => {
    expect(validateCreate(schema, { ...good, ports: "80:abc" })["ports"]).toMatch(/ports must be 'CONTAINER' or 'HOST:CONTAINER'/);
    expect(validateCreate(schema, { ...good, ports: "70000" })["ports"]).toMatch(/1-65535/);
    expect(validateCreate(schema, { ...good, model_path: "models/x" })["model_path"]).toMatch(/absolute path/);
    expect(validateCreate(schema, { ...good, model_path: "/models/../etc" })["model_path"]).toMatch(/'\.\.' segments/);
    expect(validateCreate(schema, { ...good, min_replicas: 3, max_replicas: 2 })["max_replicas"]).toMatch(/below min_replicas/);
  });

  it("knows the deployment modes' GPU tables", () => {
    expect(planTopology({ ...good, parallelism: "tensor_parallel", world_size: 4 })).toEqual({ nodes: 1, tasks: 1, gpusPerTask: 4, totalGpus: 4 });
    expect(planTopology({ ...good, parallelism: "data_parallel", world_size: 10, gpu_required: 2 })).toEqual({ nodes: 2, tasks: 10, gpusPerTask: 2, totalGpus: 20 });
    expect(planTopology({ ...good, parallelism: "split", world_size: 3, gpu_required: 4 })).toEqual({ nodes: 1, tasks: 3, gpusPerTask: 1, totalGpus: 3 });
    expect(validateCreate(schema, { ...good, parallelism: "tensor_parallel", world_size: 16 })["world_size"]).toMatch(/must be 1-8/);
    expect(validateCreate(schema, { ...good, parallelism: "data_parallel" })["world_size"]).toMatch(/needs world_size/);
  });
});
