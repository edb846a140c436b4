import { Alert, Button, Card, Code, Center, PasswordInput, Stack, Text, Title } from "@mantine/core";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { createContext, useContext, useState, type FormEvent, type ReactNode } from "react";
import { ApiError, api, canWrite, getToken, setToken, type WhoAmI } from "./api";

interface Auth {
  me: WhoAmI;
  canWrite: boolean;
  isAdmin: boolean;
  logout: () => void;
}
const AuthContext = createContext<Auth | null>(null);

export function useAuth(): Auth {
  const auth = useContext(AuthContext);
  if (!auth) throw new Error("useAuth outside of <RequireLogin>");
  return auth;
}

export function RequireLogin({ children }: { children: ReactNode }) {
  const client = useQueryClient();
  const [token, setTokenState] = useState<string | null>(getToken());
  const me = useQuery({
    queryKey: ["whoami", token],
    queryFn: () => api<WhoAmI>("GET", "/whoami"),
    enabled: token !== null,
    staleTime: 60_000,
  });
  const logout = () => {
    setToken(null);
    client.clear();
    setTokenState(null);
  };
  if (token === null || me.error) {
    const expired = me.error instanceof ApiError && me.error.status === 401;
    return (
      <Login
        notice={expired ? "That token is unknown or revoked; sign in again." : me.error ? String(me.error.message) : undefined}
        onToken={(t) => {
          setToken(t);
          client.clear();
          setTokenState(t);
        }}
      />
    );
  }
  if (!me.data) return null;
  const value: Auth = { me: me.data, canWrite: canWrite(me.data.role), isAdmin: me.data.role === "admin", logout };
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

function Login({ onToken, notice }: { onToken: (token: string) => void; notice?: string }) {
  const [value, setValue] = useState("");
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (value.trim()) onToken(value.trim());
  };
  return (
    <Center mih="100vh" p="md">
      <Card withBorder shadow="sm" p="xl" maw={460} w="100%">
        <form onSubmit={submit}>
          <Stack>
            <Title order={1} size="h2">
              HeteroFlow
            </Title>
            <Text size="sm">
              Sign in with a bearer token: the admin token <Code>heteroflow up</Code> printed (also in{" "}
              <Code>~/.heteroflow/admin-token</Code>), or a token an admin made for you. It is kept in this tab only.
            </Text>
            {notice && (
              <Alert color="red" role="alert">
                {notice}
              </Alert>
            )}
            <PasswordInput
              label="Token"
              placeholder="hft_..."
              autoComplete="current-password"
              value={value}
              onChange={(e) => setValue(e.currentTarget.value)}
              data-autofocus
              autoFocus
            />
            <Button type="submit" disabled={!value.trim()}>
              Sign in
            </Button>
          </Stack>
        </form>
      </Card>
    </Center>
  );
}
