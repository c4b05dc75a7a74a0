"""NetworkPolicies allow only the traffic the design needs.

The rendered policies are evaluated the way Kubernetes does (a pod selected by any policy of a direction
accepts only what some policy of that direction allows; a connection needs both the source's egress and
the destination's ingress), over the pods the stack runs. The brokers' policy is the one Strimzi
generates from the listener's networkPolicyPeers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.deploy.conftest import PORTS, SERVICES, by_name, has_migrations, of_kind

DATABASE_SERVICES = [name for name in SERVICES if has_migrations(name)]


@dataclass(frozen=True)
class Pod:
    """A pod: namespace, labels and named ports."""

    namespace: str
    labels: dict[str, str]
    ports: dict[str, int] = field(default_factory=dict)


def _selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        present, value = expr["key"] in labels, labels.get(expr["key"])
        operator = expr["operator"]
        if (
            (operator == "In" and value not in expr["values"])
            or (operator == "NotIn" and value in expr["values"])
            or (operator == "Exists" and not present)
            or (operator == "DoesNotExist" and present)
        ):
            return False
    return True


def _peer_matches(peer: dict[str, Any], pod: Pod, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        return False  # no policy here uses address ranges
    ns_selector = peer.get("namespaceSelector")
    if ns_selector is None:
        namespace_ok = pod.namespace == policy_namespace
    else:
        namespace_ok = _selects(ns_selector, {"kubernetes.io/metadata.name": pod.namespace})
    pod_selector = peer.get("podSelector")
    return namespace_ok and (pod_selector is None or _selects(pod_selector, pod.labels))


def _port_matches(rule_ports: list[dict[str, Any]] | None, destination: Pod, port: int) -> bool:
    if not rule_ports:
        return True
    for rule_port in rule_ports:
        wanted = rule_port.get("port")
        if rule_port.get("protocol", "TCP") != "TCP":
            continue
        if wanted is None or wanted == port or destination.ports.get(str(wanted)) == port:
            return True
    return False


class Network:
    """The policies of one rendered overlay, plus Strimzi's generated policy for the brokers."""

    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.policies = of_kind(docs, "NetworkPolicy")
        (kafka,) = of_kind(docs, "Kafka")
        self.namespace = kafka["metadata"]["namespace"]
        self.kafka_name = kafka["metadata"]["name"]
        for listener in kafka["spec"]["kafka"]["listeners"]:
            self.policies.append({
                "metadata": {"name": f"strimzi-{listener['name']}", "namespace": self.namespace},
                "spec": {
                    "podSelector": {"matchLabels": {"strimzi.io/cluster": self.kafka_name,
                                                    "strimzi.io/broker-role": "true"}},
                    "policyTypes": ["Ingress"],
                    "ingress": [{"from": listener["networkPolicyPeers"], "ports": [{"port": listener["port"]}]}],
                },
            })

    def _applying(self, pod: Pod, direction: str) -> list[dict[str, Any]]:
        return [
            p for p in self.policies
            if p["metadata"]["namespace"] == pod.namespace
            and _selects(p["spec"]["podSelector"], pod.labels)
            and direction in p["spec"].get("policyTypes", ["Ingress"])
        ]

    def allows(self, source: Pod, destination: Pod, port: int) -> bool:
        """Whether source may open a TCP connection to destination:port."""
        egress = self._applying(source, "Egress")
        if egress and not any(
            any(_peer_matches(peer, destination, p["metadata"]["namespace"]) for peer in rule.get("to", [{}]))
            and _port_matches(rule.get("ports"), destination, port)
            for p in egress for rule in p["spec"].get("egress", [])
        ):
            return False
        ingress = self._applying(destination, "Ingress")
        return not ingress or any(
            any(_peer_matches(peer, source, p["metadata"]["namespace"]) for peer in rule.get("from", [{}]))
            and _port_matches(rule.get("ports"), destination, port)
            for p in ingress for rule in p["spec"].get("ingress", [])
        )

    def service(self, name: str, component: str = "server") -> Pod:
        return Pod(self.namespace, {"app.kubernetes.io/name": name, "app.kubernetes.io/component": component,
                                    "app.kubernetes.io/part-of": "redress"}, {"http": PORTS[name]})

    def database(self, service: str) -> Pod:
        return Pod(self.namespace, {"cnpg.io/cluster": f"{service}-db", "cnpg.io/instanceRole": "primary"})

    def broker(self) -> Pod:
        return Pod(self.namespace, {"strimzi.io/cluster": self.kafka_name, "strimzi.io/broker-role": "true",
                                    "strimzi.io/controller-role": "true", "strimzi.io/pool-name": "dual-role"})

    def dns(self) -> Pod:
        return Pod("kube-system", {"k8s-app": "kube-dns"})


