import { BarChart } from "@mantine/charts";
import { Text } from "@mantine/core";
import type { Usage } from "../api";

/** Requests and tokens per time bucket, one series per key or route. */
export default function UsageChart({ rows, by }: { rows: Usage[]; by: "api_key_id" | "route_id" }) {
  if (!rows.length) return <Text c="dimmed">No requests in the last 24 hours.</Text>;
  const series = [...new Set(rows.map((r) => r[by] ?? "none"))];
  const buckets = new Map<string, Record<string, number | string>>();
  for (const r of rows) {
    const label = new Date(r.bucket_start).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const row = buckets.get(r.bucket_start) ?? { bucket: label };
    const name = r[by] ?? "none";
    row[`${name} requests`] = ((row[`${name} requests`] as number) ?? 0) + r.requests;
    row[`${name} tokens`] = ((row[`${name} tokens`] as number) ?? 0) + r.prompt_tokens + r.completion_tokens;
    buckets.set(r.bucket_start, row);
  }
  const data = [...buckets.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, v]) => v);
  const colors = ["indigo.6", "teal.6", "orange.6", "grape.6", "cyan.6"];
  return (
    <>
      <Text size="sm" fw={500}>
        Requests
      </Text>
      <BarChart h={200} data={data} dataKey="bucket" type="stacked" withLegend
        series={series.map((s, i) => ({ name: `${s} requests`, label: `${s.slice(0, 14)}`, color: colors[i % colors.length] }))} />
      <Text size="sm" fw={500} mt="md">
        Tokens
      </Text>
      <BarChart h={200} data={data} dataKey="bucket" type="stacked" withLegend
        series={series.map((s, i) => ({ name: `${s} tokens`, label: `${s.slice(0, 14)}`, color: colors[i % colors.length] }))} />
    </>
  );
}
