"""Step Functions on the local stack: execution on, the JSONPath fix, status change events."""

from __future__ import annotations

import json

from tests.localstack.helpers import amis, wait_until

ROLE = "arn:aws:iam::123456789012:role/sfn"


def _machine(stack, name, definition):
    sfn = stack.client("stepfunctions")
    return sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)["stateMachineArn"]


def _finished(stack, arn, timeout=20):
    sfn = stack.client("stepfunctions")
    return wait_until(
        lambda: (lambda d: d if d["status"] != "RUNNING" else None)(sfn.describe_execution(executionArn=arn)),
        timeout,
        what="execution to finish",
    )


def test_instance_id_jsonpath_yields_a_string(stack, unique):
    linux, _ = amis(stack)
    arn = _machine(
        stack,
        f"launch-{unique}",
        {
            "StartAt": "Launch",
            "States": {
                "Launch": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::aws-sdk:ec2:runInstances",
                    "Parameters": {"ImageId": linux, "InstanceType": "t3.micro", "MinCount": 1, "MaxCount": 1},
                    "ResultSelector": {"InstanceId.$": "$.Instances[0].InstanceId"},
                    "Next": "Shape",
                },
                "Shape": {
                    "Type": "Pass",
                    "Parameters": {"Id.$": "$.InstanceId", "Ids.$": "States.Array($.InstanceId)"},
                    "End": True,
                },
            },
        },
    )
    run = stack.client("stepfunctions").start_execution(stateMachineArn=arn, name="one", input="{}")
    done = _finished(stack, run["executionArn"])
    assert done["status"] == "SUCCEEDED", done
    output = json.loads(done["output"])
    assert isinstance(output["Id"], str) and output["Id"].startswith("i-")
    assert output["Ids"] == [output["Id"]]


def test_wildcards_still_yield_lists(stack, unique):
    arn = _machine(
        stack,
        f"paths-{unique}",
        {"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"All.$": "$.A[*].B", "One.$": "$.A[1].B"}, "End": True}}},
    )
    run = stack.client("stepfunctions").start_execution(stateMachineArn=arn, input=json.dumps({"A": [{"B": 1}, {"B": 2}]}))
    assert json.loads(_finished(stack, run["executionArn"])["output"]) == {"All": [1, 2], "One": 2}


def test_execution_status_change_events(stack, unique):
    ok = _machine(stack, f"ok-{unique}", {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"done": True}, "End": True}}})
    bad = _machine(stack, f"bad-{unique}", {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "BuildFailed", "Cause": "{\"Stage\":\"build\"}"}}})
    waiting = _machine(stack, f"wait-{unique}", {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 30, "End": True}}})
    sfn = stack.client("stepfunctions")
    ok_run = sfn.start_execution(stateMachineArn=ok, name="job-1", input='{"JobId": "job-1"}')
    bad_run = sfn.start_execution(stateMachineArn=bad, name="job-2", input="{}")
    wait_run = sfn.start_execution(stateMachineArn=waiting, name="job-3", input="{}")
    # Same name and input while running: the same execution, and no second RUNNING event.
    assert sfn.start_execution(stateMachineArn=waiting, name="job-3", input="{}")["executionArn"] == wait_run["executionArn"]
    wait_until(lambda: sfn.describe_execution(executionArn=wait_run["executionArn"])["status"] == "RUNNING", 5)
    sfn.stop_execution(executionArn=wait_run["executionArn"], error="Aborted", cause="test")

    def event(arn, status):
        pattern = {"source": ["aws.states"], "detail-type": ["Step Functions Execution Status Change"], "detail": {"executionArn": [arn], "status": [status]}}
        return stack.router.wait_for_event(pattern, timeout=10)[0]

    running = event(ok_run["executionArn"], "RUNNING")
    succeeded = event(ok_run["executionArn"], "SUCCEEDED")
    assert running["resources"] == [ok_run["executionArn"]]
    d = succeeded["detail"]
    assert d["stateMachineArn"] == ok and d["name"] == "job-1"
    assert d["input"] == '{"JobId":"job-1"}' and json.loads(d["output"]) == {"done": True}
    assert isinstance(d["startDate"], int) and d["stopDate"] >= d["startDate"]
    assert running["detail"]["stopDate"] is None and running["detail"]["output"] is None
    failed = event(bad_run["executionArn"], "FAILED")["detail"]
    assert failed["error"] == "BuildFailed" and json.loads(failed["cause"]) == {"Stage": "build"} and failed["output"] is None
    event(wait_run["executionArn"], "ABORTED")
    runs = [
        e for e in stack.router.received
        if e["source"] == "aws.states" and e["detail"]["executionArn"] == wait_run["executionArn"] and e["detail"]["status"] == "RUNNING"
    ]
    assert len(runs) == 1


