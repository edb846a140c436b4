import { Alert, Anchor, Button, Code, Group, SegmentedControl, Stack, Table, Tabs, Text, Title } from "@mantine/core";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Suspense, useState } from "react";
import { Link, useNavigate, useParams } from "react-router-dom";
import { ACTION_LABELS, runTaskAction, taskActions, type TaskAction } from "../actions";
import { get, type AuditEntry, type Page, type Task, type TaskGroup, type Usage } from "../api";
import { UsageChart } from "../App";
import { useAuth } from "../auth";
import { ago, ErrorAlert, StatusBadge } from "../components/common";
import { GroupActions, POLL_MS } from "./Services";

export function ServiceDetailPage() {
  const { id = "" } = useParams();
  const { canWrite } = useAuth();
  const navigate = useNavigate();
  const group = useQuery({ queryKey: ["group", id], queryFn: () => get<TaskGroup>(`/task-groups/${id}`), refetchInterval: POLL_MS });
  const [tab, setTab] = useState<string | null>("tasks");
  if (group.error) {
    return (
      <Stack>
        <ErrorAlert error={group.error} />
        <Anchor component={Link} to="/services">
          Back to services
        </Anchor>
      </Stack>
    );
  }
  const g = group.data;
  if (!g) return <Text>Loading…</Text>;
  const waiting = ["pending", "scheduling"].includes(g.status);
  return (
    <Stack>
      <Group justify="space-between">
        <Group>
          <Title order={2}>{g.name}</Title>
          <StatusBadge status={g.status} />
        </Group>
        {canWrite && <GroupActions group={g} />}
      </Group>
      {g.status_reason && (
        <Alert color={waiting ? "yellow" : g.status === "failed" ? "red" : "gray"} title={waiting ? "Why it waits" : "Status"}>
          {g.status_reason}
        </Alert>
      )}
      <Text size="sm">
        {g.model_name} · {g.engine ?? "auto engine"} · {g.image} · {g.model_path} · {g.parallelism}, world size {g.world_size} · QoS {g.qos}
      </Text>
      <Tabs value={tab} onChange={setTab} keepMounted={false}>
        <Tabs.List>
          <Tabs.Tab value="tasks">Tasks</Tabs.Tab>
          <Tabs.Tab value="jobspec">Jobspec</Tabs.Tab>
          <Tabs.Tab value="audit">Audit</Tabs.Tab>
          <Tabs.Tab value="usage">Usage</Tabs.Tab>
        </Tabs.List>
        <Tabs.Panel value="tasks" pt="md">
          <TasksTable tasks={g.tasks} canWrite={canWrite} groupId={g.id} />
        </Tabs.Panel>
        <Tabs.Panel value="jobspec" pt="md">
          <Jobspec id={g.id} />
        </Tabs.Panel>
        <Tabs.Panel value="audit" pt="md">
          <Audit ids={[g.id, ...g.tasks.map((t) => t.id)]} />
        </Tabs.Panel>
        <Tabs.Panel value="usage" pt="md">
          <UsageTab model={g.model_name} />
        </Tabs.Panel>
      </Tabs>
      <Button variant="subtle" w="fit-content" onClick={() => navigate("/services")}>
        Back to services
      </Button>
    </Stack>
  );
}

