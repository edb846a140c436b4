import { Alert, Badge, Button, Group, Modal, Text, type ButtonProps } from "@mantine/core";
import { useDisclosure } from "@mantine/hooks";
import { useState, type ReactNode } from "react";

const STATUS_COLORS: Record<string, string> = {
  running: "green",
  sleeping: "blue",
  waking: "cyan",
  pending: "yellow",
  scheduling: "yellow",
  scheduled: "yellow",
  starting: "teal",
  stopping: "orange",
  completed: "gray",
  failed: "red",
  active: "green",
  inactive: "gray",
  ready: "green",
  online: "green",
  revoked: "gray",
  offline: "red",
};

export function StatusBadge({ status }: { status: string }) {
  return (
    <Badge color={STATUS_COLORS[status] ?? "gray"} variant="light" data-status={status}>
      {status}
    </Badge>
  );
}

export function ErrorAlert({ error, onClose }: { error: unknown; onClose?: () => void }) {
  if (!error) return null;
  return (
    <Alert color="red" role="alert" withCloseButton={!!onClose} onClose={onClose} mb="sm">
      {error instanceof Error ? error.message : String(error)}
    </Alert>
  );
}

/** A button that asks before doing something that cannot be undone. */
export function ConfirmButton({
  label,
  question,
  onConfirm,
  children,
  ...props
}: ButtonProps & { label: string; question: ReactNode; onConfirm: () => Promise<unknown> | void; children?: ReactNode }) {
  const [opened, { open, close }] = useDisclosure(false);
  const [busy, setBusy] = useState(false);
  return (
    <>
      <Button {...props} onClick={open}>
        {children ?? label}
      </Button>
      <Modal opened={opened} onClose={close} title={label} centered>
        <Text mb="md">{question}</Text>
        <Group justify="flex-end">
          <Button variant="default" onClick={close}>
            Cancel
          </Button>
          <Button
            color="red"
            loading={busy}
            onClick={async () => {
              setBusy(true);
              try {
                await onConfirm();
              } finally {
                setBusy(false);
                close();
              }
            }}
          >
            {label}
          </Button>
        </Group>
      </Modal>
    </>
  );
}

export function ago(iso: string | null | undefined): string {
  if (!iso) return "";
  const s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export function bytes(n: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}
