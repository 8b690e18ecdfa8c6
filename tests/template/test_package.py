"""`aws cloudformation package` (what cloudformation/deploy.sh runs) on the template, against an
in-process moto S3: every local path (both CodeUri folders, the ASL's DefinitionUri, the SSM
document's AWS::Include Location) must be uploaded and replaced by its S3 location. Runs on a copy
of the tree with stand-in bootstrap files, so it needs no Rust build."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from template_helpers import ASL_FILE, DOCUMENT_FILE, ROOT

moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")

AWS = Path(sys.executable).with_name("aws")
BUCKET = "ec2-build-deploy"


@pytest.fixture(scope="module")
def s3_endpoint():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        yield endpoint
    finally:
        server.stop()


@pytest.mark.skipif(not AWS.exists(), reason="the project venv has no AWS CLI")
@pytest.mark.skipif(not (ASL_FILE.exists() and DOCUMENT_FILE.exists()), reason="ASL or SSM document not written yet")
def test_package_uploads_every_local_artifact(tmp_path, s3_endpoint):
    for part in ("cloudformation", "statemachine", "ssm-documents"):
        shutil.copytree(ROOT / part, tmp_path / part)
    for name in ("poller", "completion", "keeper"):
        folder = tmp_path / "build" / "lambda" / name
        folder.mkdir(parents=True)
        (folder / "bootstrap").write_text("#!/bin/sh\n")

    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "eu-west-1", "AWS_ENDPOINT_URL": s3_endpoint,
           "AWS_EC2_METADATA_DISABLED": "true"}
    s3 = boto3.client("s3", region_name="eu-west-1", endpoint_url=s3_endpoint,
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})

    out = tmp_path / "packaged.yml"
    subprocess.run(
        [str(AWS), "cloudformation", "package", "--template-file", str(tmp_path / "cloudformation" / "template.yml"),
         "--s3-bucket", BUCKET, "--s3-prefix", "ec2-build", "--output-template-file", str(out)],
        check=True, env=env, capture_output=True, text=True, timeout=120)

    packaged = yaml.load(out.read_text(), Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    resources = packaged["Resources"]
    for name in ("PollerFunction", "CompletionFunction"):
        uri = resources[name]["Properties"]["CodeUri"]
        assert uri.startswith(f"s3://{BUCKET}/ec2-build/"), uri
        key = uri.split("/", 3)[3]
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        zpath = tmp_path / f"{name}.zip"
        zpath.write_bytes(body)
        assert zipfile.ZipFile(zpath).namelist() == ["bootstrap"]

    definition = resources["BuildStateMachine"]["Properties"]["DefinitionUri"]
    assert definition["Bucket"] == BUCKET
    assert s3.get_object(Bucket=BUCKET, Key=definition["Key"])["Body"].read() == ASL_FILE.read_bytes()

    include = resources["BuildDocument"]["Properties"]["Content"]["Fn::Transform"]
    location = include["Parameters"]["Location"]
    assert location.startswith(f"s3://{BUCKET}/ec2-build/"), location
    key = location.split("/", 3)[3]
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == DOCUMENT_FILE.read_bytes()


class _Loader(yaml.SafeLoader):
    pass


def _keep(loader, suffix, node):
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        return {name: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {name: loader.construct_sequence(node, deep=True)}
    return {name: loader.construct_mapping(node, deep=True)}


_Loader.add_multi_constructor("!", _keep)
