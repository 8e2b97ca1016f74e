"""What ships in deploy/ for monitoring (README, "Logs, metrics and alerts"): the Prometheus
alert rules pass `promtool check rules` and their unit tests (`promtool test rules`); every
Grafana panel's query is valid PromQL; every metric a panel, a rule or a rule test names is
one the product exports (read from the real /metrics after a write, a relay publish, a
projection run and cache reads); and docker-compose.observability.yml fits the files it
mounts and the docker-compose.yml it extends (Docker is not needed: parsed as YAML).

promtool comes from Debian's `prometheus` package (.ci/run installs it); without it these
tests fail, they do not skip."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.test import Client
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from history.projector import projections_run
from history.relay import outbox_relay
from inventory.services import location_create, stock_receive

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts.test.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "ordertrack.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "ordertrack.yml"
COLLECTOR = DEPLOY / "otel" / "collector.yaml"
COMPOSE = ROOT / "docker-compose.yml"
OBSERVABILITY = ROOT / "docker-compose.observability.yml"

# The product's metric names all start so; label names and values never do.
METRIC_NAME = re.compile(r"\b(?:ordertrack|django)_[A-Za-z0-9_]*[A-Za-z0-9]\b")
# Grafana's variables, as Prometheus sees them once Grafana substituted them.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}


def promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not installed: `apt-get install prometheus` (Debian's package ships "
            "it; .ci/run installs it when missing). The alert rules cannot be checked without it."
        )
    return subprocess.run(
        [path, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def load_yaml(path: Path):
    return yaml.safe_load(path.read_text())


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL with Grafana's variables substituted) of every panel target."""
    queries = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            queries.append((panel["title"], expr))
    return queries


def alert_expressions() -> list[tuple[str, str]]:
    return [
        (rule["alert"], rule["expr"])
        for group in load_yaml(ALERTS)["groups"]
        for rule in group["rules"]
    ]


def alert_test_series() -> list[tuple[str, str]]:
    return [
        (test["name"], series["series"])
        for test in load_yaml(ALERT_TESTS)["tests"]
        for series in test["input_series"]
    ]


# --- alert rules -----------------------------------------------------------------------------


def test_alert_rules_pass_promtool_check():
    # when
    result = promtool("check", "rules", str(ALERTS))

    # then
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_expressions())} rules found" in result.stdout


def test_alert_rules_unit_tests_pass():
    # when: each alert fires when it should and not before (alerts.test.yml)
    result = promtool("test", "rules", ALERT_TESTS.name, cwd=ALERT_TESTS.parent)

    # then
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_test_that_sees_it_fire():
    # given
    fired = {
        case["alertname"]
        for test in load_yaml(ALERT_TESTS)["tests"]
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }

    # then
    assert {name for name, _ in alert_expressions()} == fired


def test_every_alert_has_a_severity_and_a_summary():
    for group in load_yaml(ALERTS)["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]


def test_prometheus_config_passes_promtool_check(tmp_path):
    # given: the config as the container sees it, its paths pointing at the repository's files
    token = tmp_path / "metrics_token"
    token.write_text("a-token\n")
    text = PROMETHEUS_CONFIG.read_text()
    assert "/etc/prometheus/alerts.yml" in text and "/run/secrets/metrics_token" in text
    config = tmp_path / "prometheus.yml"
    config.write_text(
        text.replace("/etc/prometheus/alerts.yml", str(ALERTS)).replace(
            "/run/secrets/metrics_token", str(token)
        )
    )

    # when
    result = promtool("check", "config", str(config))

    # then
    assert result.returncode == 0, result.stdout + result.stderr


# --- the dashboard ---------------------------------------------------------------------------


def test_every_dashboard_query_is_valid_promql(tmp_path):
    # given: each panel's query as a recording rule, which promtool parses
    queries = dashboard_queries()
    rules = tmp_path / "dashboard-queries.yml"
    rules.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "dashboard",
                        "rules": [
                            {"record": f"dashboard:query_{index}", "expr": expr}
                            for index, (_, expr) in enumerate(queries)
                        ],
                    }
                ]
            }
        )
    )

    # when
    result = promtool("check", "rules", str(rules))

    # then
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout


