import {
  Accordion,
  Alert,
  Button,
  Code,
  CopyButton,
  Group,
  Modal,
  NumberInput,
  SegmentedControl,
  Select,
  SimpleGrid,
  Stack,
  Switch,
  Table,
  Text,
  TextInput,
} from "@mantine/core";
import { useForm } from "@mantine/form";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useMemo, useState } from "react";
import { ApiError, api, get, type CreatedTaskGroup, type Engines, type NodeModel } from "../api";
import { bytes, ErrorAlert } from "../components/common";
import { compact, planTopology, requestSchema, validateCreate, type Errors, type Json } from "../validation";

export interface CreateValues {
  name: string;
  image: string;
  engine: string;
  model_path: string;
  model_name: string;
  parallelism: string;
  world_size: number | string;
  gpu_required: number | string;
  gpu_type: string;
  ports: string;
  idle_timeout_minutes: number | string;
  qos: string;
  estimated_gpu_memory_mb: number | string;
  enable_api: boolean;
  min_replicas: number | string;
  max_replicas: number | string;
  route: { version: string; weight: number | string; priority: number | string };
  health_check: { path: string };
}

export const EMPTY: CreateValues = {
  name: "",
  image: "",
  engine: "",
  model_path: "",
  model_name: "",
  parallelism: "none",
  world_size: "",
  gpu_required: 1,
  gpu_type: "auto",
  ports: "8000",
  idle_timeout_minutes: 0,
  qos: "gold",
  estimated_gpu_memory_mb: "",
  enable_api: true,
  min_replicas: 1,
  max_replicas: 0,
  route: { version: "v1", weight: 100, priority: 0 },
  health_check: { path: "/health" },
};

const MODES = [
  { value: "none", label: "Single" },
  { value: "tensor_parallel", label: "Tensor parallel" },
  { value: "split", label: "Split" },
  { value: "data_parallel", label: "Data parallel" },
];
const VENDORS = ["auto", "nvidia", "amd", "hygon", "ascend", "musa", "biren", "cambricon", "iluvatar", "metax", "enflame", "kunlunxin"];

/** The request body the form's values stand for ("auto" and empty inputs are left out). */
export function toBody(v: CreateValues): Record<string, Json> {
  const raw = { ...v, engine: v.engine || null, gpu_type: v.gpu_type === "auto" ? null : v.gpu_type } as unknown as Json;
  return (compact(raw) ?? {}) as Record<string, Json>;
}

export function useApiDocument(enabled = true) {
  return useQuery({ queryKey: ["openapi"], queryFn: () => get<Parameters<typeof requestSchema>[0]>("/openapi.json"), staleTime: Infinity, enabled });
}

// llama.cpp's own llama-server answers /health, but the llama-cpp-python server that runs it
// on a machine without Nomad does not; both answer /v1/models.
const HEALTH_OVERRIDES: Record<string, string> = { llamacpp: "/v1/models" };

export function CreateServiceModal({ opened, onClose }: { opened: boolean; onClose: () => void }) {
  return (
    <Modal opened={opened} onClose={onClose} title="Create service" size="xl" centered={false}>
      {opened && <CreateServiceForm onDone={onClose} />}
    </Modal>
  );
}

