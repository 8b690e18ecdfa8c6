"""The emulated CodePipeline job worker API, through boto3 and the AWS CLI."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.localstack.helpers import (
    custom_action_type,
    custom_stage,
    poll_one,
    s3_source_pipeline,
    wait_until,
    zip_bytes,
)


def _setup(stack, unique, stages=None, kms=None, provider=None):
    provider = provider or f"Build{unique}"
    action_type = custom_action_type(
        stack,
        provider,
        executionUrlTemplate="https://console.example/executions/{ExternalExecutionId}?cmd={Config:Command}",
    )
    src_bucket = f"src-{unique}"
    s3 = stack.client("s3")
    s3.create_bucket(Bucket=src_bucket)
    s3.put_object(Bucket=src_bucket, Key="app.zip", Body=zip_bytes({"build.sh": "echo hi\n"}))
    stages = stages or [custom_stage("Build", "EC2Build", provider, ["SourceOutput"], ["BuildOutput"], {"Command": "make"})]
    pipeline = s3_source_pipeline(stack, f"p-{unique}", src_bucket, "app.zip", stages, kms_key_id=kms)
    return action_type["id"], pipeline


def test_custom_action_type_is_listed(stack, unique):
    type_id, _ = _setup(stack, unique)
    cp = stack.client("codepipeline")
    listed = cp.list_action_types(actionOwnerFilter="Custom")["actionTypes"]
    assert any(t["id"] == type_id for t in listed)
    with pytest.raises(ClientError) as err:
        custom_action_type(stack, type_id["provider"])
    assert err.value.response["Error"]["Code"] == "InvalidStructureException"


def test_pipeline_creation_queues_a_job_with_artifacts_in_the_store(stack, unique):
    type_id, pipeline = _setup(stack, unique, kms="arn:aws:kms:us-east-1:123456789012:key/abc")
    job = poll_one(stack, type_id)
    data = job["data"]
    assert job["nonce"] and job["accountId"] == "123456789012"
    assert data["actionTypeId"] == type_id
    assert data["actionConfiguration"]["configuration"] == {"Command": "make"}
    ctx = data["pipelineContext"]
    assert ctx["pipelineName"] == pipeline["name"] and ctx["stage"]["name"] == "Build"
    assert ctx["action"]["name"] == "EC2Build" and ctx["action"]["actionExecutionId"]
    (inp,) = data["inputArtifacts"]
    (out,) = data["outputArtifacts"]
    store = f"p-{unique}-artifacts"
    assert inp["name"] == "SourceOutput" and inp["location"]["s3Location"]["bucketName"] == store
    assert out["name"] == "BuildOutput" and out["location"]["s3Location"]["bucketName"] == store
    assert inp["location"]["s3Location"]["objectKey"].startswith(f"p-{unique}/SourceOutp/")
    # The S3 source was copied into the artifact store, as CodePipeline does.
    body = stack.client("s3").get_object(Bucket=store, Key=inp["location"]["s3Location"]["objectKey"])["Body"].read()
    assert body == zip_bytes({"build.sh": "echo hi\n"}) or body.startswith(b"PK")
    creds = data["artifactCredentials"]
    assert creds["accessKeyId"].startswith("ASIA") and creds["secretAccessKey"] and creds["sessionToken"]
    assert data["encryptionKey"] == {"id": "arn:aws:kms:us-east-1:123456789012:key/abc", "type": "KMS"}
    # Dispatched jobs are not handed out again.
    assert stack.client("codepipeline").poll_for_jobs(actionTypeId=type_id)["jobs"] == []


def test_nonce_is_checked_and_ack_moves_to_in_progress(stack, unique):
    type_id, _ = _setup(stack, unique)
    cp = stack.client("codepipeline")
    job = poll_one(stack, type_id)
    with pytest.raises(ClientError) as err:
        cp.acknowledge_job(jobId=job["id"], nonce="not-the-nonce")
    assert err.value.response["Error"]["Code"] == "InvalidNonceException"
    assert cp.acknowledge_job(jobId=job["id"], nonce=job["nonce"])["status"] == "InProgress"
    with pytest.raises(ClientError) as err:
        cp.acknowledge_job(jobId="00000000-0000-0000-0000-000000000000", nonce="1")
    assert err.value.response["Error"]["Code"] == "JobNotFoundException"


def test_continuation_then_success_moves_the_pipeline_on(stack, unique):
    provider = f"Build{unique}"
    stages = [
        custom_stage("Build", "EC2Build", provider, ["SourceOutput"], ["BuildOutput"], {"Command": "make"}),
        custom_stage("Test", "EC2Test", provider, ["BuildOutput"], [], {"Command": "make test"}),
    ]
    type_id, pipeline = _setup(stack, unique, stages=stages, provider=provider)
    cp = stack.client("codepipeline")
    job = poll_one(stack, type_id)
    cp.acknowledge_job(jobId=job["id"], nonce=job["nonce"])
    cp.put_job_success_result(
        jobId=job["id"],
        continuationToken="arn:aws:states:us-east-1:123456789012:execution:build:" + job["id"],
        executionDetails={"summary": "Build started", "externalExecutionId": "exec-1", "percentComplete": 10},
    )
    with pytest.raises(ClientError) as err:  # answered twice
        cp.put_job_success_result(jobId=job["id"])
    assert err.value.response["Error"]["Code"] == "InvalidJobStateException"

    again = poll_one(stack, type_id)
    assert again["id"] != job["id"]
    assert again["data"]["continuationToken"].endswith(job["id"])
    assert again["data"]["pipelineContext"] == job["data"]["pipelineContext"]
    assert again["data"]["inputArtifacts"] == job["data"]["inputArtifacts"]
    state = cp.get_pipeline_state(name=pipeline["name"])
    build = state["stageStates"][1]["actionStates"][0]["latestExecution"]
    assert build["status"] == "InProgress" and build["summary"] == "Build started"
    assert build["externalExecutionUrl"] == "https://console.example/executions/exec-1?cmd=make"

    cp.acknowledge_job(jobId=again["id"], nonce=again["nonce"])
    cp.put_job_success_result(jobId=again["id"], executionDetails={"summary": "Build done", "externalExecutionId": "exec-1"})
    # The Test stage's job now exists, fed with the Build action's output artifact.
    test_job = poll_one(stack, type_id)
    assert test_job["data"]["pipelineContext"]["stage"]["name"] == "Test"
    assert test_job["data"]["inputArtifacts"][0]["location"] == job["data"]["outputArtifacts"][0]["location"]
    cp.acknowledge_job(jobId=test_job["id"], nonce=test_job["nonce"])
    cp.put_job_success_result(jobId=test_job["id"])
    execution_id = job["data"]["pipelineContext"]["pipelineExecutionId"]
    ex = cp.get_pipeline_execution(pipelineName=pipeline["name"], pipelineExecutionId=execution_id)["pipelineExecution"]
    assert ex["status"] == "Succeeded"
    state = cp.get_pipeline_state(name=pipeline["name"])
    assert [s["latestExecution"]["status"] for s in state["stageStates"]] == ["Succeeded", "Succeeded", "Succeeded"]
    assert state["stageStates"][1]["actionStates"][0]["latestExecution"]["summary"] == "Build done"


def test_failure_fails_the_action_and_the_execution(stack, unique):
    type_id, pipeline = _setup(stack, unique)
    cp = stack.client("codepipeline")
    job = poll_one(stack, type_id)
    cp.acknowledge_job(jobId=job["id"], nonce=job["nonce"])
    cp.put_job_failure_result(
        jobId=job["id"],
        failureDetails={"type": "JobFailed", "message": "build: exit code 2", "externalExecutionId": "exec-9"},
    )
    with pytest.raises(ClientError) as err:
        cp.put_job_failure_result(jobId=job["id"], failureDetails={"type": "JobFailed", "message": "again"})
    assert err.value.response["Error"]["Code"] == "InvalidJobStateException"
    action = cp.get_pipeline_state(name=pipeline["name"])["stageStates"][1]["actionStates"][0]["latestExecution"]
    assert action["status"] == "Failed"
    assert action["errorDetails"] == {"code": "JobFailed", "message": "build: exit code 2"}
    assert action["externalExecutionUrl"].startswith("https://console.example/executions/exec-9")
    execution_id = job["data"]["pipelineContext"]["pipelineExecutionId"]
    ex = cp.get_pipeline_execution(pipelineName=pipeline["name"], pipelineExecutionId=execution_id)["pipelineExecution"]
    assert ex["status"] == "Failed"


def test_start_pipeline_execution_queues_another_job_and_batch_size_is_respected(stack, unique):
    type_id, pipeline = _setup(stack, unique)
    cp = stack.client("codepipeline")
    cp.start_pipeline_execution(name=pipeline["name"])
    cp.start_pipeline_execution(name=pipeline["name"])
    first = cp.poll_for_jobs(actionTypeId=type_id, maxBatchSize=2)["jobs"]
    second = cp.poll_for_jobs(actionTypeId=type_id, maxBatchSize=2)["jobs"]
    assert len(first) == 2 and len(second) == 1
    ids = {j["data"]["pipelineContext"]["pipelineExecutionId"] for j in first + second}
    assert len(ids) == 3
    details = cp.get_job_details(jobId=second[0]["id"])["jobDetails"]
    assert details["id"] == second[0]["id"] and details["data"] == second[0]["data"] and "nonce" not in details


def test_missing_source_object_fails_the_source_action(stack, unique):
    provider = f"Build{unique}"
    custom_action_type(stack, provider)
    s3 = stack.client("s3")
    s3.create_bucket(Bucket=f"src-{unique}")
    pipeline = s3_source_pipeline(
        stack, f"p-{unique}", f"src-{unique}", "missing.zip", [custom_stage("Build", "EC2Build", provider, ["SourceOutput"], [])]
    )
    cp = stack.client("codepipeline")
    state = cp.get_pipeline_state(name=pipeline["name"])
    assert state["stageStates"][0]["actionStates"][0]["latestExecution"]["status"] == "Failed"
    assert cp.poll_for_jobs(actionTypeId={"category": "Build", "owner": "Custom", "provider": provider, "version": "1"})["jobs"] == []


def test_job_api_through_the_aws_cli(stack, unique):
    type_id, _ = _setup(stack, unique)
    type_arg = "category={category},owner={owner},provider={provider},version={version}".format(**type_id)
    polled = json.loads(stack.aws_cli("codepipeline", "poll-for-jobs", "--action-type-id", type_arg, "--max-batch-size", "1").stdout)
    (job,) = polled["jobs"]
    assert job["data"]["actionTypeId"] == type_id
    bad = stack.aws_cli("codepipeline", "acknowledge-job", "--job-id", job["id"], "--nonce", "0", check=False)
    assert bad.returncode != 0 and "InvalidNonceException" in bad.stderr
    ack = json.loads(stack.aws_cli("codepipeline", "acknowledge-job", "--job-id", job["id"], "--nonce", job["nonce"]).stdout)
    assert ack == {"status": "InProgress"}
    stack.aws_cli("codepipeline", "put-job-failure-result", "--job-id", job["id"], "--failure-details", "type=JobFailed,message=from the CLI")
    details = json.loads(stack.aws_cli("codepipeline", "get-job-details", "--job-id", job["id"]).stdout)
    assert details["jobDetails"]["id"] == job["id"]


def test_action_state_change_events(stack, unique):
    type_id, pipeline = _setup(stack, unique)
    base = {"source": ["aws.codepipeline"], "detail-type": ["CodePipeline Action Execution State Change"], "detail": {"pipeline": [pipeline["name"]]}}
    started = stack.router.wait_for_event({**base, "detail": {"pipeline": [pipeline["name"]], "state": ["STARTED"], "type": {"owner": ["Custom"]}}})[0]
    d = started["detail"]
    assert started["resources"] == [f"arn:aws:codepipeline:us-east-1:123456789012:{pipeline['name']}"]
    assert started["account"] == "123456789012" and started["region"] == "us-east-1" and started["version"] == "0"
    assert d["stage"] == "Build" and d["action"] == "EC2Build" and d["execution-id"]
    assert d["type"] == {"owner": "Custom", "category": "Build", "provider": type_id["provider"], "version": "1"}
    job = poll_one(stack, type_id)
    cp = stack.client("codepipeline")
    cp.acknowledge_job(jobId=job["id"], nonce=job["nonce"])
    cp.put_job_failure_result(jobId=job["id"], failureDetails={"type": "JobFailed", "message": "nope"})
    failed = stack.router.wait_for_event({**base, "detail": {"pipeline": [pipeline["name"]], "state": ["FAILED"]}})[0]
    assert failed["detail"]["execution-result"]["external-execution-summary"] == "nope"
    # The simulated S3 source action reported STARTED and SUCCEEDED as well.
    stack.router.wait_for_event({**base, "detail": {"pipeline": [pipeline["name"]], "action": ["Source"], "state": ["SUCCEEDED"]}})


def test_job_listing_shows_each_jobs_status(stack, unique):
    type_id, pipeline = _setup(stack, unique)
    cp = stack.client("codepipeline")
    wait_until(lambda: stack.jobs(pipeline["name"]), 10, what="the job")
    [queued] = stack.jobs(pipeline["name"])
    assert queued["status"] == "Queued" and queued["continuationToken"] is None and queued["actionTypeId"] == type_id
    job = poll_one(stack, type_id)
    assert job["id"] == queued["id"]
    assert [j["status"] for j in stack.jobs(pipeline["name"])] == ["Dispatched"]
    cp.acknowledge_job(jobId=job["id"], nonce=job["nonce"])
    assert [j["status"] for j in stack.jobs(pipeline["name"])] == ["InProgress"]
    cp.put_job_success_result(jobId=job["id"], continuationToken="token-1")
    listed = stack.jobs(pipeline["name"])
    assert [(j["status"], j["continuationToken"]) for j in listed] == [("Succeeded", None), ("Queued", "token-1")]
    assert listed[0]["pipelineExecutionId"] == listed[1]["pipelineExecutionId"] == job["data"]["pipelineContext"]["pipelineExecutionId"]
    assert stack.jobs("no-such-pipeline") == []


def test_stop_and_abandon_marks_the_action_abandoned_and_stops_the_run(stack, unique):
    type_id, pipeline = _setup(stack, unique)
    cp = stack.client("codepipeline")
    job = poll_one(stack, type_id)
    execution_id = job["data"]["pipelineContext"]["pipelineExecutionId"]
    (build,) = [d for d in cp.list_action_executions(pipelineName=pipeline["name"])["actionExecutionDetails"]
                if d["stageName"] == "Build"]
    assert build["status"] == "InProgress" and build["pipelineExecutionId"] == execution_id
    cp.stop_pipeline_execution(pipelineName=pipeline["name"], pipelineExecutionId=execution_id,
                               abandon=True, reason="wrong branch")
    execution = cp.get_pipeline_execution(pipelineName=pipeline["name"], pipelineExecutionId=execution_id)
    assert execution["pipelineExecution"]["status"] == "Stopped"
    filtered = cp.list_action_executions(pipelineName=pipeline["name"], filter={"pipelineExecutionId": execution_id})
    assert {d["actionName"]: d["status"] for d in filtered["actionExecutionDetails"]} == {"Source": "Succeeded", "EC2Build": "Abandoned"}
    with pytest.raises(ClientError) as err:
        cp.stop_pipeline_execution(pipelineName=pipeline["name"], pipelineExecutionId=execution_id, abandon=True)
    assert err.value.response["Error"]["Code"] == "PipelineExecutionNotStoppableException"


def test_stop_and_wait_lets_the_action_finish_then_stops(stack, unique):
    type_id, pipeline = _setup(stack, unique)
    cp = stack.client("codepipeline")
    job = poll_one(stack, type_id)
    execution_id = job["data"]["pipelineContext"]["pipelineExecutionId"]
    cp.stop_pipeline_execution(pipelineName=pipeline["name"], pipelineExecutionId=execution_id, abandon=False)
    status = lambda: cp.get_pipeline_execution(pipelineName=pipeline["name"], pipelineExecutionId=execution_id)["pipelineExecution"]["status"]  # noqa: E731
    assert status() == "Stopping"
    cp.acknowledge_job(jobId=job["id"], nonce=job["nonce"])
    cp.put_job_success_result(jobId=job["id"])
    assert status() == "Stopped"
    (build,) = [d for d in cp.list_action_executions(pipelineName=pipeline["name"])["actionExecutionDetails"]
                if d["stageName"] == "Build"]
    assert build["status"] == "Succeeded"


def test_list_action_executions_pages_most_recent_first(stack, unique):
    type_id, pipeline = _setup(stack, unique)
    poll_one(stack, type_id)
    cp = stack.client("codepipeline")
    first = cp.list_action_executions(pipelineName=pipeline["name"], maxResults=1)
    assert len(first["actionExecutionDetails"]) == 1 and first["nextToken"]
    second = cp.list_action_executions(pipelineName=pipeline["name"], maxResults=1, nextToken=first["nextToken"])
    assert second["actionExecutionDetails"][0]["actionExecutionId"] != first["actionExecutionDetails"][0]["actionExecutionId"]
    assert "nextToken" not in second


def test_throttle_answers_the_next_calls_of_an_operation_with_throttling(stack, unique):
    type_id, _ = _setup(stack, unique)
    cp = stack.client("codepipeline")  # botocore's legacy mode: max_attempts 1 is one retry
    stack.throttle(PollForJobs=2)
    try:
        with pytest.raises(ClientError) as err:
            cp.poll_for_jobs(actionTypeId=type_id)
        assert err.value.response["Error"]["Code"] == "ThrottlingException"
        assert cp.poll_for_jobs(actionTypeId=type_id, maxBatchSize=1)["jobs"]
        assert stack.throttling()["pending"]["PollForJobs"] == 0
    finally:
        stack.throttle(PollForJobs=0)
