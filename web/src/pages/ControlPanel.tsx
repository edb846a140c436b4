import { Badge, Button, Group, NumberInput, Progress, Select, Slider, Stack, Table, Tabs, Text, TextInput, Title } from "@mantine/core";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { api, get, type ApiKey, type CreatedUser, type NewApiKey, type NodeInfo, type Role, type Route, type User } from "../api";
import { useAuth } from "../auth";
import { ago, ConfirmButton, ErrorAlert, StatusBadge } from "../components/common";
import { ShownOnce } from "./CreateService";
import { POLL_MS, useGroups, useRoutes } from "./Services";

export function ControlPanelPage() {
  const { isAdmin } = useAuth();
  return (
    <Stack>
      <Title order={2}>Control panel</Title>
      <Tabs defaultValue="keys" keepMounted={false}>
        <Tabs.List>
          <Tabs.Tab value="keys">API keys</Tabs.Tab>
          <Tabs.Tab value="routes">Model routes</Tabs.Tab>
          <Tabs.Tab value="nodes">Nodes</Tabs.Tab>
          {isAdmin && <Tabs.Tab value="users">Users</Tabs.Tab>}
        </Tabs.List>
        <Tabs.Panel value="keys" pt="md">
          <KeysPanel />
        </Tabs.Panel>
        <Tabs.Panel value="routes" pt="md">
          <RoutesPanel />
        </Tabs.Panel>
        <Tabs.Panel value="nodes" pt="md">
          <NodesPanel />
        </Tabs.Panel>
        {isAdmin && (
          <Tabs.Panel value="users" pt="md">
            <UsersPanel />
          </Tabs.Panel>
        )}
      </Tabs>
    </Stack>
  );
}

