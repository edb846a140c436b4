import { MantineProvider } from "@mantine/core";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { cleanup, render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, describe, expect, it, vi } from "vitest";
import doc from "./openapi.json";
import { CreateServiceForm } from "../pages/CreateService";

function renderForm() {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <MantineProvider>
      <QueryClientProvider client={client}>
        <CreateServiceForm onDone={() => {}} schemaDoc={doc as never} />
      </QueryClientProvider>
    </MantineProvider>,
  );
}

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe("create form", () => {
  it("shows the server's message next to a bad field when it loses focus", async () => {
    renderForm();
    const user = userEvent.setup({ delay: null });
    const name = screen.getByLabelText(/^Name/);
    await user.type(name, "Bad Name");
    await user.tab();
    expect(await screen.findByText("String should match pattern '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'")).toBeTruthy();
    expect(name.getAttribute("aria-invalid")).toBe("true");
  });

  it("never sends what the server would refuse", async () => {
    const fetch = vi.fn();
    vi.stubGlobal("fetch", fetch);
    renderForm();
    const user = userEvent.setup({ delay: null });
    await user.type(screen.getByLabelText(/^Model path/), "relative/path");
    await user.click(screen.getByRole("button", { name: "Create" }));
    await waitFor(() => expect(screen.getAllByText("required").length).toBe(2)); // name, image
    expect(screen.getByText(/model_path must be an absolute path/)).toBeTruthy();
    expect(fetch).not.toHaveBeenCalled();
  });

  it("sends a valid body and shows the key once", async () => {
    const created = {
      id: "tg-1",
      name: "svc",
      status: "pending",
      model_name: "svc",
      tasks: [],
      api_key: { id: "k1", key: "sk-secret-123", prefix: "sk-secret" },
    };
    const fetch = vi.fn(async () => new Response(JSON.stringify(created), { status: 201, headers: { "content-type": "application/json" } }));
    vi.stubGlobal("fetch", fetch);
    renderForm();
    const user = userEvent.setup({ delay: null });
    await user.type(screen.getByLabelText(/^Name/), "svc");
    await user.type(screen.getByLabelText(/^Image/), "vllm/vllm-openai:latest");
    await user.type(screen.getByLabelText(/^Model path/), "/models/m");
    await user.click(screen.getByRole("button", { name: "Create" }));
    expect(await screen.findByText("sk-secret-123")).toBeTruthy();
    const [url, init] = fetch.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe("/api/v1/task-groups");
    const body = JSON.parse(String(init.body));
    expect(body).toMatchObject({ name: "svc", image: "vllm/vllm-openai:latest", model_path: "/models/m", gpu_required: 1 });
    expect(body).not.toHaveProperty("gpu_type"); // "auto" is the server's choice
    expect(body).not.toHaveProperty("estimated_gpu_memory_mb");
  });
});
