"""CodePipeline: custom action types, the job worker API, and pipeline runs that create jobs.

Speaks the real awsJson1_1 protocol (X-Amz-Target: CodePipeline_20150709.<Op>) by adding
operations to moto's CodePipelineResponse. State lives here (per account and region),
beside moto's own pipelines; moto's PipelineExecution gets a real status.

Pipeline runs (simplified, see README): stages run in order, actions of a stage grouped by
runOrder. A registered Custom action creates a Queued job; every other action is simulated
as succeeding at once (an S3 source copies its object into the artifact store; other
actions' output artifacts get a location but no object). A failed action fails the run.
"""

from __future__ import annotations

import json
import random
import string
import threading
import time
import uuid
from typing import Any, Callable

from moto.codepipeline import models as cp_models
from moto.codepipeline.responses import CodePipelineResponse
from moto.core.exceptions import JsonRESTError

from .events import BUS, envelope

LOCK = threading.RLock()

# Hooks for tests running inside the server process: called with (state, action_run) on
# every action STARTED/SUCCEEDED/FAILED, after the EventBridge event was published.
ACTION_STATE_HOOKS: list[Callable[[str, "ActionRun"], None]] = []


class _Err(JsonRESTError):
    code = 400

    def __init__(self, error_type: str, message: str):
        super().__init__(error_type, message)


def _now() -> float:
    return time.time()


def _type_key(type_id: dict[str, Any]) -> tuple[str, str, str, str]:
    return (type_id["category"], type_id["owner"], type_id["provider"], str(type_id["version"]))


class CustomActionType:
    def __init__(self, params: dict[str, Any]):
        self.id = {
            "category": params["category"],
            "owner": "Custom",
            "provider": params["provider"],
            "version": params["version"],
        }
        self.settings = params.get("settings") or {}
        self.configuration_properties = params.get("configurationProperties") or []
        self.input_artifact_details = params["inputArtifactDetails"]
        self.output_artifact_details = params["outputArtifactDetails"]
        self.tags = params.get("tags") or []

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "settings": self.settings,
            "actionConfigurationProperties": self.configuration_properties,
            "inputArtifactDetails": self.input_artifact_details,
            "outputArtifactDetails": self.output_artifact_details,
        }


class ActionRun:
    """One execution of one action in one pipeline execution."""

    def __init__(self, run: "PipelineRun", stage: str, action: dict[str, Any]):
        self.run = run
        self.stage = stage
        self.action = action
        self.name = action["name"]
        self.action_execution_id = str(uuid.uuid4())
        self.start_time = _now()
        self.status = "InProgress"
        self.summary: str | None = None
        self.external_execution_id: str | None = None
        self.external_execution_url: str | None = None
        self.percent_complete: int | None = None
        self.error_details: dict[str, str] | None = None
        self.last_status_change = _now()
        self.token: str | None = None
        self.jobs: list[Job] = []
        self.input_artifacts: list[dict[str, Any]] = []
        self.output_artifacts: list[dict[str, Any]] = []

    @property
    def type_id(self) -> dict[str, Any]:
        return self.action["actionTypeId"]

    def latest_execution(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "actionExecutionId": self.action_execution_id,
            "status": self.status,
            "lastStatusChange": self.last_status_change,
        }
        for key, value in (
            ("summary", self.summary),
            ("externalExecutionId", self.external_execution_id),
            ("externalExecutionUrl", self.external_execution_url),
            ("percentComplete", self.percent_complete),
            ("errorDetails", self.error_details),
            ("token", self.token),
        ):
            if value is not None:
                out[key] = value
        return out


class Job:
    def __init__(self, action_run: ActionRun, data: dict[str, Any], account_id: str):
        self.id = str(uuid.uuid4())
        self.nonce: str | None = None
        self.status = "Queued"
        self.data = data
        self.account_id = account_id
        self.action_run = action_run
        self.created = _now()

    def to_dict(self, with_nonce: bool) -> dict[str, Any]:
        out = {"id": self.id, "data": self.data, "accountId": self.account_id}
        if with_nonce:
            out["nonce"] = self.nonce
        return out


