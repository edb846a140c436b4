"""``heteroflow-gpu``: the Nomad device plugin executable (Nomad's client launches it from
plugin_dir; it is not meant to be run by hand)."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from datetime import UTC, datetime
from typing import Any

import grpc

from agent_plugin.nomad_device.goplugin import HandshakeRefused, check_environment, serve
from agent_plugin.nomad_device.protos import protos
from agent_plugin.nomad_device.services import DevicePluginService


class HclogFormatter(logging.Formatter):
    """go-plugin's host parses JSON lines on the plugin's stderr with these keys into its
    own log (Nomad's), at the right level, instead of logging them as raw text."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "@level": {"WARNING": "warn", "CRITICAL": "error"}.get(
                record.levelname, record.levelname.lower()),
            "@message": record.getMessage(), "@module": record.name,
            # go-plugin parses exactly this layout (Go's 2006-01-02T15:04:05.000000Z07:00)
            "@timestamp": datetime.fromtimestamp(record.created, UTC).strftime(
                "%Y-%m-%dT%H:%M:%S.%fZ")}
        extra = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        event.update(extra)
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json.dumps(event, default=str)


_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def main() -> int:
    try:
        check_environment(dict(os.environ))
    except HandshakeRefused as refused:
        sys.stderr.write(str(refused))
        return 1
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(HclogFormatter())
    logging.basicConfig(level=os.environ.get("HETEROFLOW_PLUGIN_LOG_LEVEL", "INFO"),
                        handlers=[handler])
    pb = protos()
    stopping = threading.Event()
    service = DevicePluginService(pb, stopping)

    def register(server: grpc.Server) -> None:
        pb.base_grpc.add_BasePluginServicer_to_server(service, server)
        pb.device_grpc.add_DevicePluginServicer_to_server(service, server)

    try:
        serve(pb, register, stopping)
    finally:
        service.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
