"""The retention scheduler (modules/facesearch/scheduler.tf): once a day Cloud Scheduler
publishes one control message to face-deletions that the indexer understands, as the Cloud
Scheduler service agent, which may publish there and nowhere else. Collections are data:
nothing in Terraform is per collection."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from pathlib import Path

from tests.infra.tf import MODULES, Body, first, load_module, walk_strings
from tests.infra.tools import tool

SCHEDULER_TF = MODULES / "facesearch" / "scheduler.tf"
EXPECTED_BODY = {"v": 1, "action": "retention", "collection": None}
EXPECTED_ATTRIBUTES = {"kind": "control", "action": "retention"}

stack = lambda: load_module(MODULES / "facesearch")  # noqa: E731


def _job() -> Body:
    return stack().resource("google_cloud_scheduler_job", "retention").body


def test_retention_job_publishes_the_control_message_to_face_deletions() -> None:
    job = _job()
    assert stack().of_type("google_cloud_scheduler_job") == [
        stack().resource("google_cloud_scheduler_job", "retention"),
        stack().resource("google_cloud_scheduler_job", "sweep"),
    ]
    assert job["count"] == "${var.retention_schedule == null ? 0 : 1}"
    assert job["schedule"] == "${var.retention_schedule}"
    assert job["time_zone"] == "${var.retention_time_zone}"
    assert job["region"] == "${var.region}" and job["project"] == "${var.project_id}"
    target = first(job, "pubsub_target")
    # the face-deletions topic, i.e. the module built from local.topic_names.deletions
    assert target["topic_name"] == "${module.topic_deletions.topic_id}"
    assert stack().module_calls["topic_deletions"]["name"] == "${local.topic_names.deletions}"
    assert stack().locals["topic_names"]["deletions"].endswith("-face-deletions")
    assert target["attributes"] == EXPECTED_ATTRIBUTES
    assert target["data"] == "${base64encode(jsonencode(local.retention_control))}"
    assert stack().locals["retention_control"] == EXPECTED_BODY
    # never fire before the scheduler agent's publisher grant (inside the topic module)
    assert "${module.topic_deletions}" in job["depends_on"]
    assert "http_target" not in job and "app_engine_http_target" not in job


def test_retention_variables_and_api() -> None:
    variables = stack().variables
    assert variables["retention_schedule"]["default"] == "17 3 * * *"
    assert variables["retention_time_zone"]["default"] == "Etc/UTC"
    assert "null" in variables["retention_schedule"]["description"]
    assert "cloudscheduler.googleapis.com" in stack().locals["apis"]


def test_scheduler_agent_may_publish_to_face_deletions_only() -> None:
    agent = stack().locals["scheduler_agent"]
    assert agent == (
        "service-${data.google_project.this.number}@gcp-sa-cloudscheduler.iam.gserviceaccount.com"
    )
    assert stack().locals["pubsub_agent"].startswith("service-${data.google_project.this.number}@")
    calls = stack().module_calls
    deletions = calls["topic_deletions"]["publishers"]
    # granted exactly while the job exists
    grant = '{scheduler = "serviceAccount:${local.scheduler_agent}"}'
    condition = "var.retention_schedule == null && var.sweep_schedule == null"
    assert f"{condition} ? {{}} : {grant}" in deletions, deletions
    others = [
        s
        for name, call in calls.items()
        if name != "topic_deletions"
        for s in walk_strings(call)
        if "scheduler_agent" in s
    ]
    assert not others, f"the scheduler agent is granted elsewhere: {others}"
    resources = [
        r.address
        for r in stack().resources
        if any("scheduler_agent" in s for s in walk_strings(r.body))
    ]
    assert not resources, f"the scheduler agent is granted elsewhere: {resources}"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    config = env.get("TF_CLI_CONFIG_FILE", "")
    if config and not Path(config).exists():
        env.pop("TF_CLI_CONFIG_FILE", None)
    env["CHECKPOINT_DISABLE"] = "1"
    return env


def test_retention_payload_decodes_to_the_message_the_indexer_understands(tmp_path: Path) -> None:
    """Evaluate the job's `data` with the real Terraform CLI (no provider needed), decode it
    like a Pub/Sub push does, and hand it to the indexer's own decoder."""
    source = re.search(
        r"^(\s*)retention_control\s*=\s*(\{.*?^\1\})", SCHEDULER_TF.read_text(), re.M | re.S
    )
    assert source, "local.retention_control not found in scheduler.tf"
    (tmp_path / "main.tf").write_text(f"locals {{\n  retention_control = {source.group(2)}\n}}\n")
    expression = first(_job(), "pubsub_target")["data"]
    assert expression.startswith("${") and expression.endswith("}")
    terraform = tool("terraform", "install the Terraform CLI")
    result = subprocess.run(
        [str(terraform), "console"],
        input=expression[2:-1] + "\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(),
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    encoded = json.loads(result.stdout.strip())
    data = base64.b64decode(encoded, validate=True)
    assert json.loads(data) == EXPECTED_BODY

    from facesearch.storage.bus import Message
    from facesearch.storage.messages import KIND_CONTROL, ControlMessage

    control = ControlMessage.decode(Message(data, EXPECTED_ATTRIBUTES))
    assert (control.action, control.collection_id) == ("retention", None)
    reference = ControlMessage("retention", None).encode()
    assert json.loads(reference.data) == EXPECTED_BODY
    assert dict(reference.attributes) == EXPECTED_ATTRIBUTES
    assert EXPECTED_ATTRIBUTES["kind"] == KIND_CONTROL


def test_sweep_job_publishes_a_control_message_the_indexer_understands() -> None:
    from facesearch.storage.bus import Message
    from facesearch.storage.messages import ControlMessage

    job = stack().resource("google_cloud_scheduler_job", "sweep").body
    assert job["count"] == "${var.sweep_schedule == null ? 0 : 1}"
    assert stack().variables["sweep_schedule"]["default"] == "*/10 * * * *"
    target = first(job, "pubsub_target")
    assert target["topic_name"] == "${module.topic_deletions.topic_id}"
    assert target["data"] == "${base64encode(jsonencode(local.sweep_control))}"
    body = json.dumps(stack().locals["sweep_control"]).encode()
    control = ControlMessage.decode(Message(body, target["attributes"]))
    assert control == ControlMessage("sweep", None)
    assert "${module.topic_deletions}" in job["depends_on"]
