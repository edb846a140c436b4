// The seed's operations table: which action is offered in which state, and what it calls.
import { api, type Task, type TaskGroup } from "./api";

export type TaskAction = "sleep" | "wake" | "stop" | "retry";

const TASK_STATES: Record<TaskAction, string[]> = {
  sleep: ["running", "starting"],
  wake: ["sleeping"],
  stop: ["running", "starting"],
  retry: ["failed"],
};

export function taskActions(task: Task): TaskAction[] {
  return (Object.keys(TASK_STATES) as TaskAction[]).filter((a) => TASK_STATES[a].includes(task.status));
}

/** A group offers a task action when one of its tasks is in a state that allows it. */
export function groupTaskActions(group: TaskGroup): TaskAction[] {
  return (Object.keys(TASK_STATES) as TaskAction[]).filter((a) => group.tasks.some((t) => TASK_STATES[a].includes(t.status)));
}

// Delete: the seed shows it for completed and failed services; the server also deletes a
// pending one, which is the only way out for a service nothing can place.
export const canDelete = (group: TaskGroup) => ["completed", "failed", "pending"].includes(group.status);
export const canScale = (group: TaskGroup) => group.status === "running";

export function runTaskAction(task: Task, action: TaskAction): Promise<Task> {
  switch (action) {
    case "retry":
      return api<Task>("POST", `/tasks/${task.id}?action=retry`);
    default:
      return api<Task>("POST", `/tasks/${task.id}/${action}`);
  }
}

export async function runGroupAction(group: TaskGroup, action: TaskAction): Promise<void> {
  const targets = group.tasks.filter((t) => TASK_STATES[action].includes(t.status));
  await Promise.all(targets.map((t) => runTaskAction(t, action)));
}

export const ACTION_LABELS: Record<TaskAction, string> = { sleep: "Sleep", wake: "Wake", stop: "Stop", retry: "Retry" };
