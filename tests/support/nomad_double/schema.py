"""The job-side object model of Nomad's Go API package (`api.Job` and what it contains).

One table drives three things: HCL block/attribute names -> JSON keys (`hcl.py`), decoding a
JSON register body the way Go's `encoding/json` does (keys matched case-insensitively, unknown
keys dropped), and the JSON Go writes back (every field present; nil pointers, slices and maps
as null, plain values as their zero).

Field spec: "JsonKey kind hcl_name [Ref]". A kind starting with `*` is a Go pointer (zero =
null). hcl_name `-` means not settable from HCL; `@` means the value is the block label.
Kinds: str int bool float dur (nanoseconds) strs smap (map[string]string) amap (map[string]any)
hdr (map[string][]string) obj objs objmap raw (opaque, kept as decoded).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_SPECS: dict[str, str] = {
    "Job": """
        Region *str region; Namespace *str namespace; ID *str id; Name *str name;
        Type *str type; Priority *int priority; AllAtOnce *bool all_at_once;
        Datacenters strs datacenters; NodePool *str node_pool;
        Constraints objs constraint Constraint; Affinities objs affinity Affinity;
        TaskGroups objs group TaskGroup; Update *obj update UpdateStrategy;
        Multiregion *raw multiregion; Spreads objs spread Spread; Periodic *raw periodic;
        ParameterizedJob *raw parameterized; Reschedule *obj reschedule ReschedulePolicy;
        Migrate *obj migrate MigrateStrategy; Meta smap meta; UI *raw ui;
        Stop *bool -; ParentID *str -; Dispatched bool -; DispatchIdempotencyToken *str -;
        Payload raw -; ConsulNamespace *str -; VaultNamespace *str -; NomadTokenID *str -;
        Status *str -; StatusDescription *str -; Stable *bool -; Version *int -;
        SubmitTime *int -; CreateIndex *int -; ModifyIndex *int -; JobModifyIndex *int -;
        VersionTag *raw -""",
    "TaskGroup": """
        Name *str @; Count *int count; Constraints objs constraint Constraint;
        Affinities objs affinity Affinity; Tasks objs task Task; Spreads objs spread Spread;
        Volumes objmap volume VolumeRequest; RestartPolicy *obj restart RestartPolicy;
        Disconnect *obj disconnect DisconnectStrategy;
        ReschedulePolicy *obj reschedule ReschedulePolicy;
        EphemeralDisk *obj ephemeral_disk EphemeralDisk; Update *obj update UpdateStrategy;
        Migrate *obj migrate MigrateStrategy; Networks objs network NetworkResource;
        Meta smap meta; Services objs service Service; ShutdownDelay *dur shutdown_delay;
        MaxRunDuration *dur max_run_duration;
        StopAfterClientDisconnect *dur stop_after_client_disconnect;
        MaxClientDisconnect *dur max_client_disconnect; Scaling *obj scaling ScalingPolicy;
        Consul *obj consul Consul; PreventRescheduleOnLost *bool prevent_reschedule_on_lost""",
    "Task": """
        Name str @; Driver str driver; User str user; Lifecycle *obj lifecycle TaskLifecycle;
        Config amap config; Constraints objs constraint Constraint;
        Affinities objs affinity Affinity; Env smap env; Services objs service Service;
        Resources *obj resources Resources; RestartPolicy *obj restart RestartPolicy;
        Meta smap meta; KillTimeout *dur kill_timeout; LogConfig *obj logs LogConfig;
        Artifacts objs artifact TaskArtifact; Vault *raw vault; Consul *obj consul Consul;
        Templates objs template Template; DispatchPayload *obj dispatch_payload DispatchPayload;
        VolumeMounts objs volume_mount VolumeMount; Leader bool leader;
        ShutdownDelay dur shutdown_delay; KillSignal str kill_signal; Kind str kind;
        ScalingPolicies raw -; Secrets raw -; Identity *raw -; Identities raw identity;
        Actions raw action; Schedule *raw schedule""",
    "Resources": """
        CPU *int cpu; Cores *int cores; MemoryMB *int memory; MemoryMaxMB *int memory_max;
        DiskMB *int disk; Networks objs network NetworkResource;
        Devices objs device RequestedDevice; NUMA *raw numa; SecretsMB *int secrets;
        IOPS *int iops""",
    "RequestedDevice": """
        Name str @; Count *int count; Constraints objs constraint Constraint;
        Affinities objs affinity Affinity""",
    "NetworkResource": """
        Mode str mode; Device str device; CIDR str cidr; IP str ip; DNS *obj dns DNSConfig;
        ReservedPorts objs reserved_ports Port; DynamicPorts objs port Port;
        Hostname str hostname; MBits *int mbits; CNI *raw cni""",
    "Port": """
        Label str @; Value int static; To int to; HostNetwork str host_network;
        IgnoreCollision bool ignore_collision""",
    "DNSConfig": "Servers strs servers; Searches strs searches; Options strs options",
    "Service": """
        Name str name; Tags strs tags; CanaryTags strs canary_tags;
        EnableTagOverride bool enable_tag_override; PortLabel str port;
        AddressMode str address_mode; Address str address; Checks objs check ServiceCheck;
        CheckRestart *obj check_restart CheckRestart; Connect *raw connect; Meta smap meta;
        CanaryMeta smap canary_meta; TaggedAddresses smap tagged_addresses; TaskName str task;
        OnUpdate str on_update; Identity *raw identity; Weights *obj weights ServiceWeights;
        Provider str provider; Cluster str cluster; Kind str kind""",
    "ServiceCheck": """
        Name str name; Type str type; Command str command; Args strs args; Path str path;
        Protocol str protocol; PortLabel str port; Expose bool expose;
        AddressMode str address_mode; Advertise str advertise; Interval dur interval;
        Timeout dur timeout; InitialStatus str initial_status; Notes str notes;
        TLSServerName str tls_server_name; TLSSkipVerify bool tls_skip_verify;
        Header hdr header; Method str method; CheckRestart *obj check_restart CheckRestart;
        GRPCService str grpc_service; GRPCUseTLS bool grpc_use_tls; TaskName str task;
        SuccessBeforePassing int success_before_passing;
        FailuresBeforeCritical int failures_before_critical;
        FailuresBeforeWarning int failures_before_warning; Body str body;
        OnUpdate str on_update""",
    "CheckRestart": "Limit int limit; Grace *dur grace; IgnoreWarnings bool ignore_warnings",
    "ServiceWeights": "Passing int passing; Warning int warning",
    "Constraint": "LTarget str attribute; RTarget str value; Operand str operator",
    "Affinity": """
        LTarget str attribute; RTarget str value; Operand str operator; Weight *int weight""",
    "Spread": "Attribute str attribute; Weight *int weight; SpreadTarget objs target SpreadTarget",
    "SpreadTarget": "Value str @; Percent int percent",
    "UpdateStrategy": """
        Stagger *dur stagger; MaxParallel *int max_parallel; HealthCheck *str health_check;
        MinHealthyTime *dur min_healthy_time; HealthyDeadline *dur healthy_deadline;
        ProgressDeadline *dur progress_deadline; Canary *int canary;
        AutoRevert *bool auto_revert; AutoPromote *bool auto_promote""",
    "RestartPolicy": """
        Interval *dur interval; Attempts *int attempts; Delay *dur delay; Mode *str mode;
        RenderTemplates *bool render_templates""",
    "ReschedulePolicy": """
        Attempts *int attempts; Interval *dur interval; Delay *dur delay;
        DelayFunction *str delay_function; MaxDelay *dur max_delay; Unlimited *bool unlimited""",
    "MigrateStrategy": """
        MaxParallel *int max_parallel; HealthCheck *str health_check;
        MinHealthyTime *dur min_healthy_time; HealthyDeadline *dur healthy_deadline""",
    "EphemeralDisk": "Sticky *bool sticky; Migrate *bool migrate; SizeMB *int size",
    "DisconnectStrategy": """
        LostAfter *dur lost_after; StopOnClientAfter *dur stop_on_client_after;
        Replace *bool replace; Reconcile *str reconcile""",
    "VolumeRequest": """
        Name str @; Type str type; Source str source; ReadOnly bool read_only;
        Sticky bool sticky; AccessMode str access_mode; AttachmentMode str attachment_mode;
        MountOptions *raw mount_options; PerAlloc bool per_alloc""",
    "VolumeMount": """
        Volume *str volume; Destination *str destination; ReadOnly *bool read_only;
        PropagationMode *str propagation_mode; SELinuxLabel *str selinux_label""",
    "ScalingPolicy": """
        Min *int min; Max *int max; Policy amap policy; Enabled *bool enabled; Type str type;
        ID str -; Namespace str -; Target smap -; CreateIndex int -; ModifyIndex int -""",
    "LogConfig": """
        MaxFiles *int max_files; MaxFileSizeMB *int max_file_size; Enabled *bool enabled;
        Disabled *bool disabled""",
    "Template": """
        SourcePath *str source; DestPath *str destination; EmbeddedTmpl *str data;
        ChangeMode *str change_mode; ChangeScript *obj change_script ChangeScript;
        ChangeSignal *str change_signal; Once *bool once; Splay *dur splay; Perms *str perms;
        Uid *int uid; Gid *int gid; LeftDelim *str left_delimiter;
        RightDelim *str right_delimiter; Envvars *bool env; VaultGrace *dur vault_grace;
        Wait *obj wait WaitConfig; ErrMissingKey *bool error_on_missing_key""",
    "ChangeScript": """
        Command *str command; Args strs args; Timeout *dur timeout; FailOnError *bool fail_on_error;
        RunOnFirstRender *bool run_on_first_render""",
    "WaitConfig": "Min *dur min; Max *dur max",
    "TaskLifecycle": "Hook str hook; Sidecar bool sidecar",
    "TaskArtifact": """
        GetterSource *str source; GetterOptions smap options; GetterHeaders smap headers;
        GetterMode *str mode; GetterInsecure *bool insecure; RelativeDest *str destination;
        Chown bool chown""",
    "DispatchPayload": "File str file",
    "Consul": "Namespace str namespace; Cluster str cluster; Partition str partition",
}

SCALAR_ZERO: dict[str, Any] = {"str": "", "int": 0, "bool": False, "float": 0.0, "dur": 0}


@dataclass(frozen=True)
class Field:
    """One Go struct field: its JSON key, Go kind, HCL name and nested struct name."""

    key: str
    kind: str
    pointer: bool
    hcl: str | None
    label: bool
    ref: str | None

    def zero(self) -> Any:
        if self.pointer or self.kind not in SCALAR_ZERO:
            return None
        return SCALAR_ZERO[self.kind]


def _parse(spec: str) -> list[Field]:
    fields = []
    for raw in spec.split(";"):
        parts = raw.split()
        if not parts:
            continue
        key, kind, hcl_name = parts[0], parts[1], parts[2]
        ref = parts[3] if len(parts) > 3 else None
        fields.append(Field(
            key=key, kind=kind.lstrip("*"), pointer=kind.startswith("*"),
            hcl=None if hcl_name in ("-", "@") else hcl_name, label=hcl_name == "@", ref=ref))
    return fields


STRUCTS: dict[str, list[Field]] = {name: _parse(spec) for name, spec in _SPECS.items()}
_BY_LOWER: dict[str, dict[str, Field]] = {
    name: {f.key.lower(): f for f in fields} for name, fields in STRUCTS.items()}
BY_HCL: dict[str, dict[str, Field]] = {
    name: {f.hcl: f for f in fields if f.hcl} for name, fields in STRUCTS.items()}


def label_field(struct: str) -> Field | None:
    return next((f for f in STRUCTS[struct] if f.label), None)


def empty(struct: str) -> dict[str, Any]:
    """An object as Go writes a zero-valued struct of this type."""
    return {f.key: f.zero() for f in STRUCTS[struct]}


class DecodeError(ValueError):
    """The body does not fit the Go types; the text follows encoding/json's wording."""


