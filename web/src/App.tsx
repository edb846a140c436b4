import { AppShell, Badge, Burger, Button, Group, NavLink, Text, Title } from "@mantine/core";
import { useDisclosure } from "@mantine/hooks";
import { lazy, Suspense } from "react";
import { Link, Navigate, Route, Routes, useLocation } from "react-router-dom";
import { RequireLogin, useAuth } from "./auth";
import { ServicesPage } from "./pages/Services";
import { ServiceDetailPage } from "./pages/ServiceDetail";
import { PlaygroundPage } from "./pages/Playground";
import { ControlPanelPage } from "./pages/ControlPanel";

const NAV = [
  { to: "/services", label: "Services" },
  { to: "/playground", label: "Playground" },
  { to: "/control", label: "Control panel" },
];

export function App() {
  return (
    <RequireLogin>
      <Shell />
    </RequireLogin>
  );
}

// Charts are the heaviest dependency and only the detail page's usage tab needs them.
export const UsageChart = lazy(() => import("./components/UsageChart"));

function Shell() {
  const { me, logout } = useAuth();
  const [opened, { toggle, close }] = useDisclosure();
  const location = useLocation();
  return (
    <AppShell header={{ height: 56 }} navbar={{ width: 210, breakpoint: "sm", collapsed: { mobile: !opened } }} padding="md">
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between" wrap="nowrap">
          <Group gap="sm" wrap="nowrap">
            <Burger opened={opened} onClick={toggle} hiddenFrom="sm" size="sm" aria-label="Toggle navigation" />
            <Title order={1} size="h4">
              HeteroFlow
            </Title>
          </Group>
          <Group gap="sm" wrap="nowrap">
            <Text size="sm" visibleFrom="xs">
              {me.name}
            </Text>
            <Badge variant="light" aria-label={`role ${me.role}`}>
              {me.role}
            </Badge>
            <Button variant="subtle" size="xs" onClick={logout}>
              Sign out
            </Button>
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs" aria-label="Main">
        {NAV.map((n) => (
          <NavLink
            key={n.to}
            component={Link}
            to={n.to}
            label={n.label}
            active={location.pathname.startsWith(n.to)}
            onClick={close}
          />
        ))}
      </AppShell.Navbar>
      <AppShell.Main>
        <Suspense fallback={null}>
          <Routes>
            <Route path="/" element={<Navigate to="/services" replace />} />
            <Route path="/services" element={<ServicesPage />} />
            <Route path="/services/:id" element={<ServiceDetailPage />} />
            <Route path="/playground" element={<PlaygroundPage />} />
            <Route path="/control" element={<ControlPanelPage />} />
            <Route path="*" element={<Text>No such page.</Text>} />
          </Routes>
        </Suspense>
      </AppShell.Main>
    </AppShell>
  );
}