export function CreateServiceForm({ onDone, schemaDoc }: { onDone: () => void; schemaDoc?: Parameters<typeof requestSchema>[0] }) {
  const doc = useApiDocument(!schemaDoc);
  const source = schemaDoc ?? doc.data;
  const schema = useMemo(() => (source ? requestSchema(source, "/api/v1/task-groups") : null), [source]);
  const engines = useQuery({ queryKey: ["engines"], queryFn: () => get<Engines>("/engines"), staleTime: Infinity, enabled: !schemaDoc });
  const models = useQuery({ queryKey: ["models"], queryFn: () => get<NodeModel[]>("/models"), enabled: !schemaDoc });
  const client = useQueryClient();
  const [created, setCreated] = useState<CreatedTaskGroup | null>(null);
  const [formError, setFormError] = useState<string | null>(null);

  const form = useForm<CreateValues>({
    mode: "controlled",
    initialValues: EMPTY,
    validateInputOnBlur: true,
    validate: (values): Errors => (schema ? validateCreate(schema, toBody(values)) : {}),
  });
  const create = useMutation({
    mutationFn: (body: Record<string, Json>) => api<CreatedTaskGroup>("POST", "/task-groups", body),
    onSuccess: (group) => {
      setCreated(group);
      void client.invalidateQueries({ queryKey: ["groups"] });
    },
    onError: (err) => {
      // The server's answer is the last word: its field errors go next to the fields.
      if (err instanceof ApiError && err.fields.length) {
        const errors: Errors = {};
        for (const f of err.fields) {
          if (f.field === "(body)") setFormError(f.message);
          else errors[f.field] = f.message;
        }
        form.setErrors(errors);
      }
    },
  });

  // What Nomad would run, from the server's own renderer; nothing is created.
  const preview = useMutation({ mutationFn: (body: Record<string, Json>) => api<string>("POST", "/task-groups/jobspec-preview", body) });

  if (created) return <Created group={created} onDone={onDone} />;
  if (!schema) return doc.error ? <ErrorAlert error={doc.error} /> : <Text>Loading the API's rules…</Text>;

  const values = form.getValues();
  const body = toBody(values);
  const topology = planTopology(body);
  const vendor = values.gpu_type;
  const chain = vendor !== "auto" ? engines.data?.chains[vendor] ?? [] : [];
  const cpuOnly = Number(values.gpu_required) === 0;
  const engineOptions = (engines.data?.engines ?? [])
    .filter((e) => (cpuOnly ? e.cpu_capable : vendor === "auto" || e.vendors.includes(vendor)))
    .sort((a, b) => (chain.indexOf(a.engine) + 1 || 99) - (chain.indexOf(b.engine) + 1 || 99))
    .map((e) => ({ value: e.engine, label: chain[0] === e.engine ? `${e.engine} (default for ${vendor})` : e.engine }));

  const pickEngine = (engine: string | null) => {
    form.setFieldValue("engine", engine ?? "");
    const preset = engines.data?.engines.find((e) => e.engine === engine);
    if (!preset) return;
    const presetImages = engines.data?.engines.map((e) => e.default_image) ?? [];
    if (!values.image || presetImages.includes(values.image)) form.setFieldValue("image", preset.default_image);
    form.setFieldValue("health_check.path", HEALTH_OVERRIDES[preset.engine] ?? preset.health_path);
  };
  const pickModel = (path: string | null) => {
    const m = models.data?.find((x) => x.path === path);
    form.setFieldValue("model_path", path ?? "");
    if (!m) return;
    if (m.estimated_vram_mb && Number(values.gpu_required) > 0) form.setFieldValue("estimated_gpu_memory_mb", m.estimated_vram_mb);
    if (m.format === "gguf" && !values.engine) pickEngine("llamacpp");
  };
  const modelOptions = [...new Map((models.data ?? []).map((m) => [m.path, m])).values()].map((m) => ({
    value: m.path,
    label: `${m.name} — ${bytes(m.size_bytes)}${m.estimated_vram_mb ? `, ~${m.estimated_vram_mb} MB VRAM` : ""} (${m.node_name})`,
  }));

  const submit = form.onSubmit((v) => {
    setFormError(null);
    create.mutate(toBody(v));
  });

  return (
    <form onSubmit={submit} noValidate aria-label="Create service">
      <Stack>
        <SimpleGrid cols={{ base: 1, sm: 2 }}>
          <TextInput label="Name" description="a DNS label: a-z, 0-9 and '-', up to 63" required {...form.getInputProps("name")} key={form.key("name")} />
          <TextInput label="Model name" description="what clients send as model (default: the name)" {...form.getInputProps("model_name")} key={form.key("model_name")} />
        </SimpleGrid>
        <Select
          label="Model"
          description="models the node agents found"
          placeholder={modelOptions.length ? "pick a discovered model" : "no models discovered; type the path below"}
          data={modelOptions}
          searchable
          clearable
          value={modelOptions.some((o) => o.value === values.model_path) ? values.model_path : null}
          onChange={pickModel}
        />
        <TextInput label="Model path" description="absolute path under the model roots" required {...form.getInputProps("model_path")} key={form.key("model_path")} />
        <SimpleGrid cols={{ base: 1, sm: 3 }}>
          <Select label="GPU type" data={VENDORS} allowDeselect={false} {...form.getInputProps("gpu_type")} key={form.key("gpu_type")} />
          <NumberInput label="GPUs per task" min={0} max={64} {...form.getInputProps("gpu_required")} key={form.key("gpu_required")} />
          <Select
            label="Engine"
            description={chain.length ? `chain: ${chain.join(" → ")}` : "auto: the vendor's chain"}
            placeholder="auto"
            data={engineOptions}
            clearable
            value={values.engine || null}
            onChange={pickEngine}
            error={form.errors["engine"]}
          />
        </SimpleGrid>
        <TextInput label="Image" required description="Docker image, e.g. vllm/vllm-openai:latest" {...form.getInputProps("image")} key={form.key("image")} />
        <Stack gap={4}>
          <Text size="sm" fw={500} id="mode-label">
            Deployment mode
          </Text>
          <SegmentedControl aria-labelledby="mode-label" data={MODES} {...form.getInputProps("parallelism")} key={form.key("parallelism")} />
        </Stack>
        <SimpleGrid cols={{ base: 1, sm: 2 }}>
          <NumberInput
            label="World size"
            description="GPUs (tensor parallel) or replicas (split, data parallel)"
            min={1}
            max={512}
            disabled={values.parallelism === "none"}
            {...form.getInputProps("world_size")}
            key={form.key("world_size")}
          />
          <TopologyTable topology={topology} />
        </SimpleGrid>
        <SimpleGrid cols={{ base: 1, sm: 3 }}>
          <TextInput label="Ports" description="CONTAINER or HOST:CONTAINER" {...form.getInputProps("ports")} key={form.key("ports")} />
          <TextInput label="Health check path" {...form.getInputProps("health_check.path")} key={form.key("health_check.path")} />
          <NumberInput label="Sleep after idle (minutes)" description="0: never" min={0} {...form.getInputProps("idle_timeout_minutes")} key={form.key("idle_timeout_minutes")} />
        </SimpleGrid>
        <Accordion variant="contained">
          <Accordion.Item value="more">
            <Accordion.Control>Route, replicas, QoS, memory</Accordion.Control>
            <Accordion.Panel>
              <SimpleGrid cols={{ base: 1, sm: 3 }}>
                <TextInput label="Route version" {...form.getInputProps("route.version")} key={form.key("route.version")} />
                <NumberInput label="Route weight" min={0} max={100} {...form.getInputProps("route.weight")} key={form.key("route.weight")} />
                <NumberInput label="Route priority" description="0 is tried first" min={0} max={1000} {...form.getInputProps("route.priority")} key={form.key("route.priority")} />
                <NumberInput label="Min replicas" min={1} {...form.getInputProps("min_replicas")} key={form.key("min_replicas")} />
                <NumberInput label="Max replicas" description="0: no limit" min={0} {...form.getInputProps("max_replicas")} key={form.key("max_replicas")} />
                <Select label="QoS" data={["gold", "silver", "bronze"]} allowDeselect={false} {...form.getInputProps("qos")} key={form.key("qos")} />
                <NumberInput label="Estimated GPU memory (MB)" min={0} {...form.getInputProps("estimated_gpu_memory_mb")} key={form.key("estimated_gpu_memory_mb")} />
                <Switch label="OpenAI API (route, endpoint, key)" {...form.getInputProps("enable_api", { type: "checkbox" })} key={form.key("enable_api")} />
              </SimpleGrid>
            </Accordion.Panel>
          </Accordion.Item>
        </Accordion>
        {formError && (
          <Alert color="red" role="alert">
            {formError}
          </Alert>
        )}
        {create.error && !(create.error instanceof ApiError && create.error.fields.length) && <ErrorAlert error={create.error} />}
        {(preview.data !== undefined || preview.error) && (
          <div data-testid="jobspec-preview">
            {preview.error ? (
              <Alert color="yellow" title="The server cannot render a Nomad job for this">
                {preview.error.message}
              </Alert>
            ) : (
              <Code block aria-label="Jobspec preview" style={{ maxHeight: 360, overflow: "auto" }}>
                {preview.data}
              </Code>
            )}
          </div>
        )}
        <Group justify="flex-end">
          <Button variant="default" onClick={onDone}>
            Cancel
          </Button>
          <Button
            variant="light"
            loading={preview.isPending}
            onClick={() => {
              if (!form.validate().hasErrors) preview.mutate(toBody(form.getValues()));
            }}
          >
            Preview jobspec
          </Button>
          <Button type="submit" loading={create.isPending}>
            Create
          </Button>
        </Group>
      </Stack>
    </form>
  );
}