def test_the_dashboard_is_well_formed_and_uses_the_provisioned_datasource():
    # given
    dashboard = json.loads(DASHBOARD.read_text())
    [datasource] = load_yaml(DATASOURCES)["datasources"]

    # then
    assert dashboard["uid"] == "ordertrack"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys(), panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        assert {target["refId"] for target in panel["targets"]} == {
            chr(ord("A") + index) for index in range(len(panel["targets"]))
        }
    titles = " / ".join(panel["title"] for panel in dashboard["panels"]).lower()
    for needed in (
        "requests per second by view",
        "latency p95 by view",
        "server errors",
        "adjustments per second by source",
        "outbox backlog",
        "relay lag",
        "dead letters",
        "projection lag",
        "cache hit rate",
        "low stock",
        "ready",
    ):
        assert needed in titles, needed


# --- every metric named is exported ----------------------------------------------------------


def exported_names(text: str) -> set[str]:
    """The sample names of a scrape (`x_total`, `x_bucket`, `x_sum`, `x_count`, a gauge's
    own name: what Prometheus stores and queries), plus those of the metrics registered in
    this process that have no series yet (a labelled metric before its first label set,
    such as the read replica's without DATABASE_REPLICA_URL), each with the suffixes its
    type gets."""
    names = {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }
    suffixes = {
        "counter": ("_total",),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count"),
        "summary": ("", "_sum", "_count"),
    }
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


@pytest.fixture
def product_metrics(db, api, audit, product) -> set[str]:
    """The metric names of the test app's /metrics after a write through the API, a stock
    receipt, a relay run on the real broker, a projection run and two cache reads."""
    response = api.post(
        "/api/v1/orders/",
        {"reference": "OBS-1", "lines": [{"sku": product.sku, "quantity": 2}]},
        format="json",
    )
    assert response.status_code == 201, response.content
    order_id = response.json()["id"]
    location_create(code="OBS", name="Observability")
    stock_receive(sku=product.sku, location="OBS", quantity=5, audit=audit)
    assert outbox_relay().published >= 2
    projections_run()
    for _ in range(2):
        assert api.get(f"/api/v1/orders/{order_id}/").status_code == 200
    scrape = Client().get("/metrics")
    assert scrape.status_code == 200
    return exported_names(scrape.content.decode())


@pytest.mark.django_db(transaction=True)
def test_every_metric_a_panel_a_rule_or_a_rule_test_names_is_exported(product_metrics):
    # given
    named: dict[str, set[str]] = {}
    for where, text in [
        *(("panel " + title, expr) for title, expr in dashboard_queries()),
        *(("alert " + alert, expr) for alert, expr in alert_expressions()),
        *(("alert test " + test, series) for test, series in alert_test_series()),
    ]:
        for name in METRIC_NAME.findall(text):
            named.setdefault(name, set()).add(where)

    # then
    assert len(named) > 15
    unknown = {name: sorted(where) for name, where in named.items() if name not in product_metrics}
    assert not unknown, unknown
    # the ones the health and relay alerts rest on are really scraped, not only registered
    for name in (
        "ordertrack_ready",
        "ordertrack_outbox_oldest_pending_seconds",
        "ordertrack_outbox_dead_lettered",
        "ordertrack_http_request_duration_seconds_bucket",
        "ordertrack_http_request_duration_seconds_count",
        "ordertrack_stock_low",
    ):
        assert name in named, name


def test_metric_names_are_checked_with_their_type_suffixes():
    # given: a counter exposes only `_total`, a histogram only its three series
    text = (
        "# TYPE a_total counter\na_total 1.0\n"
        "# TYPE h histogram\n"
        'h_bucket{le="+Inf"} 1.0\nh_sum 1.0\nh_count 1.0\n'
        "# TYPE g gauge\ng 1.0\n"
    )

    # when
    names = exported_names(text)

    # then
    assert {"a_total", "h_bucket", "h_sum", "h_count", "g"} <= names
    assert not {"a", "h", "g_total", "g_bucket"} & names


