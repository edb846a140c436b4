import {
  Anchor,
  Button,
  Card,
  Group,
  NumberInput,
  Popover,
  Select,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from "@mantine/core";
import { useDisclosure, useMediaQuery } from "@mantine/hooks";
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { Link } from "react-router-dom";
import { ACTION_LABELS, canDelete, canScale, groupTaskActions, runGroupAction, type TaskAction } from "../actions";
import { api, get, type Page, type Route, type TaskGroup } from "../api";
import { useAuth } from "../auth";
import { ago, ConfirmButton, ErrorAlert, StatusBadge } from "../components/common";
import { CreateServiceModal } from "./CreateService";

const STATUSES = ["pending", "scheduling", "running", "sleeping", "completed", "failed"];
// Live view: the list is polled while the tab is visible.
export const POLL_MS = 2000;

export function useGroups(status: string | null, name: string) {
  const params = new URLSearchParams({ limit: "500" });
  if (status) params.set("status", status);
  if (name.trim()) params.set("name", name.trim());
  return useQuery({
    queryKey: ["groups", status, name.trim()],
    queryFn: () => get<Page<TaskGroup>>(`/task-groups?${params}`),
    refetchInterval: POLL_MS,
    placeholderData: keepPreviousData,
  });
}

export function useRoutes() {
  return useQuery({ queryKey: ["routes"], queryFn: () => get<Route[]>("/model-routes"), refetchInterval: POLL_MS * 2 });
}

export function ServicesPage() {
  const { canWrite } = useAuth();
  const [status, setStatus] = useState<string | null>(null);
  const [search, setSearch] = useState("");
  const [creating, { open, close }] = useDisclosure(false);
  const groups = useGroups(status, search);
  const routes = useRoutes();
  // A phone gets one card per service instead of a table to scroll sideways.
  const phone = useMediaQuery("(max-width: 48em)");
  const versions = new Map<string, string[]>();
  for (const r of routes.data ?? []) {
    if (r.task_group_id) versions.set(r.task_group_id, [...(versions.get(r.task_group_id) ?? []), r.version]);
  }
  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Services</Title>
        {canWrite && <Button onClick={open}>Create service</Button>}
      </Group>
      <Group>
        <TextInput
          label="Search"
          placeholder="part of the name"
          value={search}
          onChange={(e) => setSearch(e.currentTarget.value)}
          w={240}
        />
        <Select label="Status" placeholder="any" data={STATUSES} value={status} onChange={setStatus} clearable w={180} />
      </Group>
      <ErrorAlert error={groups.error} />
      {phone ? (
        <Stack gap="sm" aria-label="Services">
          {(groups.data?.items ?? []).map((g) => (
            <ServiceCard key={g.id} group={g} canWrite={canWrite} />
          ))}
        </Stack>
      ) : (
        <Table.ScrollContainer minWidth={900}>
          <Table striped highlightOnHover aria-label="Services">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>Status</Table.Th>
                <Table.Th>Replicas</Table.Th>
                <Table.Th>Engine</Table.Th>
                <Table.Th>GPUs</Table.Th>
                <Table.Th>Nodes</Table.Th>
                <Table.Th>Route</Table.Th>
                <Table.Th>Changed</Table.Th>
                {canWrite && <Table.Th>Actions</Table.Th>}
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {(groups.data?.items ?? []).map((g) => (
                <ServiceRow key={g.id} group={g} versions={versions.get(g.id) ?? []} canWrite={canWrite} />
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
      {groups.data && groups.data.items.length === 0 && <Text c="dimmed">No services{status || search ? " match" : " yet"}.</Text>}
      {canWrite && <CreateServiceModal opened={creating} onClose={close} />}
    </Stack>
  );
}

function ServiceRow({ group: g, versions, canWrite }: { group: TaskGroup; versions: string[]; canWrite: boolean }) {
  const nodes = [...new Set(g.tasks.map((t) => t.node_name ?? t.node_id).filter(Boolean))];
  const gpuIds = g.tasks.map((t) => t.gpu_id).filter(Boolean);
  const wanted = g.tasks.filter((t) => t.status !== "completed").length || g.tasks.length;
  return (
    <Table.Tr data-service={g.name}>
      <Table.Td>
        <Anchor component={Link} to={`/services/${g.id}`}>
          {g.name}
        </Anchor>
        <Text size="xs" c="dimmed">
          {g.model_name}
        </Text>
      </Table.Td>
      <Table.Td>
        <StatusBadge status={g.status} />
        {g.status_reason && (
          <Text size="xs" c="dimmed" maw={280} lineClamp={3} title={g.status_reason}>
            {g.status_reason}
          </Text>
        )}
      </Table.Td>
      <Table.Td>
        {g.current_replicas} / {wanted}
      </Table.Td>
      <Table.Td>{g.engine ?? "auto"}</Table.Td>
      <Table.Td>
        {g.gpu_required === 0 ? "CPU" : `${g.gpu_required} × ${g.gpu_type ?? "auto"}`}
        {gpuIds.length > 0 && (
          <Text size="xs" c="dimmed">
            {gpuIds.join(", ")}
          </Text>
        )}
      </Table.Td>
      <Table.Td>{nodes.join(", ") || "—"}</Table.Td>
      <Table.Td>{versions.join(", ") || "—"}</Table.Td>
      <Table.Td title={g.updated_at ?? ""}>{ago(g.updated_at)}</Table.Td>
      {canWrite && (
        <Table.Td>
          <GroupActions group={g} />
        </Table.Td>
      )}
    </Table.Tr>
  );
}

function ServiceCard({ group: g, canWrite }: { group: TaskGroup; canWrite: boolean }) {
  return (
    <Card withBorder padding="sm" data-service={g.name}>
      <Group justify="space-between" wrap="nowrap">
        <Anchor component={Link} to={`/services/${g.id}`} fw={500}>
          {g.name}
        </Anchor>
        <StatusBadge status={g.status} />
      </Group>
      {g.status_reason && (
        <Text size="xs" c="dimmed" lineClamp={3}>
          {g.status_reason}
        </Text>
      )}
      <Text size="sm" mt={4}>
        {g.model_name} · {g.engine ?? "auto"} · {g.gpu_required === 0 ? "CPU" : `${g.gpu_required} × ${g.gpu_type ?? "auto"}`} · {g.current_replicas}/
        {g.tasks.length} replicas · {ago(g.updated_at)}
      </Text>
      {canWrite && (
        <Group mt="xs">
          <GroupActions group={g} />
        </Group>
      )}
    </Card>
  );
}

export function GroupActions({ group }: { group: TaskGroup }) {
  const client = useQueryClient();
  const refresh = () => client.invalidateQueries({ queryKey: ["groups"] }).then(() => client.invalidateQueries({ queryKey: ["group", group.id] }));
  const act = useMutation({ mutationFn: (a: TaskAction) => runGroupAction(group, a), onSettled: refresh });
  const del = useMutation({ mutationFn: () => api("DELETE", `/task-groups/${group.id}`), onSettled: refresh });
  return (
    <Stack gap={4}>
      <Group gap={4} wrap="nowrap">
        {groupTaskActions(group).map((a) =>
          a === "stop" ? (
            <ConfirmButton
              key={a}
              size="compact-sm"
              variant="light"
              color="orange"
              label="Stop"
              aria-label={`Stop ${group.name}`}
              question={`Stop every running task of ${group.name}? Its engines end.`}
              onConfirm={() => act.mutateAsync(a).catch(() => undefined)}
            />
          ) : (
            <Button key={a} size="compact-sm" variant="light" loading={act.isPending && act.variables === a} onClick={() => act.mutate(a)} aria-label={`${ACTION_LABELS[a]} ${group.name}`}>
              {ACTION_LABELS[a]}
            </Button>
          ),
        )}
        {canScale(group) && <ScaleButton group={group} onDone={refresh} />}
        {canDelete(group) && (
          <ConfirmButton
            size="compact-sm"
            variant="light"
            color="red"
            label="Delete"
            aria-label={`Delete ${group.name}`}
            question={`Delete ${group.name} with its tasks, route, endpoint and API keys?`}
            onConfirm={() => del.mutateAsync().catch(() => undefined)}
          />
        )}
      </Group>
      <ErrorAlert error={act.error ?? del.error} onClose={() => (act.reset(), del.reset())} />
    </Stack>
  );
}

function ScaleButton({ group, onDone }: { group: TaskGroup; onDone: () => unknown }) {
  const [opened, { toggle, close }] = useDisclosure(false);
  const [replicas, setReplicas] = useState<number | string>(group.tasks.length || 1);
  const scale = useMutation({
    mutationFn: () => api("PUT", `/task-groups/${group.id}/scale`, { replicas: Number(replicas) }),
    onSuccess: () => (close(), onDone()),
  });
  return (
    <Popover opened={opened} onChange={toggle} trapFocus position="bottom" withArrow>
      <Popover.Target>
        <Button size="compact-sm" variant="light" onClick={toggle} aria-label={`Scale ${group.name}`}>
          Scale
        </Button>
      </Popover.Target>
      <Popover.Dropdown>
        <Stack gap="xs">
          <NumberInput label="Replicas" min={1} max={512} value={replicas} onChange={setReplicas} />
          <ErrorAlert error={scale.error} />
          <Button size="xs" onClick={() => scale.mutate()} loading={scale.isPending}>
            Apply
          </Button>
        </Stack>
      </Popover.Dropdown>
    </Popover>
  );
}
