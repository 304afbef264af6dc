"""Security properties of the Terraform, asserted on the parsed HCL (issue 8):
own service account per service, no primitive roles, private buckets, GPU on ingest,
a dead-letter policy on every subscription, OIDC-authenticated push, no secret values."""

from __future__ import annotations

import re
from pathlib import Path

from tests.infra.tf import (
    MODULES,
    all_modules,
    dynamic,
    first,
    load_module,
    optional_default,
    walk_pairs,
    walk_strings,
)

PRIMITIVE_ROLES = {"roles/owner", "roles/editor", "roles/viewer"}
PUBLIC_MEMBERS = {"allUsers", "allAuthenticatedUsers"}
SERVICES = ("ingest", "indexer", "query", "cloudinary", "clusterer")

stack = lambda: load_module(MODULES / "facesearch")  # noqa: E731
run_module = lambda: load_module(MODULES / "cloud_run_service")  # noqa: E731
pubsub_module = lambda: load_module(MODULES / "pubsub_topic")  # noqa: E731


def test_every_service_runs_as_its_own_service_account() -> None:
    calls = stack().module_calls
    accounts = {}
    for name in SERVICES:
        call = calls[name]
        assert call["source"] == "../cloud_run_service"
        accounts[name] = call["service_account_email"]
        assert accounts[name] == f'${{google_service_account.runtime["{name}"].email}}'
    assert len(set(accounts.values())) == len(SERVICES)
    runtime = stack().resource("google_service_account", "runtime")
    assert set(SERVICES) <= set(re.findall(r'"(\w+)"', runtime.body["for_each"]))
    template = first(run_module().resource("google_cloud_run_v2_service", "this").body, "template")
    assert template["service_account"] == "${var.service_account_email}"
    assert "default" not in (run_module().variables["service_account_email"])


def _role_values() -> list[tuple[str, str]]:
    found = []
    for module in all_modules():
        for tree in module.raw.values():
            for role in walk_pairs({k: v for k, v in tree.items() if k != "variable"}, "role"):
                found.append((module.name, role))
    return found


def test_no_primitive_roles_and_no_authoritative_iam() -> None:
    roles = _role_values()
    assert len(roles) >= 15, roles  # the scan does see our grants
    for module_name, role in roles:
        assert isinstance(role, str)
        assert role not in PRIMITIVE_ROLES, f"{module_name}: primitive role {role}"
        assert role.startswith(("roles/", "${")), f"{module_name}: odd role {role}"
    for module in all_modules():
        for res in module.resources:
            assert not res.type.endswith(("_iam_binding", "_iam_policy")), (
                f"{res.address}: authoritative IAM can remove grants made outside Terraform"
            )


def test_project_level_grants_are_the_few_justified_ones() -> None:
    grants = {r.name: r.body for r in stack().of_type("google_project_iam_member")}
    assert {n: g["role"] for n, g in grants.items()} == {
        "firestore_user": "roles/datastore.user",
        "jobs_firestore_user": "roles/datastore.user",
        "eventarc_receiver": "roles/eventarc.eventReceiver",
        "gcs_agent_pubsub_publisher": "roles/pubsub.publisher",
        # telemetry (issue 18): write-only roles that exist only project-wide, granted to
        # the four runtime identities and nobody else
        "trace_agent": "roles/cloudtrace.agent",
        "metric_writer": "roles/monitoring.metricWriter",
    }
    for name in ("trace_agent", "metric_writer"):
        assert grants[name]["for_each"] == "${local.sa}"
        assert grants[name]["member"] == "${each.value}"
    for name in ("firestore_user", "jobs_firestore_user"):
        condition = first(grants[name], "condition")
        assert condition["expression"] == "${local.firestore_condition.expression}"
    expression = stack().locals["firestore_condition"]["expression"]
    assert "resource.name ==" in expression and "/databases/" in expression
    for module in all_modules():
        if module.name != "modules/facesearch":
            assert not module.of_type("google_project_iam_member"), module.name


