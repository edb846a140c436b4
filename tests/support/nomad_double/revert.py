"""Auto-revert (Nomad's deployment watcher): a failed deployment of a group with
``auto_revert = true`` re-registers the job's last stable version as a new version, and the
failure's description says so ("... - rolling back to job version N"), as
``structs.DeploymentStatusDescriptionRollback`` words it. A job with no stable version
before the failed one stays as it is ("... - no stable job version to auto revert to")."""

from __future__ import annotations

import copy
from typing import Any

from .gotypes import now_ns
from .state import Store

Json = dict[str, Any]


def revert_target(store: Store, deployment: Json) -> tuple[Json | None, str]:
    """The stable job to go back to (None: none), and the suffix for the description."""
    key = (deployment["Namespace"], deployment["JobID"])
    job = store.jobs.get(key)
    auto = any(s.get("AutoRevert") for s in deployment["TaskGroups"].values())
    if not auto or job is None or job["Version"] != deployment["JobVersion"]:
        return None, ""
    stable = next((v for v in store.versions.get(key, [])
                   if v.get("Stable") and v["Version"] < deployment["JobVersion"]), None)
    if stable is None:
        return None, " - no stable job version to auto revert to"
    return stable, f" - rolling back to job version {stable['Version']}"


def reverted_job(stable: Json) -> Json:
    """The stable version as it is registered again (a new version, not yet stable)."""
    job = copy.deepcopy(stable)
    job.update(Stop=False, SubmitTime=now_ns())
    return job