class PipelineRun:
    def __init__(self, backend: "JobState", pipeline: Any, execution: Any):
        self.backend = backend
        self.pipeline = pipeline  # moto CodePipeline
        self.definition = json.loads(json.dumps(pipeline.pipeline))  # snapshot
        self.execution = execution  # moto PipelineExecution
        self.stage_index = 0
        self.stage_status: dict[str, str] = {}
        self.artifacts: dict[str, dict[str, Any]] = {}  # name -> {bucket, key, revision}
        self.actions: dict[tuple[str, str], ActionRun] = {}
        self.retried: list[ActionRun] = []  # action executions a RetryStageExecution replaced

    @property
    def name(self) -> str:
        return self.definition["name"]

    @property
    def execution_id(self) -> str:
        return self.execution.pipeline_execution_id

    def store(self) -> dict[str, Any]:
        store = self.definition.get("artifactStore")
        if not store:
            stores = self.definition.get("artifactStores") or {}
            store = stores.get(self.backend.region) or next(iter(stores.values()), {})
        return store or {}


class JobState:
    """Everything this extension adds, for one account and region."""

    def __init__(self, account_id: str, region: str):
        self.account_id = account_id
        self.region = region
        self.action_types: dict[tuple[str, str, str, str], CustomActionType] = {}
        self.jobs: dict[str, Job] = {}
        self.runs: dict[str, PipelineRun] = {}  # by pipeline execution id

    # ----------------------------------------------------------------- pipeline runs
    def start_run(self, pipeline: Any, execution: Any) -> None:
        execution.status = "InProgress"
        run = PipelineRun(self, pipeline, execution)
        self.runs[execution.pipeline_execution_id] = run
        self._advance(run)

    def _advance(self, run: PipelineRun) -> None:
        if run.execution.status == "Stopping":
            # "Stop and wait": the run ends once its in-progress actions have.
            if not any(a.status == "InProgress" for a in run.actions.values()):
                self._finish_run(run, "Stopped", run.execution.status_summary)
            return
        stages = run.definition["stages"]
        while run.execution.status == "InProgress":
            if run.stage_index >= len(stages):
                self._finish_run(run, "Succeeded", None)
                return
            stage = stages[run.stage_index]
            stage_name = stage["name"]
            run.stage_status[stage_name] = "InProgress"
            groups = sorted({a.get("runOrder", 1) for a in stage["actions"]})
            for order in groups:
                group = [a for a in stage["actions"] if a.get("runOrder", 1) == order]
                runs = []
                for action in group:
                    key = (stage_name, action["name"])
                    if key not in run.actions:
                        run.actions[key] = self._start_action(run, stage_name, action)
                    runs.append(run.actions[key])
                if any(r.status == "Failed" for r in runs):
                    run.stage_status[stage_name] = "Failed"
                    failed = next(r for r in runs if r.status == "Failed")
                    self._finish_run(
                        run,
                        "Failed",
                        f"Action {failed.name} in stage {stage_name} failed: {failed.summary or ''}".strip(),
                    )
                    return
                if any(r.status == "InProgress" for r in runs):
                    return  # wait for the jobs of this group
            run.stage_status[stage_name] = "Succeeded"
            run.stage_index += 1

    def _finish_run(self, run: PipelineRun, status: str, summary: str | None) -> None:
        run.execution.status = status
        run.execution.status_summary = summary
        run.execution.last_update_time = cp_models.utcnow()

    def _artifact_location(self, run: PipelineRun, artifact_name: str) -> dict[str, Any]:
        suffix = "".join(random.choices(string.ascii_letters + string.digits, k=7))
        return {
            "bucket": run.store().get("location", ""),
            "key": f"{run.name[:20]}/{artifact_name[:10]}/{suffix}",
        }

    def _start_action(self, run: PipelineRun, stage: str, action: dict[str, Any]) -> ActionRun:
        ar = ActionRun(run, stage, action)
        for art in action.get("inputArtifacts") or []:
            loc = run.artifacts.get(art["name"]) or self._artifact_location(run, art["name"])
            ar.input_artifacts.append({"name": art["name"], **loc})
        for art in action.get("outputArtifacts") or []:
            loc = self._artifact_location(run, art["name"])
            ar.output_artifacts.append({"name": art["name"], **loc})
        self._emit(ar, "STARTED")
        type_id = action["actionTypeId"]
        if type_id.get("owner") == "Custom":
            action_type = self.action_types.get(_type_key(type_id))
            if action_type is None:
                self._complete(
                    ar,
                    "Failed",
                    summary="ActionType not found (local stack: Custom action type is not registered)",
                    error=("ConfigurationError", "ActionType not found"),
                )
                return ar
            job = Job(ar, self._job_data(run, ar), self.account_id)
            ar.jobs.append(job)
            self.jobs[job.id] = job
            return ar
        # Simulated non-custom action.
        if type_id.get("provider") == "S3" and type_id.get("category") == "Source":
            ok, message = self._s3_source(run, ar)
            if not ok:
                self._complete(ar, "Failed", summary=message, error=("JobFailed", message))
                return ar
        for out in ar.output_artifacts:
            run.artifacts[out["name"]] = {"bucket": out["bucket"], "key": out["key"]}
        self._complete(ar, "Succeeded", summary="Simulated by the local stack")
        return ar

    def _s3_source(self, run: PipelineRun, ar: ActionRun) -> tuple[bool, str]:
        from moto.s3.models import s3_backends

        cfg = ar.action.get("configuration") or {}
        s3 = s3_backends[self.account_id]["aws"]
        try:
            key = s3.get_object(cfg.get("S3Bucket", ""), cfg.get("S3ObjectKey", ""))
        except Exception:
            key = None
        if key is None:
            return False, f"The object s3://{cfg.get('S3Bucket')}/{cfg.get('S3ObjectKey')} does not exist"
        for out in ar.output_artifacts:
            s3.put_object(out["bucket"], out["key"], key.value)
            out["revision"] = key.etag.strip('"')
        return True, ""

    def _job_data(self, run: PipelineRun, ar: ActionRun) -> dict[str, Any]:
        def artifact(a: dict[str, Any]) -> dict[str, Any]:
            out = {
                "name": a["name"],
                "location": {
                    "type": "S3",
                    "s3Location": {"bucketName": a["bucket"], "objectKey": a["key"]},
                },
            }
            if a.get("revision"):
                out["revision"] = a["revision"]
            return out

        data: dict[str, Any] = {
            "actionTypeId": ar.type_id,
            "actionConfiguration": {"configuration": dict(ar.action.get("configuration") or {})},
            "pipelineContext": {
                "pipelineName": run.name,
                "stage": {"name": ar.stage},
                "action": {"name": ar.name, "actionExecutionId": ar.action_execution_id},
                "pipelineArn": run.pipeline._arn,
                "pipelineExecutionId": run.execution_id,
            },
            "inputArtifacts": [artifact(a) for a in ar.input_artifacts],
            "outputArtifacts": [artifact(a) for a in ar.output_artifacts],
            # Dummy, but shaped like STS session credentials: tests check they never leak.
            "artifactCredentials": {
                "accessKeyId": "ASIA" + "".join(random.choices(string.ascii_uppercase + string.digits, k=16)),
                "secretAccessKey": "".join(random.choices(string.ascii_letters + string.digits, k=40)),
                "sessionToken": "LocalStackSessionToken/" + uuid.uuid4().hex,
            },
        }
        key = run.store().get("encryptionKey")
        if key:
            data["encryptionKey"] = key
        return data

    def _complete(
        self,
        ar: ActionRun,
        status: str,
        summary: str | None = None,
        error: tuple[str, str] | None = None,
    ) -> None:
        ar.status = status
        ar.last_status_change = _now()
        if summary is not None:
            ar.summary = summary
        if error:
            ar.error_details = {"code": error[0], "message": error[1]}
        self._emit(ar, status.upper())

    def _emit(self, ar: ActionRun, state: str) -> None:
        run = ar.run
        type_id = ar.type_id
        detail: dict[str, Any] = {
            "pipeline": run.name,
            "version": float(run.definition.get("version", 1)),
            "execution-id": run.execution_id,
            "stage": ar.stage,
            "action": ar.name,
            "state": state,
            "region": self.region,
            "type": {
                "owner": type_id["owner"],
                "category": type_id["category"],
                "provider": type_id["provider"],
                "version": str(type_id["version"]),
            },
            "pipeline-execution-attempt": 1.0,
        }
        if state == "STARTED":
            detail["input-artifacts"] = [
                {"name": a["name"], "s3location": {"bucket": a["bucket"], "key": a["key"]}}
                for a in ar.input_artifacts
            ]
        else:
            result: dict[str, Any] = {}
            if ar.external_execution_id:
                result["external-execution-id"] = ar.external_execution_id
            if ar.external_execution_url:
                result["external-execution-url"] = ar.external_execution_url
            if ar.summary:
                result["external-execution-summary"] = ar.summary
            if state == "FAILED":
                result["external-execution-state"] = "FAILED"
                if ar.error_details:
                    result["error-code"] = ar.error_details["code"]
            detail["execution-result"] = result
            if state == "SUCCEEDED":
                detail["output-artifacts"] = [
                    {"name": a["name"], "s3location": {"bucket": a["bucket"], "key": a["key"]}}
                    for a in ar.output_artifacts
                ]
        BUS.publish(
            envelope(
                "aws.codepipeline",
                "CodePipeline Action Execution State Change",
                detail,
                [run.pipeline._arn],
                self.region,
                self.account_id,
            )
        )
        for hook in list(ACTION_STATE_HOOKS):
            try:
                hook(state, ar)
            except Exception:
                import traceback

                traceback.print_exc()

    # ----------------------------------------------------------------- job API
    def job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id or "")
        if job is None:
            raise _Err("JobNotFoundException", f"Job {job_id} not found")
        return job

    def _execution_url(self, ar: ActionRun) -> str | None:
        action_type = self.action_types.get(_type_key(ar.type_id))
        template = (action_type.settings if action_type else {}).get("executionUrlTemplate")
        if not template or not ar.external_execution_id:
            return None
        url = template.replace("{ExternalExecutionId}", ar.external_execution_id)
        for name, value in (ar.action.get("configuration") or {}).items():
            url = url.replace("{Config:" + name + "}", str(value))
        return url

    def _answerable(self, job: Job) -> None:
        if job.status not in ("Dispatched", "InProgress"):
            raise _Err(
                "InvalidJobStateException",
                f"Job {job.id} is in state {job.status} and cannot be updated",
            )

    def put_success(self, job: Job, params: dict[str, Any]) -> None:
        self._answerable(job)
        token = params.get("continuationToken")
        if token is not None and not (1 <= len(token) <= 2048):
            raise _Err("ValidationException", "continuationToken must be 1 to 2048 characters")
        ar = job.action_run
        details = params.get("executionDetails") or {}
        if details.get("summary") is not None:
            ar.summary = details["summary"]
        if details.get("externalExecutionId") is not None:
            ar.external_execution_id = details["externalExecutionId"]
            ar.external_execution_url = self._execution_url(ar)
        if details.get("percentComplete") is not None:
            ar.percent_complete = details["percentComplete"]
        job.status = "Succeeded"
        if ar.status != "InProgress":
            return  # the run was stopped or failed elsewhere: nothing more to do
        if token is not None:
            data = json.loads(json.dumps(job.data))
            data["continuationToken"] = token
            new_job = Job(ar, data, self.account_id)
            ar.jobs.append(new_job)
            self.jobs[new_job.id] = new_job
            ar.last_status_change = _now()
            return
        self._complete(ar, "Succeeded")
        run = ar.run
        for out in ar.output_artifacts:
            run.artifacts[out["name"]] = {"bucket": out["bucket"], "key": out["key"]}
        self._advance(run)

    def put_failure(self, job: Job, params: dict[str, Any]) -> None:
        self._answerable(job)
        details = params.get("failureDetails") or {}
        if details.get("type") not in (
            "JobFailed",
            "ConfigurationError",
            "PermissionError",
            "RevisionOutOfSync",
            "RevisionUnavailable",
            "SystemUnavailable",
        ):
            raise _Err("ValidationException", "failureDetails.type is not a valid FailureType")
        if not details.get("message"):
            raise _Err("ValidationException", "failureDetails.message is required")
        ar = job.action_run
        job.status = "Failed"
        if details.get("externalExecutionId"):
            ar.external_execution_id = details["externalExecutionId"]
            ar.external_execution_url = self._execution_url(ar)
        if ar.status != "InProgress":
            return
        self._complete(ar, "Failed", summary=details["message"], error=(details["type"], details["message"]))
        self._advance(ar.run)


    # ----------------------------------------------------------------- stopping runs
    def stop_run(self, run: PipelineRun, abandon: bool, reason: str) -> None:
        """StopPipelineExecution: "stop and abandon" marks the in-progress actions Abandoned and
        stops the run at once (their jobs stay as they are: a worker is told nothing); "stop and
        wait" lets them finish and stops the run after them."""
        if run.execution.status == "Stopping" and not abandon:
            raise _Err("DuplicatedStopRequestException", f"Execution {run.execution_id} is already stopping")
        if run.execution.status not in ("InProgress", "Stopping"):
            raise _Err("PipelineExecutionNotStoppableException",
                       f"Execution {run.execution_id} is {run.execution.status} and cannot be stopped")
        run.execution.status_summary = reason or None
        if abandon:
            for ar in run.actions.values():
                if ar.status == "InProgress":
                    ar.status = "Abandoned"
                    ar.last_status_change = _now()
                    run.stage_status[ar.stage] = "Stopped"
            self._finish_run(run, "Stopped", reason or None)
            return
        run.execution.status = "Stopping"
        self._advance(run)

    def retry_stage(self, run: PipelineRun, stage_name: str, retry_mode: str) -> None:
        """RetryStageExecution in the same pipeline execution: a stage that failed or was stopped
        runs again, its failed (FAILED_ACTIONS: Failed or Abandoned) or all (ALL_ACTIONS) actions
        as new action executions, with new jobs for custom actions; the run goes on from there. The
        replaced action executions stay listed (ListActionExecutions)."""
        if retry_mode not in ("FAILED_ACTIONS", "ALL_ACTIONS"):
            raise _Err("ValidationException", f"retryMode must be FAILED_ACTIONS or ALL_ACTIONS, not {retry_mode!r}")
        names = [st["name"] for st in run.definition["stages"]]
        if stage_name not in names:
            raise _Err("StageNotFoundException", f"Stage {stage_name} not found in pipeline {run.name}")
        if run.execution.status not in ("Failed", "Stopped") or run.stage_status.get(stage_name) not in ("Failed", "Stopped"):
            raise _Err("StageNotRetryableException",
                       f"Stage {stage_name} of execution {run.execution_id} is {run.stage_status.get(stage_name)} "
                       f"(execution {run.execution.status}): only a failed or stopped stage can be retried")
        again = ("Failed", "Abandoned") if retry_mode == "FAILED_ACTIONS" else None
        for key in [k for k, ar in run.actions.items() if k[0] == stage_name]:
            if again is None or run.actions[key].status in again:
                run.retried.append(run.actions.pop(key))
        run.stage_index = names.index(stage_name)
        run.stage_status[stage_name] = "InProgress"
        run.execution.status = "InProgress"
        run.execution.status_summary = None
        self._advance(run)

    def action_executions(self, pipeline: Any, execution_id: str | None) -> list[dict[str, Any]]:
        """ListActionExecutions' details, most recent first."""
        out = []
        for run in self.runs.values():
            if run.pipeline is not pipeline or (execution_id and run.execution_id != execution_id):
                continue
            for ar in [*run.retried, *run.actions.values()]:
                detail: dict[str, Any] = {
                    "pipelineExecutionId": run.execution_id,
                    "actionExecutionId": ar.action_execution_id,
                    "pipelineVersion": run.definition.get("version", 1),
                    "stageName": ar.stage,
                    "actionName": ar.name,
                    "startTime": ar.start_time,
                    "lastUpdateTime": ar.last_status_change,
                    "status": ar.status,
                    "input": {"actionTypeId": ar.type_id, "configuration": ar.action.get("configuration") or {}},
                    "output": {"executionResult": {k: v for k, v in (
                        ("externalExecutionId", ar.external_execution_id),
                        ("externalExecutionSummary", ar.summary),
                        ("externalExecutionUrl", ar.external_execution_url)) if v is not None}},
                }
                out.append(detail)
        return sorted(out, key=lambda d: d["startTime"], reverse=True)