def test_least_privilege_per_service() -> None:
    calls = stack().module_calls
    sa = lambda n: f'${{local.sa["{n}"]}}'  # noqa: E731
    grants = {
        b: {(g["role"], g["member"]) for g in calls[b]["iam_members"].values()}
        for b in ("index", "crops")
    }
    uploads = calls["uploads"]["iam_members"]
    assert re.findall(r'role = "([^"]+)", member = ([^}]+)}', uploads) == [
        ("roles/storage.objectViewer", 'local.sa["ingest"]'),
        ("roles/storage.objectViewer", "local.jobs_sa"),  # backfill lists the library
        ("roles/storage.objectCreator", "m"),
    ]
    assert grants["index"] == {
        ("roles/storage.objectUser", sa("indexer")),
        ("roles/storage.objectViewer", sa("query")),
        # the clusterer (and the recluster job) reads neighbourhoods: read only
        ("roles/storage.objectViewer", sa("clusterer")),
        ("roles/storage.objectUser", "${local.jobs_sa}"),  # rebuild, job checkpoints
    }
    crop_deleter = "${google_project_iam_custom_role.crop_deleter.name}"
    collection_eraser = "${google_project_iam_custom_role.collection_eraser.name}"
    assert grants["crops"] == {
        ("roles/storage.objectUser", sa("ingest")),
        ("roles/storage.objectViewer", sa("query")),
        # the forget path (query API, cloudinary "delete"): object delete and nothing else
        (crop_deleter, sa("query")),
        (crop_deleter, sa("cloudinary")),
        # collection erase and retention (indexer): list + delete, no read, no create
        (collection_eraser, sa("indexer")),
    }
    assert {role for role, member in grants["crops"] if member == sa("indexer")} == {
        collection_eraser
    }, "the indexer gets nothing on crops beyond list + delete"
    custom_roles = {r.name: r.body for r in stack().of_type("google_project_iam_custom_role")}
    assert set(custom_roles) == {"crop_deleter", "collection_eraser"}
    assert custom_roles["crop_deleter"]["permissions"] == ["storage.objects.delete"]
    assert sorted(custom_roles["collection_eraser"]["permissions"]) == [
        "storage.objects.delete",
        "storage.objects.list",
    ]
    role_ids = {n: r["role_id"] for n, r in custom_roles.items()}
    assert len(set(role_ids.values())) == len(role_ids), role_ids
    for module in all_modules():
        if module.name != "modules/facesearch":
            assert not module.of_type("google_project_iam_custom_role"), module.name
        for res in module.of_type("google_organization_iam_custom_role"):
            raise AssertionError(f"{res.address}: no organization-level roles")
    # indexer: the index bucket, list + delete on crops (collection erase, retention),
    # announces commits on face-events, re-publishes control messages on face-deletions.
    indexer_refs = sorted(
        s for s in walk_strings(stack().raw) if re.search(r'(sa|runtime)\["indexer"\]', s)
    )
    deletion_publishers = calls["topic_deletions"]["publishers"]
    assert indexer_refs == sorted(
        [
            '${google_service_account.runtime["indexer"].email}',  # its own identity
            '${local.sa["indexer"]}',  # index bucket objectUser
            '${local.sa["indexer"]}',  # crops collection_eraser
            '${local.sa["indexer"]}',  # face-events publisher
            deletion_publishers,  # face-deletions publisher (checked below)
        ]
    ), indexer_refs
    # face-events: the indexer's commits, and ingest's finished videos (video_done/failed)
    assert calls["topic_events"]["publishers"] == {
        "indexer": sa("indexer"),
        "ingest": sa("ingest"),
    }
    # clusterer: Firestore (persons), index read, nothing on crops, publishes nowhere.
    clusterer_refs = sorted(
        s for s in walk_strings(stack().raw) if re.search(r'(sa|runtime)\["clusterer"\]', s)
    )
    assert clusterer_refs == sorted(
        [
            '${google_service_account.runtime["clusterer"].email}',  # the service
            '${google_service_account.runtime["clusterer"].email}',  # the recluster job
            '${local.sa["clusterer"]}',  # index bucket objectViewer
        ]
    ), clusterer_refs
    job = stack().resource("google_cloud_run_v2_job", "recluster").body
    job_env = dynamic(first(first(first(job, "template"), "template"), "containers"), "env")
    assert job_env is not None
    assert job_env["for_each"] == (
        '${merge(local.service_env.clusterer, {FUNCTION_TARGET = "recluster"})}'
    )
    # Firestore: every runtime service; the indexer erases collections and applies retention.
    firestore = stack().resource("google_project_iam_member", "firestore_user").body
    assert set(re.findall(r'"(\w+)"', firestore["for_each"])) == set(SERVICES)
    # secrets: each readable by exactly its one consumer.
    assert calls["signing_keys"]["accessors"] == {"query": sa("query")}
    assert calls["cloudinary_secret"]["accessors"] == {"cloudinary": sa("cloudinary")}
    # publishers per topic.
    assert calls["topic_embeddings"]["publishers"] == {"ingest": sa("ingest")}
    # ingest-requests: the webhook's uploads, ingest's own video chunk / finish tasks, and
    # the backfill job's existing library
    assert calls["topic_ingest"]["publishers"] == {
        "cloudinary": sa("cloudinary"),
        "ingest": sa("ingest"),
        "backfill": "${local.jobs_sa}",
    }
    # the jobs identity: nothing on crops, no other topic, no secrets
    jobs_refs = [s for s in walk_strings(stack().raw) if "jobs_sa" in s]
    assert not any("jobs_sa" in str(calls[b]) for b in ("crops", "signing_keys"))
    assert not any(
        "jobs_sa" in str(calls[t]["publishers"])
        for t in ("topic_embeddings", "topic_deletions", "topic_events")
    )
    assert len(jobs_refs) >= 4, jobs_refs
    # face-deletions: the forget path (query API, cloudinary "delete"), query's collection
    # erase, the indexer's own continuations, the retention scheduler, explicit extras.
    assert re.findall(r'(\w+) = local\.sa\["(\w+)"\]', deletion_publishers) == [
        ("query", "query"),
        ("cloudinary", "cloudinary"),
        ("indexer", "indexer"),
    ], deletion_publishers
    assert deletion_publishers.count("local.sa[") == 3
    scheduler = '{scheduler = "serviceAccount:${local.scheduler_agent}"}'
    condition = "var.retention_schedule == null && var.sweep_schedule == null"
    assert f"{condition} ? {{}} : {scheduler}" in deletion_publishers
    assert deletion_publishers.count("serviceAccount:") == 1
    assert '{for k, m in var.deletion_publishers : "extra-${k}" => m}' in deletion_publishers
    # query signs URLs as itself only.
    sign = stack().resource("google_service_account_iam_member", "query_signs_as_itself").body
    assert sign["role"] == "roles/iam.serviceAccountTokenCreator"
    assert sign["service_account_id"] == '${google_service_account.runtime["query"].name}'
    assert sign["member"] == sa("query")