function TopologyTable({ topology }: { topology: ReturnType<typeof planTopology> }) {
  if (!topology) return <Text size="sm" c="dimmed">Fix the GPU numbers to see the deployment.</Text>;
  return (
    <Table withTableBorder aria-label="Deployment" fz="sm">
      <Table.Tbody>
        <Table.Tr>
          <Table.Th>Nodes</Table.Th>
          <Table.Td>{topology.nodes}</Table.Td>
          <Table.Th>Tasks</Table.Th>
          <Table.Td>{topology.tasks}</Table.Td>
        </Table.Tr>
        <Table.Tr>
          <Table.Th>GPUs per task</Table.Th>
          <Table.Td>{topology.gpusPerTask}</Table.Td>
          <Table.Th>GPUs in all</Table.Th>
          <Table.Td>{topology.totalGpus}</Table.Td>
        </Table.Tr>
      </Table.Tbody>
    </Table>
  );
}

export function sdkSnippet(model: string, key: string): string {
  const base = `${window.location.origin}/v1`;
  return [
    "from openai import OpenAI",
    `client = OpenAI(base_url="${base}", api_key="${key}")`,
    `reply = client.chat.completions.create(model="${model}",`,
    '    messages=[{"role": "user", "content": "Say hello."}])',
    "print(reply.choices[0].message.content)",
  ].join("\n");
}