# --- docker-compose.observability.yml --------------------------------------------------------


def test_the_observability_compose_file_extends_the_main_one_with_files_that_exist():
    # given
    main = load_yaml(COMPOSE)
    observability = load_yaml(OBSERVABILITY)
    services = observability["services"]

    # then: the app services it changes are the main file's; what it adds is new
    added = {"otel-collector", "prometheus", "grafana"}
    assert added <= services.keys()
    assert not added & main["services"].keys()
    assert services.keys() - added <= main["services"].keys()
    # every bind mount is a file or folder of the repository
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), (name, volume)
            else:
                assert source in observability["volumes"], (name, volume)
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)  # published on loopback only
    assert services["prometheus"]["depends_on"]["web"]["condition"] == "service_healthy"


def test_the_app_services_log_json_and_send_spans_to_the_collector():
    # given
    observability = load_yaml(OBSERVABILITY)
    services = observability["services"]
    collector = load_yaml(COLLECTOR)

    # then
    http = collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    for name in ("web", "worker", "relay", "beat"):
        environment = services[name]["environment"]
        assert environment["LOG_FORMAT"] == "json", name
        assert environment["OTEL_EXPORTER_OTLP_ENDPOINT"] == (
            f"http://otel-collector:{http.rsplit(':', 1)[1]}"
        ), name
        assert environment["OTEL_SERVICE_NAME"] == f"ordertrack-{name}"
    web = services["web"]["environment"]
    assert web["METRICS_TOKEN"].startswith("${METRICS_TOKEN:?")
    assert any(
        mount.startswith(web["PROMETHEUS_MULTIPROC_DIR"]) for mount in services["web"]["tmpfs"]
    )
    # the collector prints the spans it receives
    traces = collector["service"]["pipelines"]["traces"]
    assert traces["exporters"] == ["debug"] and traces["receivers"] == ["otlp"]
    for kind in ("receivers", "processors", "exporters"):
        assert set(traces[kind]) <= collector[kind].keys()


def test_prometheus_scrapes_web_with_the_token_and_loads_the_rules():
    # given
    observability = load_yaml(OBSERVABILITY)
    prometheus = observability["services"]["prometheus"]
    config = load_yaml(PROMETHEUS_CONFIG)
    mounts = dict(volume.split(":")[:2] for volume in prometheus["volumes"])

    # then
    assert mounts["./deploy/prometheus/alerts.yml"] in config["rule_files"]
    assert mounts["./deploy/prometheus/prometheus.yml"] in " ".join(prometheus["command"])
    [web] = [job for job in config["scrape_configs"] if job["job_name"] == "ordertrack-web"]
    assert web["dns_sd_configs"][0]["names"] == ["web"]
    assert web["metrics_path"] == "/metrics"
    [secret] = prometheus["secrets"]
    assert web["authorization"]["credentials_file"] == f"/run/secrets/{secret}"
    assert observability["secrets"][secret] == {"environment": "METRICS_TOKEN"}
    # the alert rules name this job
    assert 'job="ordertrack-web"' in ALERTS.read_text()


def test_grafana_is_provisioned_with_the_datasource_and_the_dashboard():
    # given
    grafana = load_yaml(OBSERVABILITY)["services"]["grafana"]
    mounts = dict(volume.split(":")[:2] for volume in grafana["volumes"])
    [provider] = load_yaml(DASHBOARD_PROVIDERS)["providers"]
    [datasource] = load_yaml(DATASOURCES)["datasources"]

    # then
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert datasource["url"] == "http://prometheus:9090"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/{DASHBOARD.name}"
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith(
        "${GRAFANA_ADMIN_PASSWORD:?"
    )