def test_buckets_are_private_and_uniform() -> None:
    bucket = load_module(MODULES / "bucket").resource("google_storage_bucket", "this").body
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert dynamic(bucket, "encryption") is not None, "optional CMEK"
    assert "validation" in str(load_module(MODULES / "bucket").variables["iam_members"])
    for module in all_modules():
        for res in module.of_type("google_storage_bucket"):
            assert res.body["public_access_prevention"] == "enforced", res.address
        for member in walk_pairs(module.raw, "member"):
            if module.name != "modules/cloud_run_service":
                assert member not in PUBLIC_MEMBERS, f"{module.name}: public member"
    calls = stack().module_calls
    assert calls["index"]["versioning"] is True and calls["uploads"]["versioning"] is True
    assert "index_grace_period_days" in str(calls["index"]["lifecycle_rules"])


def test_all_users_only_behind_an_explicit_variable_on_query_and_cloudinary() -> None:
    public = run_module().resource("google_cloud_run_v2_service_iam_member", "public").body
    assert public["member"] == "allUsers"
    assert public["count"] == "${var.public ? 1 : 0}"
    assert run_module().variables["public"]["default"] is False
    calls = stack().module_calls
    assert calls["query"]["public"] == "${var.query_public}"
    assert calls["cloudinary"]["public"] == "${var.cloudinary_public}"
    for name in ("ingest", "indexer", "clusterer"):
        assert "public" not in calls[name], name
        assert calls[name].get("ingress", "").endswith(".ingress}")
    assert (
        optional_default(stack().variables["ingest"]["type"], "ingress")
        == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    )
    assert (
        optional_default(stack().variables["indexer"]["type"], "ingress")
        == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    )
    assert (
        optional_default(stack().variables["clusterer"]["type"], "ingress")
        == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    )
    assert stack().variables["query_public"]["default"] is False