def outside(namespace: str) -> Pod:
    """A pod of another namespace (ingress controller, Prometheus, an operator, anything else)."""
    return Pod(namespace, {"app": "something"})


@pytest.fixture(params=["dev", "prod"])
def net(request: pytest.FixtureRequest, rendered: dict[str, list[dict[str, Any]]]) -> Network:
    return Network(rendered[request.param])


def test_every_redress_pod_is_under_a_default_deny(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for docs in rendered.values():
        network = Network(docs)
        for name in SERVICES:
            for component in ("server", "migration"):
                pod = network.service(name, component)
                assert network._applying(pod, "Ingress") and network._applying(pod, "Egress")
        for deployment in of_kind(docs, "Deployment"):
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            assert network._applying(Pod(network.namespace, labels), "Egress")


@pytest.mark.parametrize("name", SERVICES)
def test_ingress_controller_and_prometheus_reach_each_service(net: Network, name: str) -> None:
    for namespace in ("ingress-nginx", "monitoring"):
        assert net.allows(outside(namespace), net.service(name), PORTS[name])


@pytest.mark.parametrize("name", SERVICES)
def test_nothing_else_reaches_a_service(net: Network, name: str) -> None:
    assert not net.allows(outside("default"), net.service(name), PORTS[name])
    assert not net.allows(outside(net.namespace), net.service(name), PORTS[name])
    for other in SERVICES:
        if other not in (name, "console"):
            assert not net.allows(net.service(other), net.service(name), PORTS[name]), f"{other} -> {name}"
    assert not net.allows(net.service(name, "migration"), net.service("console"), PORTS["console"])


@pytest.mark.parametrize("name", [s for s in SERVICES if s != "console"])
def test_the_console_calls_each_service_api_but_no_service_calls_the_console(net: Network, name: str) -> None:
    assert net.allows(net.service("console"), net.service(name), PORTS[name])
    assert not net.allows(net.service(name), net.service("console"), PORTS["console"])
    assert not net.allows(net.service("console"), net.service(name, "migration"), PORTS[name])


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_reaches_kafka_and_dns(net: Network, name: str) -> None:
    for component in ("server", "migration"):
        assert net.allows(net.service(name, component), net.broker(), 9092)
        assert net.allows(net.service(name, component), net.dns(), 53)


def test_only_redress_and_keda_reach_the_brokers(net: Network) -> None:
    assert net.allows(outside("keda"), net.broker(), 9092)
    assert not net.allows(outside("default"), net.broker(), 9092)
    assert not net.allows(outside("ingress-nginx"), net.broker(), 9092)
    assert not net.allows(net.database("intake"), net.broker(), 9092)


@pytest.mark.parametrize("name", DATABASE_SERVICES)
def test_each_service_reaches_only_its_own_database(net: Network, name: str) -> None:
    assert net.allows(net.service(name), net.database(name), 5432)
    assert net.allows(net.service(name, "migration"), net.database(name), 5432)
    for other in SERVICES:
        if other != name:
            assert not net.allows(net.service(other), net.database(name), 5432), f"{other} -> {name}-db"
    assert not net.allows(outside("ingress-nginx"), net.database(name), 5432)
    assert not net.allows(outside("default"), net.database(name), 5432)


@pytest.mark.parametrize("name", DATABASE_SERVICES)
def test_database_replication_operator_and_metrics_are_allowed(net: Network, name: str) -> None:
    replica = Pod(net.namespace, {"cnpg.io/cluster": f"{name}-db", "cnpg.io/instanceRole": "replica"})
    assert net.allows(replica, net.database(name), 5432)
    assert net.allows(outside("cnpg-system"), net.database(name), 8000)
    assert net.allows(outside("monitoring"), net.database(name), 9187)
    other_replica = Pod(net.namespace, {"cnpg.io/cluster": "someone-else-db"})
    assert not net.allows(other_replica, net.database(name), 5432)


def test_services_cannot_reach_arbitrary_destinations(net: Network) -> None:
    for name in SERVICES:
        assert not net.allows(net.service(name), outside("default"), 443)
        assert not net.allows(net.service(name), outside("kube-system"), 443)


def test_policies_select_pods_that_exist(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["prod"]
    network = Network(docs)
    deployments = by_name(docs, "Deployment")
    pods = [Pod(network.namespace, d["spec"]["template"]["metadata"]["labels"]) for d in deployments.values()]
    pods += [network.database(name) for name in DATABASE_SERVICES]
    for policy in of_kind(docs, "NetworkPolicy"):
        selector = policy["spec"]["podSelector"]
        assert any(_selects(selector, pod.labels) for pod in pods), policy["metadata"]["name"]