def decode(struct: str, data: Any, path: str = "") -> dict[str, Any]:
    """Decode JSON like Go's encoding/json into an api struct, then re-encode it.

    Keys match case-insensitively, unknown keys are dropped and missing ones get their zero.
    """
    if not isinstance(data, dict):
        raise DecodeError(
            f"json: cannot unmarshal {_json_kind(data)} into Go value of type api.{struct}")
    out = empty(struct)
    fields = _BY_LOWER[struct]
    for raw_key, value in data.items():
        field = fields.get(str(raw_key).lower())
        if field is None:
            continue
        out[field.key] = _decode_value(field, value, f"{path}{struct}.{field.key}")
    return out


def _decode_value(field: Field, value: Any, where: str) -> Any:
    if value is None:
        return field.zero()
    kind = field.kind
    if kind == "str":
        return _expect(value, str, "string", where)
    if kind in ("int", "dur"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            go_type = "time.Duration" if kind == "dur" else "int"
            raise DecodeError(f"json: cannot unmarshal {_json_kind(value)} into Go struct "
                              f"field {where} of type {go_type}")
        if isinstance(value, float) and not value.is_integer():
            raise DecodeError(f"json: cannot unmarshal number {value} into Go struct field "
                              f"{where} of type int")
        return int(value)
    if kind == "bool":
        return _expect(value, bool, "bool", where)
    if kind == "float":
        return float(_expect(value, int | float, "float64", where))
    if kind == "strs":
        return [_expect(v, str, "string", where) for v in _expect(value, list, "[]string", where)]
    if kind == "smap":
        mapping = _expect(value, dict, "map[string]string", where)
        return {str(k): _expect(v, str, "string", where) for k, v in mapping.items()}
    if kind == "hdr":
        mapping = _expect(value, dict, "map[string][]string", where)
        return {str(k): list(_expect(v, list, "[]string", where)) for k, v in mapping.items()}
    if kind in ("amap", "raw"):
        return value
    assert field.ref is not None
    if kind == "obj":
        return decode(field.ref, value, where + ".")
    if kind == "objs":
        items = _expect(value, list, f"[]*api.{field.ref}", where)
        return [decode(field.ref, item, where + ".") for item in items]
    if kind == "objmap":
        mapping = _expect(value, dict, f"map[string]*api.{field.ref}", where)
        return {str(k): decode(field.ref, v, where + ".") for k, v in mapping.items()}
    raise AssertionError(kind)


def _expect(value: Any, kind: Any, go_type: str, where: str) -> Any:
    ok = not (isinstance(value, bool) and kind is not bool) and isinstance(value, kind)
    if not ok:
        raise DecodeError(f"json: cannot unmarshal {_json_kind(value)} into Go struct field "
                          f"{where} of type {go_type}")
    return value


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"