def test_send_command_wait_for_task_token_round_trip(stack, unique):
    """The product's core pattern: the state machine waits; the script answers via the CLI."""
    linux, _ = amis(stack)
    instance = stack.client("ec2").run_instances(ImageId=linux, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    doc = f"answer-{unique}"
    content = {
        "schemaVersion": "2.2",
        "description": "answers the task token",
        "parameters": {
            "TaskToken": {"type": "String", "interpolationType": "ENV_VAR"},
            "Message": {"type": "String", "interpolationType": "ENV_VAR"},
        },
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": "answer",
                "precondition": {"StringEquals": ["platformType", "Linux"]},
                "inputs": {
                    "runCommand": [
                        "set -eu",
                        "out=$(python3 -c 'import json,os; print(json.dumps({\"Message\": os.environ[\"SSM_Message\"]}))')",
                        'aws stepfunctions send-task-success --task-token "$SSM_TaskToken" --task-output "$out"',
                    ]
                },
            }
        ],
    }
    stack.client("ssm").create_document(Content=json.dumps(content), Name=doc, DocumentType="Command")
    arn = _machine(
        stack,
        f"wait-token-{unique}",
        {
            "StartAt": "Run",
            "States": {
                "Run": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::aws-sdk:ssm:sendCommand.waitForTaskToken",
                    "Parameters": {
                        "DocumentName": doc,
                        "InstanceIds.$": "States.Array($.InstanceId)",
                        "Parameters": {"TaskToken.$": "States.Array($$.Task.Token)", "Message.$": "States.Array($.Message)"},
                    },
                    "TimeoutSeconds": 60,
                    "End": True,
                }
            },
        },
    )
    run = stack.client("stepfunctions").start_execution(
        stateMachineArn=arn, input=json.dumps({"InstanceId": instance, "Message": "built $(nothing)"})
    )
    done = _finished(stack, run["executionArn"], timeout=30)
    assert done["status"] == "SUCCEEDED", done
    assert json.loads(done["output"]) == {"Message": "built $(nothing)"}


def test_send_task_failure_keeps_the_cause(stack, unique):
    linux, _ = amis(stack)
    instance = stack.client("ec2").run_instances(ImageId=linux, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    doc = f"fail-{unique}"
    content = {
        "schemaVersion": "2.2",
        "description": "fails the task",
        "parameters": {"TaskToken": {"type": "String", "interpolationType": "ENV_VAR"}},
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": "fail",
                "inputs": {
                    "runCommand": [
                        'aws stepfunctions send-task-failure --task-token "$SSM_TaskToken" --error BuildFailed --cause \'{"Step": "build", "ExitCode": 2}\''
                    ]
                },
            }
        ],
    }
    stack.client("ssm").create_document(Content=json.dumps(content), Name=doc, DocumentType="Command")
    arn = _machine(
        stack,
        f"fail-token-{unique}",
        {
            "StartAt": "Run",
            "States": {
                "Run": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::aws-sdk:ssm:sendCommand.waitForTaskToken",
                    "Parameters": {
                        "DocumentName": doc,
                        "InstanceIds": [instance],
                        "Parameters": {"TaskToken.$": "States.Array($$.Task.Token)"},
                    },
                    "TimeoutSeconds": 60,
                    "End": True,
                }
            },
        },
    )
    run = stack.client("stepfunctions").start_execution(stateMachineArn=arn, input="{}")
    done = _finished(stack, run["executionArn"], timeout=30)
    assert done["status"] == "FAILED" and done["error"] == "BuildFailed", done
    assert json.loads(done["cause"]) == {"Step": "build", "ExitCode": 2}


def test_stop_execution_keeps_error_and_cause_and_a_second_stop_changes_nothing(stack, unique):
    arn = _machine(stack, f"stop-{unique}", {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 60, "End": True}}})
    sfn = stack.client("stepfunctions")
    run = sfn.start_execution(stateMachineArn=arn, input="{}")
    sfn.stop_execution(executionArn=run["executionArn"], error="InstanceLost", cause="i-1 is Terminated")
    done = _finished(stack, run["executionArn"])
    assert (done["status"], done["error"], done["cause"]) == ("ABORTED", "InstanceLost", "i-1 is Terminated")
    sfn.stop_execution(executionArn=run["executionArn"], error="Other", cause="later")
    again = sfn.describe_execution(executionArn=run["executionArn"])
    assert (again["status"], again["error"]) == ("ABORTED", "InstanceLost")
    running = sfn.list_executions(stateMachineArn=arn, statusFilter="RUNNING")["executions"]
    assert running == []


def test_execution_history_pages_and_reverses(stack, unique):
    arn = _machine(stack, f"history-{unique}", {"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "C"}, "C": {"Type": "Pass", "End": True}}})
    sfn = stack.client("stepfunctions")
    run = sfn.start_execution(stateMachineArn=arn, input="{}")
    _finished(stack, run["executionArn"])
    forward = sfn.get_execution_history(executionArn=run["executionArn"], maxResults=1000)["events"]
    last = sfn.get_execution_history(executionArn=run["executionArn"], reverseOrder=True, maxResults=3)
    assert [e["id"] for e in last["events"]] == [e["id"] for e in reversed(forward)][:3]
    assert last["nextToken"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in last["events"] if "stateEnteredEventDetails" in e]
    assert entered in ([], ["C"]), entered
    pages = []
    token = None
    while True:
        page = sfn.get_execution_history(executionArn=run["executionArn"], maxResults=2, **({"nextToken": token} if token else {}))
        pages.extend(page["events"])
        token = page.get("nextToken")
        if not token:
            break
    assert [e["id"] for e in pages] == [e["id"] for e in forward]