STATES: dict[tuple[str, str], JobState] = {}


def job_listing() -> list[dict[str, Any]]:
    """Every job of every account and region with its status (test API: GET /_ec2build/jobs).
    CodePipeline has no such call; tests use it to tell a job never polled (Queued) from one
    polled and never acknowledged (Dispatched) or acknowledged and never answered (InProgress)."""
    with LOCK:
        out = []
        for st in STATES.values():
            for job in sorted(st.jobs.values(), key=lambda j: j.created):
                ctx = job.data.get("pipelineContext") or {}
                out.append(
                    {
                        "id": job.id,
                        "status": job.status,
                        "continuationToken": job.data.get("continuationToken"),
                        "actionTypeId": job.data.get("actionTypeId"),
                        "pipelineName": ctx.get("pipelineName"),
                        "pipelineExecutionId": ctx.get("pipelineExecutionId"),
                        "created": job.created,
                    }
                )
        return out


def state_for(account_id: str, region: str) -> JobState:
    with LOCK:
        key = (account_id, region)
        if key not in STATES:
            STATES[key] = JobState(account_id, region)
        return STATES[key]


# --------------------------------------------------------------------- responses
def _st(self: CodePipelineResponse) -> JobState:
    return state_for(self.current_account, self.region)


def create_custom_action_type(self: CodePipelineResponse) -> str:
    params = json.loads(self.body or "{}")
    for field in ("category", "provider", "version", "inputArtifactDetails", "outputArtifactDetails"):
        if field not in params:
            raise _Err("ValidationException", f"{field} is required")
    action_type = CustomActionType(params)
    with LOCK:
        st = _st(self)
        key = _type_key(action_type.id)
        if key in st.action_types:
            raise _Err(
                "InvalidStructureException",
                f"ActionType {action_type.id} already exists",
            )
        st.action_types[key] = action_type
    return json.dumps({"actionType": action_type.to_dict(), "tags": action_type.tags})