def test_ingest_gets_an_l4_gpu_with_always_on_cpu() -> None:
    ingest_type = stack().variables["ingest"]["type"]
    assert optional_default(ingest_type, "gpu_count") == "1"
    assert float(optional_default(ingest_type, "cpu")) >= 4
    assert optional_default(ingest_type, "memory") == "16Gi"
    assert optional_default(stack().variables["query"]["type"], "gpu_count") == "0"
    assert stack().variables["gpu_type"]["default"] == "nvidia-l4"
    assert stack().module_calls["ingest"]["gpu_count"] == "${var.ingest.gpu_count}"

    service = run_module().resource("google_cloud_run_v2_service", "this").body
    template = first(service, "template")
    selector = dynamic(template, "node_selector")
    assert selector and selector["content"][0]["accelerator"] == "${node_selector.value}"
    assert "gpu_zonal_redundancy_disabled" in template
    container = first(template, "containers")
    resources = first(container, "resources")
    assert resources["cpu_idle"] == "${local.gpu ? false : var.cpu_idle}"
    assert '"nvidia.com/gpu" = tostring(var.gpu_count)' in run_module().locals["limits"]
    preconditions = str(service["lifecycle"])
    assert ">= 4" in preconditions and ">= 16384" in preconditions
    for env in ("dev", "prod"):
        ingest = load_module(MODULES.parent / "envs" / env).module_calls["facesearch"]["ingest"]
        assert "gpu_count" not in ingest, f"{env} must not turn the ingest GPU off"


def test_every_subscription_has_retry_backoff_and_a_dead_letter_topic() -> None:
    subs = {r.name: r.body for r in pubsub_module().of_type("google_pubsub_subscription")}
    assert set(subs) == {"this", "dead_letter"}
    main = subs["this"]
    dlq = first(main, "dead_letter_policy")
    assert dlq["dead_letter_topic"] == "${google_pubsub_topic.dead_letter.id}"
    assert dlq["max_delivery_attempts"] == "${var.max_delivery_attempts}"
    retry = first(main, "retry_policy")
    assert set(retry) == {"minimum_backoff", "maximum_backoff"}
    assert subs["dead_letter"]["topic"] == "${google_pubsub_topic.dead_letter.id}"
    agent_grants = {
        r.body["role"]
        for r in pubsub_module().resources
        if r.body.get("member") == "${local.pubsub_agent}"
    }
    assert agent_grants == {"roles/pubsub.publisher", "roles/pubsub.subscriber"}
    # Nothing else in the tree creates a subscription that could skip the module.
    for module in all_modules():
        if module.name != "modules/pubsub_topic":
            assert not module.of_type("google_pubsub_subscription"), module.name
    topics = [c for c in stack().module_calls.values() if c["source"] == "../pubsub_topic"]
    assert len(topics) == 4


def test_push_is_authenticated_with_oidc_of_dedicated_accounts() -> None:
    push = dynamic(
        pubsub_module().resource("google_pubsub_subscription", "this").body, "push_config"
    )
    assert push is not None
    oidc = first(push["content"][0], "oidc_token")
    assert oidc == {
        "service_account_email": "${var.push_service_account_email}",
        "audience": "${var.push_audience}",
    }
    calls = stack().module_calls
    expected = {
        "topic_ingest": "ingest",
        "topic_embeddings": "indexer",
        "topic_deletions": "indexer",
        "topic_events": "clusterer",
    }
    for call_name, target in expected.items():
        call = calls[call_name]
        assert (
            call["push_service_account_email"]
            == f'${{google_service_account.push["{target}"].email}}'
        )
        assert call["push_endpoint"].startswith(f"${{module.{target}.uri}}/projects/")
        assert call["push_audience"] == f"${{module.{target}.uri}}"
    # the push identities may invoke their own service and nothing else
    assert (
        calls["ingest"]["invokers"]["pubsub-push"]
        == 'serviceAccount:${google_service_account.push["ingest"].email}'
    )
    for name in ("indexer", "clusterer"):
        assert calls[name]["invokers"] == {
            "pubsub-push": f'serviceAccount:${{google_service_account.push["{name}"].email}}'
        }