export function ShownOnce({ secret, model }: { secret: string; model?: string }) {
  return (
    <Stack gap="xs">
      <Alert color="yellow" title="Shown once">
        Copy it now: only its hash is stored, it cannot be shown again.
      </Alert>
      <Group gap="xs" wrap="nowrap">
        <Code data-testid="secret" style={{ wordBreak: "break-all" }}>
          {secret}
        </Code>
        <CopyButton value={secret}>
          {({ copied, copy }) => (
            <Button size="compact-sm" variant="light" onClick={copy}>
              {copied ? "Copied" : "Copy"}
            </Button>
          )}
        </CopyButton>
      </Group>
      {model && (
        <>
          <Text size="sm">With the OpenAI SDK:</Text>
          <Code block>{sdkSnippet(model, secret)}</Code>
        </>
      )}
    </Stack>
  );
}

function Created({ group, onDone }: { group: CreatedTaskGroup; onDone: () => void }) {
  return (
    <Stack>
      <Text>
        Service <b>{group.name}</b> created ({group.status}). Its API key:
      </Text>
      {group.api_key ? <ShownOnce secret={group.api_key.key} model={group.model_name} /> : <Text>No API key (the OpenAI API is off).</Text>}
      <Group justify="flex-end">
        <Button onClick={onDone}>Done</Button>
      </Group>
    </Stack>
  );
}
