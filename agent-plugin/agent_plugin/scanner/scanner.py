"""ModelScanner: walks the model roots, finds GGUF files and HuggingFace folders, and reports
what changed since the previous scan.

A rescan lists every folder and stats only the files that belong to a model (one ``stat``
each); a model whose files kept their sizes and mtimes is not read again. Everything that
looks like a model but cannot be served is in ``skipped`` with the reason, as are roots that
do not exist and folders that cannot be listed; each is logged (a warning with the path and
the reason) when it is first skipped or its reason changes.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agent_plugin.errors import ModelUnreadable
from agent_plugin.models import ModelInfo, ScanResult
from agent_plugin.scanner.base import Claim, ModelFormatReader
from agent_plugin.scanner.formats import FORMATS
from agent_plugin.scanner.index import Fingerprint, IndexEntry, load_index, save_index
from agent_plugin.settings import AgentSettings
from agent_plugin.vram import DEFAULT_CONTEXT_CAP, with_estimate

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Found:
    reader: ModelFormatReader
    claim: Claim
    fingerprint: Fingerprint


@dataclass(slots=True)
class _Walk:
    found: dict[str, _Found] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


class ModelScanner:
    def __init__(self, roots: Sequence[Path], *, index_path: Path | None = None,
                 context_cap: int = DEFAULT_CONTEXT_CAP,
                 formats: Mapping[str, ModelFormatReader] | None = None) -> None:
        self.roots = tuple(Path(r).absolute() for r in roots)  # ModelInfo.path is absolute
        self.index_path = index_path
        self.context_cap = context_cap
        self.formats = dict(FORMATS if formats is None else formats)
        self.skipped: dict[str, str] = {}  # path -> why it is not a servable model
        self._entries: dict[str, IndexEntry] | None = None  # loaded on the first scan
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: AgentSettings) -> ModelScanner:
        return cls(settings.model_roots, index_path=settings.scan_index_path,
                   context_cap=settings.vram_context_cap)

    async def scan(self) -> ScanResult:
        """Scan off the event loop; concurrent calls run one after the other."""
        async with self._lock:
            return await asyncio.to_thread(self.scan_sync)

    def scan_sync(self) -> ScanResult:
        if self._entries is None:
            self._entries = load_index(self.index_path, context_cap=self.context_cap)
        before = self._entries
        walk = self._walk()
        entries: dict[str, IndexEntry] = {}
        added: list[ModelInfo] = []
        changed: list[ModelInfo] = []
        for key, found in walk.found.items():
            previous = before.get(key)
            if previous is not None and previous.fingerprint == found.fingerprint:
                entries[key] = previous
                continue
            entry = self._describe(found)
            entries[key] = entry
            if entry.info is not None:
                was_servable = previous is not None and previous.info is not None
                (changed if was_servable else added).append(entry.info)
        removed = sorted(p for p, e in before.items()
                         if e.info is not None and (p not in entries or entries[p].info is None))
        walk.skipped.update({p: e.reason for p, e in entries.items() if e.info is None})
        roots = {str(r) for r in self.roots}
        for path, reason in sorted(walk.skipped.items()):
            if self.skipped.get(path) != reason:  # said once, not at every rescan
                # A default root that does not exist on this node is no news; a model is.
                level = logging.INFO if path in roots else logging.WARNING
                log.log(level, "model skipped", extra={"path": path, "reason": reason})
        self.skipped = walk.skipped
        self._entries = entries
        if self.index_path is not None and (entries != before or not self.index_path.exists()):
            try:
                save_index(self.index_path, entries, context_cap=self.context_cap)
            except OSError as exc:
                log.warning("scan index not saved",
                            extra={"path": str(self.index_path), "reason": str(exc)})
        models = tuple(sorted((e.info for e in entries.values() if e.info is not None),
                              key=lambda m: m.path))
        if added or changed or removed:
            log.info("models changed", extra={"added": len(added), "changed": len(changed),
                                               "removed": len(removed), "total": len(models)})
        return ScanResult(added=tuple(added), changed=tuple(changed), removed=tuple(removed),
                          models=models)

    @property
    def models(self) -> tuple[ModelInfo, ...]:
        """The models as of the last scan."""
        return tuple(sorted((e.info for e in (self._entries or {}).values() if e.info),
                            key=lambda m: m.path))

    def _describe(self, found: _Found) -> IndexEntry:
        try:
            info = with_estimate(found.reader.inspect(found.claim),
                                 context_cap=self.context_cap)
            return IndexEntry(found.fingerprint, info)
        except ModelUnreadable as exc:
            return IndexEntry(found.fingerprint, None, exc.message)
        except OSError as exc:  # a file vanished or became unreadable mid-scan
            return IndexEntry(found.fingerprint, None, f"cannot be read: {exc}")
        except Exception as exc:  # one odd file must not stop the scan
            log.exception("model could not be described", extra={"path": str(found.claim.path)})
            return IndexEntry(found.fingerprint, None,
                              f"could not be described: {type(exc).__name__}: {exc}")

    def _walk(self) -> _Walk:
        walk = _Walk()
        seen: set[tuple[int, int]] = set()  # (device, inode): symlinked folders, loops
        for root in self.roots:
            if not root.is_dir():
                walk.skipped[str(root)] = "model root does not exist or is not a folder"
                continue
            stack = [str(root)]
            while stack:
                self._visit(stack.pop(), stack, seen, walk)
        return walk

    def _visit(self, folder: str, stack: list[str], seen: set[tuple[int, int]],
               walk: _Walk) -> None:
        files: dict[str, os.DirEntry[str]] = {}
        subdirs: list[os.DirEntry[str]] = []
        try:
            with os.scandir(folder) as listing:
                for item in listing:
                    if item.name.startswith("."):
                        continue
                    try:
                        if item.is_dir():
                            subdirs.append(item)
                        elif item.is_file():
                            files[item.name] = item
                    except OSError:
                        continue  # a dangling symlink, or raced away
        except OSError as exc:
            walk.skipped[folder] = f"cannot be listed: {exc.strerror or exc}"
            return
        whole_folder = False
        path = Path(folder)
        for reader in self.formats.values():
            for claim in reader.claims(path, sorted(files)):
                try:
                    fingerprint = tuple(
                        (f.name, st.st_size, st.st_mtime_ns)
                        for f in claim.files for st in (files[f.name].stat(),))
                except OSError as exc:
                    walk.skipped[str(claim.path)] = f"cannot be read: {exc}"
                    continue
                walk.found[str(claim.path)] = _Found(reader, claim, fingerprint)
                whole_folder = whole_folder or claim.whole_folder
        if whole_folder:
            return
        for sub in subdirs:
            try:
                st = sub.stat()
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                stack.append(sub.path)