def delete_custom_action_type(self: CodePipelineResponse) -> str:
    params = json.loads(self.body or "{}")
    with LOCK:
        st = _st(self)
        key = (params.get("category"), "Custom", params.get("provider"), str(params.get("version")))
        st.action_types.pop(key, None)
    return ""


def list_action_types(self: CodePipelineResponse) -> str:
    params = json.loads(self.body or "{}")
    owner = params.get("actionOwnerFilter")
    with LOCK:
        types = [t.to_dict() for t in _st(self).action_types.values()]
    if owner and owner != "Custom":
        types = []
    return json.dumps({"actionTypes": types})


def poll_for_jobs(self: CodePipelineResponse) -> str:
    params = json.loads(self.body or "{}")
    type_id = params.get("actionTypeId") or {}
    max_batch = int(params.get("maxBatchSize") or 1)
    if not 1 <= max_batch <= 100:
        raise _Err("ValidationException", "maxBatchSize must be between 1 and 100")
    query = params.get("queryParam") or {}
    with LOCK:
        st = _st(self)
        try:
            key = _type_key(type_id)
        except KeyError:
            raise _Err("ValidationException", "actionTypeId is incomplete")
        if key not in st.action_types:
            raise _Err("ActionTypeNotFoundException", f"ActionType {type_id} not found")
        out = []
        for job in sorted(st.jobs.values(), key=lambda j: j.created):
            if len(out) >= max_batch:
                break
            if job.status != "Queued" or _type_key(job.data["actionTypeId"]) != key:
                continue
            cfg = job.data["actionConfiguration"]["configuration"]
            if any(cfg.get(k) != v for k, v in query.items()):
                continue
            job.status = "Dispatched"
            job.nonce = str(random.randint(1, 2**31))
            out.append(job.to_dict(with_nonce=True))
    return json.dumps({"jobs": out})


