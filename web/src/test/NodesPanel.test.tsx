import { MantineProvider } from "@mantine/core";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { cleanup, render, screen, within } from "@testing-library/react";
import { afterEach, expect, it, vi } from "vitest";
import { NodesPanel } from "../pages/ControlPanel";

const nodes = [
  {
    id: "n1",
    name: "gpu-01",
    status: "online",
    status_reason: "",
    engines: ["vllm", "llamacpp"],
    model_count: 3,
    last_heartbeat: new Date().toISOString(),
    gpus: [
      { vendor: "nvidia", index: 0, uuid: "GPU-a", name: "NVIDIA H200", memory_total_mb: 143771, memory_used_mb: 70000, utilization_percent: 45, temperature_c: 61 },
      { vendor: "nvidia", index: 1, uuid: "GPU-b", name: "NVIDIA H200", memory_total_mb: 143771, memory_used_mb: 0, utilization_percent: 0, temperature_c: 30 },
    ],
  },
];
const groups = {
  items: [{ id: "tg-1", name: "qwen", status: "running", tasks: [{ id: "t1", node_id: "n1", gpu_id: "0", status: "running" }] }],
  total: 1,
  limit: 500,
  offset: 0,
};

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

it("shows each GPU with memory, utilisation, temperature and the services holding it", async () => {
  vi.stubGlobal(
    "fetch",
    vi.fn(async (url: string) => {
      const body = url.startsWith("/api/v1/nodes") ? nodes : groups;
      return new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });
    }),
  );
  render(
    <MantineProvider>
      <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
        <NodesPanel />
      </QueryClientProvider>
    </MantineProvider>,
  );
  const table = await screen.findByRole("table", { name: "GPUs of gpu-01" });
  const rows = within(table).getAllByRole("row");
  expect(rows).toHaveLength(3); // header + two GPUs
  expect(rows[1].textContent).toContain("NVIDIA H200");
  expect(rows[1].textContent).toContain("70000 / 143771 MB");
  expect(rows[1].textContent).toContain("45%");
  expect(rows[1].textContent).toContain("61 °C");
  expect(await within(rows[1]).findByText("qwen")).toBeTruthy();
  expect(rows[2].textContent).toContain("—");
  expect(screen.getByText(/engines: vllm, llamacpp/)).toBeTruthy();
});
