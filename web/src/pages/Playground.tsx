import { Button, Card, Group, NumberInput, PasswordInput, Select, Stack, Text, Textarea, Title } from "@mantine/core";
import { useMutation } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { api, type NewApiKey } from "../api";
import { useAuth } from "../auth";
import { ErrorAlert } from "../components/common";
import { useGroups } from "./Services";

interface Message {
  role: "user" | "assistant";
  content: string;
}
interface Stats {
  ttftMs: number | null;
  tokensPerS: number | null;
  tokens: number;
}

const keyStore = (endpoint: string) => `heteroflow.playground-key.${endpoint}`;

/** One streamed chat completion through the gateway; calls onDelta per text chunk. */
export async function streamChat(
  model: string,
  key: string,
  messages: Message[],
  onDelta: (text: string) => void,
  signal?: AbortSignal,
  temperature = 0.7,
): Promise<Stats> {
  const started = performance.now();
  const resp = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${key}` },
    body: JSON.stringify({ model, messages, temperature, stream: true, max_tokens: 256, stream_options: { include_usage: true } }),
    signal,
  });
  if (!resp.ok || !resp.body) {
    let text = `${resp.status} ${resp.statusText}`;
    try {
      const body = await resp.json();
      text = body?.error?.message ?? text;
    } catch {
      /* not JSON */
    }
    throw new Error(text);
  }
  let first: number | null = null;
  let chunks = 0;
  let usageTokens: number | null = null;
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    const lines = buffer.split("\n");
    buffer = lines.pop() ?? "";
    for (const line of lines) {
      if (!line.startsWith("data:")) continue;
      const data = line.slice(5).trim();
      if (!data || data === "[DONE]") continue;
      const event = JSON.parse(data);
      if (event.usage?.completion_tokens) usageTokens = event.usage.completion_tokens;
      const text: string | undefined = event.choices?.[0]?.delta?.content;
      if (text) {
        first ??= performance.now();
        chunks++;
        onDelta(text);
      }
    }
  }
  const end = performance.now();
  const tokens = usageTokens ?? chunks;
  const genSeconds = first !== null ? (end - first) / 1000 : 0;
  return { ttftMs: first !== null ? first - started : null, tokensPerS: genSeconds > 0 ? tokens / genSeconds : null, tokens };
}

export function PlaygroundPage() {
  const { canWrite } = useAuth();
  const groups = useGroups(null, "");
  const usable = (groups.data?.items ?? []).filter((g) => g.endpoint && ["running", "sleeping", "scheduling"].includes(g.status));
  const [groupId, setGroupId] = useState<string | null>(null);
  const group = usable.find((g) => g.id === groupId) ?? null;
  const [key, setKey] = useState("");
  const [prompt, setPrompt] = useState("");
  const [messages, setMessages] = useState<Message[]>([]);
  const [stats, setStats] = useState<Stats | null>(null);
  const [temperature, setTemperature] = useState<number | string>(0.7);
  const abort = useRef<AbortController | null>(null);

  useEffect(() => {
    if (!groupId && usable.length) setGroupId(usable[0].id);
  }, [groupId, usable]);
  useEffect(() => {
    setKey(group?.endpoint ? (sessionStorage.getItem(keyStore(group.endpoint)) ?? "") : "");
    setMessages([]);
    setStats(null);
  }, [group?.endpoint]);

  const rememberKey = (value: string) => {
    setKey(value);
    if (group?.endpoint) sessionStorage.setItem(keyStore(group.endpoint), value);
  };
  const newKey = useMutation({
    mutationFn: () => api<NewApiKey>("POST", `/endpoints/${group!.endpoint}/api-keys`, { name: "playground" }),
    onSuccess: (k) => rememberKey(k.key),
  });
  const send = useMutation({
    mutationFn: async () => {
      const history: Message[] = [...messages, { role: "user", content: prompt }];
      setMessages([...history, { role: "assistant", content: "" }]);
      setPrompt("");
      abort.current = new AbortController();
      const s = await streamChat(
        group!.model_name,
        key,
        history,
        (text) =>
          setMessages((m) => {
            const last = m[m.length - 1];
            return [...m.slice(0, -1), { ...last, content: last.content + text }];
          }),
        abort.current.signal,
        Number(temperature) || 0,
      );
      setStats(s);
    },
  });

  return (
    <Stack maw={900}>
      <Title order={2}>Playground</Title>
      <Group align="flex-end">
        <Select
          label="Service"
          placeholder={usable.length ? "pick a service" : "no service with an OpenAI endpoint is up"}
          data={usable.map((g) => ({ value: g.id, label: `${g.name} (${g.model_name}, ${g.status})` }))}
          value={groupId}
          onChange={setGroupId}
          w={320}
        />
        <PasswordInput
          label="API key of this service"
          placeholder="sk-..."
          value={key}
          onChange={(e) => rememberKey(e.currentTarget.value)}
          w={320}
        />
        <NumberInput label="Temperature" min={0} max={2} step={0.1} decimalScale={2} value={temperature} onChange={setTemperature} w={120} />
        {canWrite && group && (
          <Button variant="light" onClick={() => newKey.mutate()} loading={newKey.isPending}>
            New playground key
          </Button>
        )}
      </Group>
      <ErrorAlert error={newKey.error} />
      <Card withBorder mih={200} aria-label="Conversation" aria-live="polite">
        <Stack gap="sm">
          {messages.length === 0 && <Text c="dimmed">Ask something; the answer streams in as the model writes it.</Text>}
          {messages.map((m, i) => (
            <Text key={i} data-role={m.role} style={{ whiteSpace: "pre-wrap" }}>
              <b>{m.role === "user" ? "You" : group?.model_name}:</b> {m.content}
            </Text>
          ))}
        </Stack>
      </Card>
      {stats && stats.tokens === 0 && (
        <Text size="sm" c="dimmed">
          The model ended its answer at once (a small model may sample its end token first); ask again or raise the temperature.
        </Text>
      )}
      {stats && (
        <Text size="sm" aria-label="Speed">
          time to first token {stats.ttftMs !== null ? `${Math.round(stats.ttftMs)} ms` : "—"} · {stats.tokens} tokens ·{" "}
          {stats.tokensPerS !== null ? `${stats.tokensPerS.toFixed(1)} tokens/s` : "—"}
        </Text>
      )}
      <ErrorAlert error={send.error} onClose={send.reset} />
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (prompt.trim() && key && group) send.mutate();
        }}
      >
        <Stack gap="xs">
          <Textarea
            label="Message"
            autosize
            minRows={2}
            value={prompt}
            onChange={(e) => setPrompt(e.currentTarget.value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) e.currentTarget.form?.requestSubmit();
            }}
          />
          <Group>
            <Button type="submit" disabled={!prompt.trim() || !key || !group} loading={send.isPending}>
              Send
            </Button>
            {send.isPending && (
              <Button variant="default" onClick={() => abort.current?.abort()}>
                Stop
              </Button>
            )}
          </Group>
        </Stack>
      </form>
    </Stack>
  );
}