def acknowledge_job(self: CodePipelineResponse) -> str:
    params = json.loads(self.body or "{}")
    with LOCK:
        job = _st(self).job(params.get("jobId"))
        if job.nonce is None or params.get("nonce") != job.nonce:
            raise _Err("InvalidNonceException", "The nonce was specified in an invalid format")
        if job.status == "Dispatched":
            job.status = "InProgress"
        return json.dumps({"status": job.status})


def get_job_details(self: CodePipelineResponse) -> str:
    params = json.loads(self.body or "{}")
    with LOCK:
        job = _st(self).job(params.get("jobId"))
        return json.dumps({"jobDetails": job.to_dict(with_nonce=False)})


def put_job_success_result(self: CodePipelineResponse) -> str:
    params = json.loads(self.body or "{}")
    with LOCK:
        st = _st(self)
        st.put_success(st.job(params.get("jobId")), params)
    return ""


def put_job_failure_result(self: CodePipelineResponse) -> str:
    params = json.loads(self.body or "{}")
    with LOCK:
        st = _st(self)
        st.put_failure(st.job(params.get("jobId")), params)
    return ""


def get_pipeline_state(self: CodePipelineResponse) -> str:
    params = json.loads(self.body or "{}")
    name = params.get("name")
    backend = self.codepipeline_backend
    with LOCK:
        pipeline = backend.pipelines.get(name)
        if pipeline is None:
            raise _Err("PipelineNotFoundException", f"Account '{backend.account_id}' does not have a pipeline with name '{name}'")
        runs = [r for r in _st(self).runs.values() if r.pipeline is pipeline]
        stage_states = []
        for stage in pipeline.pipeline["stages"]:
            stage_name = stage["name"]
            latest_run = next((r for r in reversed(runs) if stage_name in r.stage_status), None)
            action_states = []
            for action in stage["actions"]:
                state: dict[str, Any] = {"actionName": action["name"]}
                ar = next(
                    (r.actions[(stage_name, action["name"])] for r in reversed(runs) if (stage_name, action["name"]) in r.actions),
                    None,
                )
                if ar is not None:
                    state["latestExecution"] = ar.latest_execution()
                action_states.append(state)
            entry: dict[str, Any] = {
                "stageName": stage_name,
                "inboundTransitionState": {"enabled": True},
                "actionStates": action_states,
            }
            if latest_run is not None:
                entry["latestExecution"] = {
                    "pipelineExecutionId": latest_run.execution_id,
                    "status": latest_run.stage_status[stage_name],
                }
            stage_states.append(entry)
        return json.dumps(
            {
                "pipelineName": name,
                "pipelineVersion": pipeline.pipeline["version"],
                "stageStates": stage_states,
                "created": pipeline._created.timestamp(),
                "updated": pipeline._updated.timestamp(),
            }
        )