function KeysPanel() {
  const { canWrite } = useAuth();
  const groups = useGroups(null, "");
  const withEndpoint = (groups.data?.items ?? []).filter((g) => g.endpoint);
  const [endpoint, setEndpoint] = useState<string | null>(null);
  useEffect(() => {
    if (!endpoint && withEndpoint.length) setEndpoint(withEndpoint[0].endpoint);
  }, [endpoint, withEndpoint]);
  const client = useQueryClient();
  const keys = useQuery({ queryKey: ["keys", endpoint], queryFn: () => get<ApiKey[]>(`/endpoints/${endpoint}/api-keys`), enabled: !!endpoint });
  const [name, setName] = useState("");
  const [shown, setShown] = useState<NewApiKey | null>(null);
  const refresh = () => client.invalidateQueries({ queryKey: ["keys", endpoint] });
  const create = useMutation({
    mutationFn: () => api<NewApiKey>("POST", `/endpoints/${endpoint}/api-keys`, { name: name.trim() || "default" }),
    onSuccess: (k) => (setShown(k), setName(""), refresh()),
  });
  const revoke = useMutation({ mutationFn: (id: string) => api("DELETE", `/endpoints/${endpoint}/api-keys/${id}`), onSettled: refresh });
  const model = withEndpoint.find((g) => g.endpoint === endpoint)?.model_name;
  return (
    <Stack>
      <Select
        label="Endpoint"
        data={withEndpoint.map((g) => ({ value: g.endpoint!, label: `${g.name} (${g.endpoint})` }))}
        value={endpoint}
        onChange={(v) => (setEndpoint(v), setShown(null))}
        w={380}
      />
      {canWrite && endpoint && (
        <Group align="flex-end">
          <TextInput label="New key name" value={name} onChange={(e) => setName(e.currentTarget.value)} maxLength={64} />
          <Button onClick={() => create.mutate()} loading={create.isPending}>
            Create key
          </Button>
        </Group>
      )}
      <ErrorAlert error={create.error ?? revoke.error} />
      {shown && <ShownOnce secret={shown.key} model={model} />}
      <Table aria-label="API keys">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Name</Table.Th>
            <Table.Th>Prefix</Table.Th>
            <Table.Th>State</Table.Th>
            <Table.Th>Last used</Table.Th>
            <Table.Th />
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {(keys.data ?? []).map((k) => (
            <Table.Tr key={k.id} data-key-name={k.name}>
              <Table.Td>{k.name}</Table.Td>
              <Table.Td>
                <code>{k.prefix}…</code>
              </Table.Td>
              <Table.Td>
                <StatusBadge status={k.active ? "active" : "revoked"} />
              </Table.Td>
              <Table.Td>{ago(k.last_used_at) || "never"}</Table.Td>
              <Table.Td>
                {canWrite && k.active && (
                  <ConfirmButton
                    size="compact-sm"
                    variant="light"
                    color="red"
                    label="Revoke"
                    aria-label={`Revoke key ${k.name}`}
                    question={`Revoke the key ${k.name} (${k.prefix}…)? Clients using it get 401 from now on.`}
                    onConfirm={() => revoke.mutateAsync(k.id).catch(() => undefined)}
                  />
                )}
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Stack>
  );
}

function RoutesPanel() {
  const { canWrite } = useAuth();
  const routes = useRoutes();
  const groups = useGroups(null, "");
  const names = new Map((groups.data?.items ?? []).map((g) => [g.id, g.name]));
  const byModel = new Map<string, Route[]>();
  for (const r of routes.data ?? []) byModel.set(r.model_name, [...(byModel.get(r.model_name) ?? []), r]);
  return (
    <Stack>
      <ErrorAlert error={routes.error} />
      {canWrite && <AddRoute models={[...byModel.keys()]} groups={(groups.data?.items ?? []).map((g) => ({ value: g.id, label: g.name }))} />}
      <Text size="sm" c="dimmed">
        Requests for a model go to its lowest priority tier that has a healthy backend, split by weight within the tier (weight 0: fallback only).
      </Text>
      {[...byModel.entries()].map(([model, rs]) => (
        <Stack key={model} gap="xs">
          <Title order={3} size="h4">
            {model}
          </Title>
          <Table aria-label={`Routes of ${model}`}>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Version</Table.Th>
                <Table.Th>Target</Table.Th>
                <Table.Th>Status</Table.Th>
                <Table.Th>Priority</Table.Th>
                <Table.Th w={280}>Weight</Table.Th>
                {canWrite && <Table.Th />}
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {rs.map((r) => (
                <RouteRow key={r.id} route={r} target={r.task_group_id ? names.get(r.task_group_id) ?? r.task_group_id : r.upstream_url ?? ""} />
              ))}
            </Table.Tbody>
          </Table>
        </Stack>
      ))}
    </Stack>
  );
}

/** A canary: one more version of a model, served by another service, at a small weight. */
function AddRoute({ models, groups }: { models: string[]; groups: { value: string; label: string }[] }) {
  const client = useQueryClient();
  const [model, setModel] = useState<string | null>(null);
  const [target, setTarget] = useState<string | null>(null);
  const [version, setVersion] = useState("canary");
  const [weight, setWeight] = useState<number | string>(10);
  const add = useMutation({
    mutationFn: () => api<Route>("POST", "/model-routes", { model_name: model, task_group_id: target, version, weight: Number(weight) }),
    onSuccess: () => client.invalidateQueries({ queryKey: ["routes"] }),
  });
  return (
    <Stack gap="xs">
      <Group align="flex-end">
        <Select label="Model" data={models} value={model} onChange={setModel} searchable w={200} />
        <Select label="Served by" data={groups} value={target} onChange={setTarget} searchable w={200} />
        <TextInput label="Version" value={version} onChange={(e) => setVersion(e.currentTarget.value)} w={120} />
        <NumberInput label="Weight" min={0} max={100} value={weight} onChange={setWeight} w={100} />
        <Button variant="light" disabled={!model || !target} loading={add.isPending} onClick={() => add.mutate()}>
          Add route
        </Button>
      </Group>
      <ErrorAlert error={add.error} onClose={add.reset} />
    </Stack>
  );
}

function RouteRow({ route, target }: { route: Route; target: string }) {
  const { canWrite } = useAuth();
  const client = useQueryClient();
  const [weight, setWeight] = useState(route.weight);
  const [priority, setPriority] = useState<number | string>(route.priority);

  const update = useMutation({
    // One route's changes go out one after another: a slider moved by keyboard sends a
    // change per step, and concurrent PUTs could land out of order and leave an old weight.
    scope: { id: `route-${route.id}` },
    mutationFn: (change: Partial<Pick<Route, "weight" | "priority">>) => api<Route>("PUT", `/model-routes/${route.id}`, change),
    onSettled: () => client.invalidateQueries({ queryKey: ["routes"] }),
  });
  const remove = useMutation({
    mutationFn: () => api("DELETE", `/model-routes/${route.id}`),
    onSettled: () => client.invalidateQueries({ queryKey: ["routes"] }),
  });
  // The server's values win, except while this page's own changes are still going out.
  const busy = update.isPending;
  useEffect(() => {
    if (!busy) setWeight(route.weight);
  }, [route.weight, busy]);
  useEffect(() => {
    if (!busy) setPriority(route.priority);
  }, [route.priority, busy]);
  return (
    <Table.Tr data-route={route.id}>
      <Table.Td>{route.version}</Table.Td>
      <Table.Td>{target}</Table.Td>
      <Table.Td>
        <StatusBadge status={route.status} />
      </Table.Td>
      <Table.Td>
        {canWrite ? (
          <NumberInput
            aria-label={`Priority of ${route.version}`}
            size="xs"
            w={90}
            min={0}
            max={1000}
            value={priority}
            onChange={setPriority}
            onBlur={() => Number(priority) !== route.priority && update.mutate({ priority: Number(priority) })}
          />
        ) : (
          route.priority
        )}
      </Table.Td>
      <Table.Td>
        <Group wrap="nowrap" gap="sm">
          {canWrite && (
            <Slider
              thumbLabel={`Weight of ${route.version}`}
              min={0}
              max={100}
              value={weight}
              onChange={setWeight}
              onChangeEnd={(w) => update.mutate({ weight: w })}
              w={180}
            />
          )}
          <Text size="sm" data-testid="weight-value">
            {weight}
          </Text>
        </Group>
        {update.error && <ErrorAlert error={update.error} />}
      </Table.Td>
      {canWrite && (
        <Table.Td>
          <ConfirmButton
            size="compact-sm"
            variant="light"
            color="red"
            label="Remove"
            aria-label={`Remove route ${route.version}`}
            question={`Remove the route ${route.version} of ${route.model_name}? Its traffic goes to the other routes.`}
            onConfirm={() => remove.mutateAsync().catch(() => undefined)}
          />
          {remove.error && <ErrorAlert error={remove.error} />}
        </Table.Td>
      )}
    </Table.Tr>
  );
}

export function NodesPanel() {
  const nodes = useQuery({ queryKey: ["nodes"], queryFn: () => get<NodeInfo[]>("/nodes"), refetchInterval: POLL_MS * 5 });
  const groups = useGroups(null, "");
  const holders = new Map<string, string[]>();
  for (const g of groups.data?.items ?? [])
    for (const t of g.tasks)
      if (t.node_id && t.gpu_id) for (const id of t.gpu_id.split(",")) holders.set(`${t.node_id}/${id.trim()}`, [...(holders.get(`${t.node_id}/${id.trim()}`) ?? []), g.name]);
  return (
    <Stack>
      <ErrorAlert error={nodes.error} />
      {(nodes.data ?? []).map((n) => (
        <Stack key={n.id} gap="xs">
          <Group>
            <Title order={3} size="h4">
              {n.name}
            </Title>
            <StatusBadge status={n.status} />
            <Text size="sm" c="dimmed">
              engines: {n.engines.join(", ") || "none"} · {n.model_count} models · heartbeat {ago(n.last_heartbeat)}
            </Text>
          </Group>
          {n.gpus.length === 0 ? (
            <Text size="sm">No GPUs: only CPU services (GPUs per task 0) run here.</Text>
          ) : (
            <Table aria-label={`GPUs of ${n.name}`}>
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>#</Table.Th>
                  <Table.Th>Vendor</Table.Th>
                  <Table.Th>Model</Table.Th>
                  <Table.Th>Memory</Table.Th>
                  <Table.Th>Utilisation</Table.Th>
                  <Table.Th>Temperature</Table.Th>
                  <Table.Th>Held by</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {n.gpus.map((g) => (
                  <Table.Tr key={g.uuid || g.index}>
                    <Table.Td>{g.index}</Table.Td>
                    <Table.Td>{g.vendor}</Table.Td>
                    <Table.Td>{g.name}</Table.Td>
                    <Table.Td>
                      {g.memory_used_mb} / {g.memory_total_mb} MB
                      <Progress value={g.memory_total_mb ? (100 * g.memory_used_mb) / g.memory_total_mb : 0} size="sm" aria-label="memory used" />
                    </Table.Td>
                    <Table.Td>{g.utilization_percent != null ? `${g.utilization_percent}%` : "—"}</Table.Td>
                    <Table.Td>{g.temperature_c != null ? `${g.temperature_c} °C` : "—"}</Table.Td>
                    <Table.Td>{(holders.get(`${n.id}/${g.index}`) ?? holders.get(`${n.id}/${g.uuid}`) ?? []).join(", ") || "—"}</Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          )}
        </Stack>
      ))}
    </Stack>
  );
}

function UsersPanel() {
  const client = useQueryClient();
  const users = useQuery({ queryKey: ["users"], queryFn: () => get<User[]>("/users") });
  const [name, setName] = useState("");
  const [role, setRole] = useState<Role>("viewer");
  const [shown, setShown] = useState<{ user: string; token: string } | null>(null);
  const create = useMutation({
    mutationFn: () => api<CreatedUser>("POST", "/users", { name: name.trim(), role }),
    onSuccess: (u) => (setShown({ user: u.name, token: u.token.token }), setName(""), client.invalidateQueries({ queryKey: ["users"] })),
  });
  const token = useMutation({
    mutationFn: (u: User) => api<{ token: string }>("POST", `/users/${u.id}/tokens`, { name: "web" }).then((t) => ({ user: u.name, token: t.token })),
    onSuccess: setShown,
  });
  return (
    <Stack>
      <Group align="flex-end">
        <TextInput label="User name" value={name} onChange={(e) => setName(e.currentTarget.value)} />
        <Select label="Role" data={["viewer", "operator", "admin"]} value={role} onChange={(v) => setRole((v as Role) ?? "viewer")} allowDeselect={false} w={140} />
        <Button onClick={() => create.mutate()} disabled={!name.trim()} loading={create.isPending}>
          Create user
        </Button>
      </Group>
      <ErrorAlert error={create.error ?? token.error} />
      {shown && (
        <Stack gap={4} data-testid="new-token">
          <Text size="sm">Token of {shown.user}:</Text>
          <ShownOnce secret={shown.token} />
        </Stack>
      )}
      <Table aria-label="Users">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Name</Table.Th>
            <Table.Th>Role</Table.Th>
            <Table.Th>Created</Table.Th>
            <Table.Th />
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {(users.data ?? []).map((u) => (
            <Table.Tr key={u.id}>
              <Table.Td>{u.name}</Table.Td>
              <Table.Td>
                <Badge variant="light">{u.role}</Badge>
                {u.disabled && <Badge color="gray">disabled</Badge>}
              </Table.Td>
              <Table.Td>{ago(u.created_at)}</Table.Td>
              <Table.Td>
                <Button size="compact-sm" variant="light" onClick={() => token.mutate(u)} aria-label={`New token for ${u.name}`}>
                  New token
                </Button>
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Stack>
  );
}
