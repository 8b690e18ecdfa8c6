"""End to end: a spot interruption mid-build restarts the build on a new instance (issue 11).

The local stack posts the interruption notice in the emulated instance's metadata
(stack.spot_interrupt; the document reads it with IMDSv2) and terminates the instance when the
notice period ends. The deployment keeps the template's SpotRestarts (2)."""

from __future__ import annotations

from tests.localstack.helpers import wait_until

SPOT_RESTARTS = 2  # the template's default


def interrupt_when_building(e2e, pipeline: str, interrupted: list[str], notice_seconds: float = 20) -> str:
    """Waits until the build command runs on an instance of the pipeline not interrupted yet,
    posts a spot interruption notice for it and returns its id (appended to `interrupted`)."""
    def building() -> str | None:
        for instance in e2e.instances(pipeline):
            if instance["InstanceId"] in interrupted or instance["State"]["Name"] != "running":
                continue
            invocations = e2e.ssm.list_command_invocations(InstanceId=instance["InstanceId"])["CommandInvocations"]
            if any(i["Status"] == "InProgress" for i in invocations):
                return instance["InstanceId"]
        return None

    instance_id = wait_until(building, 60, interval=0.2, what="build command running on a new instance")
    wait_until(lambda: "ec2-build: job" in e2e.ssm.list_command_invocations(InstanceId=instance_id, Details=True)
               ["CommandInvocations"][0]["CommandPlugins"][0]["Output"], 30, interval=0.2, what="spot watch started")
    e2e.stack.spot_interrupt(instance_id, notice_seconds=notice_seconds)
    interrupted.append(instance_id)
    return instance_id


def assert_cleaned_up(e2e, pipeline: str, instances: int) -> None:
    """After the keeper's next run nothing of the pipeline runs; one execution, one instance per attempt."""
    e2e.dep.keep()
    e2e.assert_nothing_running(pipeline)
    e2e.assert_no_secret_leaked(pipeline)
    assert len(e2e.executions(pipeline)) == 1
    assert len(e2e.instances(pipeline)) == instances


def test_spot_interruption_mid_build_restarts_the_build_on_a_new_instance(e2e):
    p = e2e.pipeline({"Capacity": "spot-then-on-demand", "Command": "echo building\nsleep 8\necho built > out.txt",
                      "OutputArtifactPath": "out.txt"})
    interrupted: list[str] = []
    first = interrupt_when_building(e2e, p, interrupted)
    action = e2e.wait_final(p, timeout=120)
    assert action["status"] == "Succeeded", action
    assert f"restarted on a new instance after a spot interruption of {first} (Spot interruption notice for {first}: terminate at " \
        in action["summary"], action["summary"]
    (d,) = e2e.executions(p)
    assert d["status"] == "SUCCEEDED"
    instances = {i["InstanceId"]: i for i in e2e.instances(p)}
    (second,) = set(instances) - {first}
    assert f"Build succeeded on {second}" in action["summary"], action["summary"]
    assert "InstanceLifecycle" not in instances[second]  # spot-then-on-demand: on demand after the interruption
    assert instances[first].get("InstanceLifecycle") == "spot"
    assert e2e.output_zip(p).read("out.txt") == b"built\n"
    wait_until(lambda: next(i for i in e2e.instances(p) if i["InstanceId"] == first)["State"]["Name"] == "terminated",
               30, interval=0.2, what="the interrupted instance terminated")
    assert_cleaned_up(e2e, p, instances=2)
    assert len(e2e.stack.jobs(p)) == 2  # the job and its one continuation: nothing started twice


def test_spot_interruptions_beyond_the_restarts_allowed_fail_the_job(e2e):
    p = e2e.pipeline({"Capacity": "spot", "Command": "echo long build started\nsleep 300"})
    interrupted: list[str] = []
    for _ in range(SPOT_RESTARTS + 1):
        interrupt_when_building(e2e, p, interrupted)
    action = e2e.wait_final(p, timeout=120)
    assert action["status"] == "Failed", action
    message = action["errorDetails"]["message"]
    assert message.startswith(f"EC2 Build failed at stage build (SpotInterrupted): Spot interruption notice for {interrupted[-1]}: terminate at "), message
    assert (f"The build is not restarted again: it was restarted {SPOT_RESTARTS} times after spot interruptions, the most allowed "
            f"(SpotRestarts {SPOT_RESTARTS}); interrupted instances: {' '.join(interrupted)}.") in message, message
    # Every attempt ran on spot (Capacity spot), each on an instance of its own.
    instances = e2e.instances(p)
    assert sorted(i["InstanceId"] for i in instances) == sorted(interrupted)
    assert all(i.get("InstanceLifecycle") == "spot" for i in instances)
    assert_cleaned_up(e2e, p, instances=SPOT_RESTARTS + 1)