def _pipeline(self: CodePipelineResponse, name: str | None) -> Any:
    backend = self.codepipeline_backend
    pipeline = backend.pipelines.get(name)
    if pipeline is None:
        raise _Err("PipelineNotFoundException", f"Account '{backend.account_id}' does not have a pipeline with name '{name}'")
    return pipeline


def _run(self: CodePipelineResponse, pipeline: Any, execution_id: str | None) -> PipelineRun:
    run = _st(self).runs.get(execution_id or "")
    if run is None or run.pipeline is not pipeline:
        raise _Err("PipelineExecutionNotFoundException", f"Pipeline execution {execution_id} not found")
    return run


def stop_pipeline_execution(self: CodePipelineResponse) -> str:
    params = json.loads(self.body or "{}")
    with LOCK:
        pipeline = _pipeline(self, params.get("pipelineName"))
        run = _run(self, pipeline, params.get("pipelineExecutionId"))
        _st(self).stop_run(run, bool(params.get("abandon")), params.get("reason") or "")
        return json.dumps({"pipelineExecutionId": run.execution_id})


def retry_stage_execution(self: CodePipelineResponse) -> str:
    params = json.loads(self.body or "{}")
    with LOCK:
        pipeline = _pipeline(self, params.get("pipelineName"))
        run = _run(self, pipeline, params.get("pipelineExecutionId"))
        _st(self).retry_stage(run, params.get("stageName") or "", params.get("retryMode") or "")
        return json.dumps({"pipelineExecutionId": run.execution_id})


