"""Helpers shared by the stack's own tests, the end-to-end tests and the demo."""

from __future__ import annotations

import io
import json
import time
import zipfile
from typing import Any, Callable

ACCOUNT_ID = "123456789012"


def wait_until(predicate: Callable[[], Any], timeout: float = 30, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met in {timeout}s")
        time.sleep(interval)


def pipeline_role(stack: Any, name: str = "codepipeline-local") -> str:
    iam = stack.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "codepipeline.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
    try:
        return iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        return iam.get_role(RoleName=name)["Role"]["Arn"]


def zip_bytes(files: dict[str, str | bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return buf.getvalue()


def custom_action_type(stack: Any, provider: str, category: str = "Build", version: str = "1", **settings: str) -> dict[str, Any]:
    cp = stack.client("codepipeline")
    return cp.create_custom_action_type(
        category=category,
        provider=provider,
        version=version,
        settings=settings or {},
        configurationProperties=[
            {"name": "Command", "required": False, "key": False, "secret": False, "queryable": False, "type": "String"},
        ],
        inputArtifactDetails={"minimumCount": 0, "maximumCount": 5},
        outputArtifactDetails={"minimumCount": 0, "maximumCount": 5},
    )["actionType"]


def s3_source_pipeline(
    stack: Any,
    name: str,
    source_bucket: str,
    source_key: str,
    stages: list[dict[str, Any]],
    artifact_bucket: str | None = None,
    kms_key_id: str | None = None,
) -> dict[str, Any]:
    """Create a pipeline: an S3 source stage (output SourceOutput) followed by `stages`."""
    cp = stack.client("codepipeline")
    artifact_bucket = artifact_bucket or f"{name}-artifacts"
    s3 = stack.client("s3")
    for bucket in (artifact_bucket, source_bucket):
        try:
            s3.create_bucket(Bucket=bucket)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
    store: dict[str, Any] = {"type": "S3", "location": artifact_bucket}
    if kms_key_id:
        store["encryptionKey"] = {"id": kms_key_id, "type": "KMS"}
    pipeline = {
        "name": name,
        "roleArn": pipeline_role(stack),
        "artifactStore": store,
        "stages": [
            {
                "name": "Source",
                "actions": [
                    {
                        "name": "Source",
                        "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"},
                        "configuration": {"S3Bucket": source_bucket, "S3ObjectKey": source_key, "PollForSourceChanges": "false"},
                        "outputArtifacts": [{"name": "SourceOutput"}],
                    }
                ],
            },
            *stages,
        ],
    }
    return cp.create_pipeline(pipeline=pipeline)["pipeline"]


def custom_stage(stage: str, action: str, provider: str, inputs: list[str], outputs: list[str], configuration: dict[str, str] | None = None, category: str = "Build") -> dict[str, Any]:
    return {
        "name": stage,
        "actions": [
            {
                "name": action,
                "actionTypeId": {"category": category, "owner": "Custom", "provider": provider, "version": "1"},
                "configuration": configuration or {},
                "inputArtifacts": [{"name": n} for n in inputs],
                "outputArtifacts": [{"name": n} for n in outputs],
            }
        ],
    }


def poll_one(stack: Any, type_id: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
    cp = stack.client("codepipeline")
    return wait_until(lambda: (cp.poll_for_jobs(actionTypeId=type_id, maxBatchSize=1)["jobs"] or [None])[0], timeout, what="a job")


def amis(stack: Any) -> tuple[str, str]:
    """(Linux AMI id, Windows AMI id) from moto's default images (cached per stack)."""
    cached = getattr(stack, "_ec2build_amis", None)
    if cached:
        return cached
    ec2 = stack.client("ec2")
    linux = ec2.describe_images(Filters=[{"Name": "name", "Values": ["amzn2-ami-hvm-2.0.*x86_64-gp2"]}])["Images"][0]["ImageId"]
    windows = ec2.describe_images(Filters=[{"Name": "platform", "Values": ["windows"]}])["Images"][0]["ImageId"]
    stack._ec2build_amis = (linux, windows)
    return linux, windows


def execution_history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    """Every event of an execution's history, oldest first, across pages."""
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
    return [event for page in pages for event in page["events"]]
