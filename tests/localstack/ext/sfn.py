"""Step Functions: execution on, the JSONPath fix, and execution status change events."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import sys
from typing import Any

from .events import BUS, envelope

# A "definite" JSONPath: only $.name, $['name'] and [n] steps. AWS returns the single
# value it designates; moto 5.2.5 wraps it in a list when an index precedes a field
# ($.Instances[0].InstanceId -> ["i-..."]).
_DEFINITE = re.compile(r"^\$(?:\.[A-Za-z_$][\w$-]*|\['[^']*'\]|\[\d+\])*$")


def _epoch_ms(value: Any) -> int | None:
    if value is None:
        return None
    return int(value.timestamp() * 1000)


def _status_event(execution: Any) -> None:
    status = execution.exec_status.value if execution.exec_status else "RUNNING"
    arn = execution.exec_arn
    sm_arn = getattr(execution, "state_machine_arn", None)
    # Versions/aliases: report the state machine itself, as AWS does in this event.
    source_arn = getattr(execution.state_machine, "source_arn", None)
    if source_arn:
        sm_arn = source_arn
    output = None
    if status == "SUCCEEDED":
        output = json.dumps(execution.output, separators=(",", ":"))
    detail = {
        "executionArn": arn,
        "stateMachineArn": sm_arn,
        "name": execution.name,
        "status": status,
        "startDate": _epoch_ms(execution.start_date),
        "stopDate": _epoch_ms(execution.stop_date) if status != "RUNNING" else None,
        "input": json.dumps(execution.input_data, separators=(",", ":")),
        "output": output,
        "inputDetails": {"included": True},
        "outputDetails": {"included": True} if output is not None else None,
        "error": execution.error if status != "RUNNING" else None,
        "cause": execution.cause if status != "RUNNING" else None,
    }
    BUS.publish(
        envelope(
            "aws.states",
            "Step Functions Execution Status Change",
            detail,
            [arn],
            execution.region_name,
            execution.account_id,
        )
    )


def apply() -> None:
    from moto.core.config import default_user_config

    default_user_config["stepfunctions"] = {"execute_state_machine": True}

    # --- JSONPath fix ------------------------------------------------------------
    import moto.stepfunctions.parser as parser_pkg
    from moto.stepfunctions.parser.asl.utils import json_path

    original = json_path.extract_json

    def extract_json(path: str, data: Any) -> Any:
        if _DEFINITE.match(path.strip()):
            matches = json_path.parse(path).find(data)
            if len(matches) == 1:
                return matches[0].value
        return original(path, data)

    json_path.extract_json = extract_json
    # Modules import the function by name: load them all now and rebind.
    for info in pkgutil.walk_packages(parser_pkg.__path__, parser_pkg.__name__ + "."):
        if ".antlr" in info.name or ".resource_providers" in info.name:
            continue
        try:
            importlib.import_module(info.name)
        except Exception:
            continue
    for module in list(sys.modules.values()):
        name = getattr(module, "__name__", "")
        if name.startswith("moto.stepfunctions") and getattr(module, "extract_json", None) is original:
            module.extract_json = extract_json

    # --- SendTaskFailure: moto 5.2.5's response handler drops `cause` -------------------
    from moto.core.responses import EmptyResult
    from moto.stepfunctions.responses import StepFunctionResponse

    def send_task_failure(self: Any) -> Any:
        self.stepfunction_backend.send_task_failure(
            self._get_param("taskToken"), error=self._get_param("error"), cause=self._get_param("cause")
        )
        return EmptyResult()

    StepFunctionResponse.send_task_failure = send_task_failure

    # --- StopExecution's error and cause: moto 5.2.5 drops them -------------------------
    # AWS keeps them on the execution, and DescribeExecution returns them for the ABORTED
    # execution (measured against AWS in floci-io/floci#2782).
    from moto.core.utils import utcnow
    from moto.stepfunctions import models as sfn_models
    from moto.stepfunctions.exceptions import ExecutionDoesNotExist
    from moto.stepfunctions.responses import ActionResult

    def stop_state_machine_execution(self: Any, execution_arn: str, error: str | None = None,
                                     cause: str | None = None) -> Any:
        execution = next((x for x in self.executions if x.execution_arn == execution_arn), None)
        if not execution:
            raise ExecutionDoesNotExist("Execution Does Not Exist: '" + execution_arn + "'")
        if str(getattr(execution, "exec_status", getattr(execution, "status", ""))).endswith("RUNNING"):
            execution.error, execution.cause = error, cause
        execution.stop(stop_date=utcnow(), error=error or "", cause=cause or "")
        return execution

    sfn_models.StateMachine.stop_execution = stop_state_machine_execution

    def stop_execution(self: Any) -> Any:
        arn = self._get_param("executionArn")
        backend = self.stepfunction_backend
        backend._validate_execution_arn(arn)
        execution = backend._get_state_machine_for_execution(arn).stop_execution(
            arn, error=self._get_param("error"), cause=self._get_param("cause"))
        return ActionResult({"stopDate": execution.stop_date})

    StepFunctionResponse.stop_execution = stop_execution

    # --- GetExecutionHistory: moto 5.2.5 ignores reverseOrder, maxResults and nextToken -----
    def get_execution_history(self: Any) -> Any:
        history = self.stepfunction_backend.get_execution_history(self._get_param("executionArn"))
        events = list(history.get("events", []))
        if self._get_param("reverseOrder"):
            events.reverse()
        start = int(self._get_param("nextToken") or 0)
        size = int(self._get_param("maxResults") or 100)
        out = {"events": events[start:start + size]}
        if start + size < len(events):
            out["nextToken"] = str(start + size)
        return ActionResult(out)

    StepFunctionResponse.get_execution_history = get_execution_history

    # --- StopExecution during a .waitForTaskToken task ----------------------------------
    # moto 5.2.5: stopping ends the task's wait, the task fails (States.Timeout) and
    # Environment.set_error overwrites the stopped state, so the execution ends FAILED instead
    # of ABORTED. On AWS a stopped execution is ABORTED whatever state it was in: keep the stop.
    from moto.stepfunctions.parser.asl.eval import environment as env_mod
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped

    original_set_error = env_mod.Environment.set_error

    def set_error(self: Any, error: Any) -> None:
        if isinstance(self._program_state, ProgramStopped):
            return
        original_set_error(self, error)

    env_mod.Environment.set_error = set_error

    # moto 5.2.5: a stop does not wake a task waiting for its token with a heartbeat, so the
    # execution stays RUNNING until the next heartbeat or the heartbeat timeout. On AWS a
    # stopped execution is ABORTED at once, whatever its task waits for.
    original_set_stop = env_mod.Environment.set_stop

    def set_stop(self: Any, stop_date: Any, cause: Any, error: Any) -> None:
        original_set_stop(self, stop_date=stop_date, cause=cause, error=error)
        for endpoint in list(self.callback_pool_manager._pool.values()):
            interrupt = getattr(endpoint, "interrupt_all", None)
            if interrupt is not None:
                interrupt()

    env_mod.Environment.set_stop = set_stop

    # --- status change events ------------------------------------------------------
    from moto.stepfunctions.parser.backend import execution as ex

    def start(self: Any) -> None:
        # moto's Execution.start, with the RUNNING event published before the worker
        # thread starts, so it always precedes the terminal event.
        if self.exec_worker:
            raise ex.InvalidName()
        self.exec_worker = self._get_start_execution_worker()
        self.exec_status = ex.ExecutionStatus.RUNNING
        _status_event(self)
        self.exec_worker.start()

    ex.Execution.start = start

    original_terminated = ex.BaseExecutionWorkerCommunication.terminated

    def terminated(self: Any) -> None:
        original_terminated(self)
        _status_event(self.execution)

    ex.BaseExecutionWorkerCommunication.terminated = terminated