def get_pipeline_execution(self: CodePipelineResponse) -> str:
    params = json.loads(self.body or "{}")
    with LOCK:
        pipeline = _pipeline(self, params.get("pipelineName"))
        run = _run(self, pipeline, params.get("pipelineExecutionId"))
        execution: dict[str, Any] = {
            "pipelineName": run.name,
            "pipelineVersion": run.definition.get("version", 1),
            "pipelineExecutionId": run.execution_id,
            "status": run.execution.status,
            "artifactRevisions": [],
        }
        if getattr(run.execution, "status_summary", None):
            execution["statusSummary"] = run.execution.status_summary
        return json.dumps({"pipelineExecution": execution})


def list_action_executions(self: CodePipelineResponse) -> str:
    params = json.loads(self.body or "{}")
    with LOCK:
        pipeline = _pipeline(self, params.get("pipelineName"))
        execution_id = (params.get("filter") or {}).get("pipelineExecutionId")
        details = _st(self).action_executions(pipeline, execution_id)
    start = int(params.get("nextToken") or 0)
    size = int(params.get("maxResults") or 100)
    out: dict[str, Any] = {"actionExecutionDetails": details[start:start + size]}
    if start + size < len(details):
        out["nextToken"] = str(start + size)
    return json.dumps(out)