function TasksTable({ tasks, canWrite, groupId }: { tasks: Task[]; canWrite: boolean; groupId: string }) {
  const client = useQueryClient();
  const act = useMutation({
    mutationFn: ({ task, action }: { task: Task; action: TaskAction }) => runTaskAction(task, action),
    onSettled: () => client.invalidateQueries({ queryKey: ["group", groupId] }),
  });
  return (
    <>
      <ErrorAlert error={act.error} onClose={act.reset} />
      <Table.ScrollContainer minWidth={800}>
        <Table aria-label="Tasks">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Rank</Table.Th>
              <Table.Th>Status</Table.Th>
              <Table.Th>Node</Table.Th>
              <Table.Th>GPU</Table.Th>
              <Table.Th>Address</Table.Th>
              <Table.Th>Changed</Table.Th>
              <Table.Th>Actions</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {tasks.map((t) => (
              <Table.Tr key={t.id}>
                <Table.Td title={t.id}>{t.rank}</Table.Td>
                <Table.Td>
                  <StatusBadge status={t.status} />
                  {t.sleep_mode && <Text size="xs">asleep: {t.sleep_mode}{t.gpu_released ? ", GPU memory released" : ""}</Text>}
                  {t.status_reason && (
                    <Text size="xs" c="dimmed" maw={320}>
                      {t.status_reason}
                    </Text>
                  )}
                </Table.Td>
                <Table.Td>{t.node_name ?? t.node_id ?? "—"}</Table.Td>
                <Table.Td>{t.gpu_id ?? (t.gpu_required === 0 ? "CPU" : "—")}</Table.Td>
                <Table.Td>{t.address ?? "—"}</Table.Td>
                <Table.Td title={t.updated_at ?? ""}>{ago(t.updated_at)}</Table.Td>
                <Table.Td>
                  {canWrite && (
                    <Group gap={4}>
                      {taskActions(t).map((a) => (
                        <Button key={a} size="compact-xs" variant="light" onClick={() => act.mutate({ task: t, action: a })} aria-label={`${ACTION_LABELS[a]} task ${t.rank}`}>
                          {ACTION_LABELS[a]}
                        </Button>
                      ))}
                    </Group>
                  )}
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
    </>
  );
}

function Jobspec({ id }: { id: string }) {
  const spec = useQuery({ queryKey: ["jobspec", id], queryFn: () => get<string>(`/task-groups/${id}/jobspec`) });
  return (
    <div data-testid="jobspec">
      {spec.error ? (
        <Alert color="yellow" title="No Nomad job for this service">
          {spec.error.message}
        </Alert>
      ) : (
        <Code block aria-label="Nomad jobspec" style={{ maxHeight: 520, overflow: "auto" }}>
          {spec.data ?? "…"}
        </Code>
      )}
    </div>
  );
}

function Audit({ ids }: { ids: string[] }) {
  const trails = useQuery({
    queryKey: ["audit", ids],
    queryFn: async () => {
      const pages = await Promise.all(ids.map((id) => get<Page<AuditEntry>>(`/audit?object_id=${encodeURIComponent(id)}&limit=100`)));
      return pages.flatMap((p) => p.items).sort((a, b) => b.at.localeCompare(a.at));
    },
    refetchInterval: POLL_MS * 5,
  });
  if (trails.error) return <ErrorAlert error={trails.error} />;
  return (
    <Table aria-label="Audit trail">
      <Table.Thead>
        <Table.Tr>
          <Table.Th>When</Table.Th>
          <Table.Th>Who</Table.Th>
          <Table.Th>What</Table.Th>
          <Table.Th>Object</Table.Th>
        </Table.Tr>
      </Table.Thead>
      <Table.Tbody>
        {(trails.data ?? []).map((e) => (
          <Table.Tr key={e.id}>
            <Table.Td title={e.at}>{ago(e.at)}</Table.Td>
            <Table.Td>{e.actor_name}</Table.Td>
            <Table.Td>{e.action}</Table.Td>
            <Table.Td>{e.object_id}</Table.Td>
          </Table.Tr>
        ))}
      </Table.Tbody>
    </Table>
  );
}

function UsageTab({ model }: { model: string }) {
  const [by, setBy] = useState<"api_key_id" | "route_id">("api_key_id");
  const usage = useQuery({
    queryKey: ["usage", model],
    queryFn: () => get<Usage[]>(`/usage?model=${encodeURIComponent(model)}&bucket=minute`),
    // The gateway writes usage every few seconds; a new request shows up soon after.
    refetchInterval: POLL_MS * 2,
  });
  if (usage.error) return <ErrorAlert error={usage.error} />;
  return (
    <Stack>
      <SegmentedControl w="fit-content" value={by} onChange={(v) => setBy(v as typeof by)} data={[{ value: "api_key_id", label: "per key" }, { value: "route_id", label: "per route" }]} />
      <Suspense fallback={<Text>Loading chart…</Text>}>
        <UsageChart rows={usage.data ?? []} by={by} />
      </Suspense>
    </Stack>
  );
}