def test_eventarc_trigger_sends_finalized_uploads_to_ingest() -> None:
    trigger = stack().resource("google_eventarc_trigger", "uploads_finalized").body
    criteria = {c["attribute"]: c["value"] for c in trigger["matching_criteria"]}
    assert criteria == {
        "type": "google.cloud.storage.object.v1.finalized",
        "bucket": "${module.uploads.name}",
    }
    assert (
        first(first(trigger, "destination"), "cloud_run_service")["service"]
        == "${module.ingest.name}"
    )
    assert trigger["service_account"] == "${google_service_account.eventarc.email}"
    gcs = stack().resource("google_project_iam_member", "gcs_agent_pubsub_publisher").body
    assert gcs["member"] == "serviceAccount:${local.gcs_agent}"


def test_firestore_native_with_ttl_on_nonces() -> None:
    fs = load_module(MODULES / "firestore")
    assert fs.resource("google_firestore_database", "this").body["type"] == "FIRESTORE_NATIVE"
    ttl = fs.resource("google_firestore_field", "ttl").body
    assert "ttl_config" in ttl
    fields = stack().module_calls["firestore"]["ttl_fields"]
    assert fields["nonces"] == {"collection": "nonces", "field": "expires_at"}


def test_secret_values_never_reach_state() -> None:
    for module in all_modules():
        for res in module.of_type("google_secret_manager_secret_version"):
            assert "secret_data" not in res.body, f"{res.address}: use secret_data_wo"
            assert "secret_data_wo" in res.body
        for name, var in module.variables.items():
            if re.search(r"(^value|_secret|^signing_keys)$", name):
                assert var.get("sensitive") is True and var.get("ephemeral") is True, (
                    f"{module.name}: variable {name} must be sensitive and ephemeral"
                )


def test_monitoring_covers_dlq_backlog_errors_and_ingest_failures() -> None:
    mon = load_module(MODULES / "monitoring")
    policies = {r.name for r in mon.of_type("google_monitoring_alert_policy")}
    assert policies == {
        "dead_letter_backlog",
        "error_rate",
        "ingest_failures",
        "searchable_latency",  # SLO: upload -> searchable p95 (issue 18)
        "oldest_unacked",  # a consumer that stopped acknowledging
    }
    assert "num_undelivered_messages" in mon.locals["dlq_filter"]
    assert mon.of_type("google_logging_metric")
    dlqs = stack().module_calls["monitoring"]["dead_letter_subscriptions"]
    assert len(dlqs) == 4


def test_slo_alerts_and_dashboard_watch_the_application_metrics() -> None:
    """The alerts and the dashboard name instruments that the code really defines."""
    from facesearch.telemetry import metrics

    source = Path(metrics.__file__).read_text()
    names = set(re.findall(r'create_\w+\(\s*"(facesearch\.[a-z_.]+)"', source))
    names |= set(re.findall(r'\(\d, "(facesearch\.[a-z_.]+)"', source))
    mon = load_module(MODULES / "monitoring")
    searchable = mon.resource("google_monitoring_alert_policy", "searchable_latency").body
    condition = first(first(searchable, "conditions"), "condition_threshold")
    assert condition["threshold_value"] == "${var.searchable_p95_seconds}"
    assert first(condition, "aggregations")["cross_series_reducer"] == "REDUCE_PERCENTILE_95"
    prefix = "workload.googleapis.com/"
    assert mon.locals["searchable_metric"] == prefix + "facesearch.upload_to_searchable.seconds"
    assert "oldest_unacked_message_age" in mon.locals["pushed_filter"]
    assert len(stack().module_calls["monitoring"]["pushed_subscriptions"]) == 3
    panels = mon.locals["panels"]
    assert len(panels) >= 15
    used = {m for p in panels for m in re.findall(r"\$\{local\.app\}\.([a-z_.]+)", p["filter"])}
    assert used and {f"facesearch.{u}" for u in used} <= names, (used, names)
    for wanted in ("upload_to_searchable.seconds", "ingest.faces", "ingest.rejects",
                   "ingest.failures", "message.age.seconds", "index.segments", "index.live",
                   "index.tombstones", "query.seconds", "cache.requests"):  # fmt: skip
        assert wanted in used, wanted
    assert mon.of_type("google_monitoring_dashboard")