def apply() -> None:
    for fn in (
        stop_pipeline_execution,
        retry_stage_execution,
        get_pipeline_execution,
        list_action_executions,
        create_custom_action_type,
        delete_custom_action_type,
        list_action_types,
        poll_for_jobs,
        acknowledge_job,
        get_job_details,
        put_job_success_result,
        put_job_failure_result,
        get_pipeline_state,
    ):
        setattr(CodePipelineResponse, fn.__name__, fn)

    # moto writes ISO strings for CodePipeline timestamps; awsJson1_1 clients (the Rust
    # SDK in particular) expect epoch seconds.
    cp_models.iso_8601_datetime_with_milliseconds = lambda dt: dt.timestamp()

    backend_cls = cp_models.CodePipelineBackend
    original_start = backend_cls.start_pipeline_execution
    original_create = backend_cls.create_pipeline

    def start_pipeline_execution(self: Any, name: str, variables: Any) -> str:
        with LOCK:
            execution_id = original_start(self, name, variables)
            pipeline = self.pipelines[name]
            state_for(self.account_id, self.region_name).start_run(pipeline, pipeline.executions[execution_id])
            return execution_id

    def create_pipeline(self: Any, pipeline: Any, tags: Any) -> Any:
        with LOCK:
            result = original_create(self, pipeline, tags)
            # AWS starts a new pipeline once, right after creation.
            start_pipeline_execution(self, pipeline["name"], None)
            return result

    backend_cls.start_pipeline_execution = start_pipeline_execution
    backend_cls.create_pipeline = create_pipeline
