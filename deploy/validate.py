"""Offline checks of the Kubernetes manifests: render every overlay with kustomize, validate every document.

- Built-in kinds: the Kubernetes JSON schemas shipped by kubernetes-validate, strict (unknown fields are
  errors), for the pinned Kubernetes version ``K8S_VERSION``.
- Strimzi, KEDA and Prometheus Operator resources: the CRD models of the npm packages in deploy/tools
  (validate-crds.mjs).
- CloudNativePG resources: the schemas in deploy/schemas/cloudnative-pg.yaml.
A document of any other kind is an error: nothing is applied unchecked.

Usage (after ``bash deploy/ci-setup.sh``)::

    .venv/bin/python deploy/validate.py                 # every overlay under deploy/k8s/overlays
    .venv/bin/python deploy/validate.py deploy/k8s/overlays/prod
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import referencing
import yaml
from kubernetes_validate.utils import SchemaNotFoundError
from kubernetes_validate.utils import ValidationError as K8sValidationError

DEPLOY = Path(__file__).resolve().parent
K8S = DEPLOY / "k8s"
OVERLAYS = K8S / "overlays"
TOOLS = DEPLOY / "tools"
KUBECTL = TOOLS / "bin" / "kubectl"
CRD_VALIDATOR = TOOLS / "validate-crds.mjs"
CNPG_SCHEMAS = DEPLOY / "schemas" / "cloudnative-pg.yaml"
# The oldest Kubernetes minor version the manifests support (features used: preStop sleep action,
# matchLabelKeys in topology spread constraints, both on by default from 1.30).
K8S_VERSION = "1.32"
NODE_GROUPS = ("kafka.strimzi.io/", "keda.sh/", "monitoring.coreos.com/")
CNPG_GROUPS = ("postgresql.cnpg.io/", "barmancloud.cnpg.io/")
K8S_DEFINITIONS_URI = "https://kubernetes.io/api/_definitions.json"


class ToolMissingError(RuntimeError):
    """A validation tool is not installed (run ``bash deploy/ci-setup.sh``)."""


@dataclass(frozen=True)
class Finding:
    """One problem in one rendered document."""

    kind: str
    name: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}: {self.message}"


def overlays() -> list[Path]:
    """Every overlay directory (one kustomization each)."""
    return sorted(p.parent for p in OVERLAYS.glob("*/kustomization.yaml"))


def render(path: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize PATH`` with the pinned kubectl; the documents it prints."""
    if not KUBECTL.exists():
        raise ToolMissingError(f"{KUBECTL} is missing: run `bash deploy/ci-setup.sh`")
    result = subprocess.run([str(KUBECTL), "kustomize", str(path)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ValueError(f"kustomize failed for {path}:\n{result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _label(doc: dict[str, Any]) -> tuple[str, str]:
    meta = doc.get("metadata") or {}
    return str(doc.get("kind", "?")), str(meta.get("name", "?"))


def _path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "(document)"


def builtin_errors(doc: dict[str, Any], version: str = K8S_VERSION) -> list[str]:
    """Strict Kubernetes schema validation of a built-in kind (kubernetes-validate --strict)."""
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except K8sValidationError as exc:
        return [f"{_path(exc.path)}: {exc.message}"]
    except SchemaNotFoundError as exc:
        return [exc.message]
    return []


@cache
def _cnpg_validators() -> dict[str, jsonschema.protocols.Validator]:
    """Validators for the hand-written CloudNativePG schemas, with Kubernetes core types resolved."""
    version_dir = f"v{K8S_VERSION}.0-local-strict"
    definitions_file = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / version_dir
    definitions = json.loads((definitions_file / "_definitions.json").read_text())
    registry: referencing.Registry = referencing.Registry().with_resource(
        K8S_DEFINITIONS_URI, referencing.Resource.from_contents(definitions)
    )
    raw = yaml.safe_load(CNPG_SCHEMAS.read_text())

    def resolve(node: Any) -> Any:
        # "k8s:io.k8s.api.core.v1.X" stands for kubernetes-validate's definition of X.
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("k8s:"):
                return {**node, "$ref": f"{K8S_DEFINITIONS_URI}#/$defs/{ref[4:]}"}
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    validators = {}
    for key, schema in raw["schemas"].items():
        full = {"$schema": "https://json-schema.org/draft/2020-12/schema", **resolve(schema)}
        jsonschema.Draft202012Validator.check_schema(full)
        validators[key] = jsonschema.Draft202012Validator(full, registry=registry)
    return validators


def cnpg_errors(doc: dict[str, Any]) -> list[str]:
    """Validation of a CloudNativePG resource against deploy/schemas/cloudnative-pg.yaml."""
    validator = _cnpg_validators().get(f"{doc.get('apiVersion')}/{doc.get('kind')}")
    if validator is None:
        return [f"no schema here for {doc.get('apiVersion')} {doc.get('kind')}"]
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{_path(e.absolute_path)}: {e.message}" for e in errors]


def crd_errors(docs: list[dict[str, Any]]) -> list[list[str]]:
    """Strimzi, KEDA and Prometheus Operator validation through the npm CRD models (one list of errors per document)."""
    if not docs:
        return []
    node = shutil.which("node")
    if node is None or not (TOOLS / "node_modules").exists():
        raise ToolMissingError("node or deploy/tools/node_modules is missing: run `bash deploy/ci-setup.sh`")
    result = subprocess.run(
        [node, str(CRD_VALIDATOR)], input=json.dumps(docs), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"validate-crds.mjs failed: {result.stderr.strip()}")
    return [entry["errors"] for entry in json.loads(result.stdout)]


def validate_documents(docs: list[dict[str, Any]], version: str = K8S_VERSION) -> list[Finding]:
    """Every problem found in the documents, by whichever validator owns their kind."""
    findings: list[Finding] = []
    node_docs: list[dict[str, Any]] = []
    for doc in docs:
        api_version = str(doc.get("apiVersion", ""))
        if api_version.startswith(NODE_GROUPS):
            node_docs.append(doc)
            continue
        errors = cnpg_errors(doc) if api_version.startswith(CNPG_GROUPS) else builtin_errors(doc, version)
        findings += [Finding(*_label(doc), message) for message in errors]
    for doc, errors in zip(node_docs, crd_errors(node_docs), strict=True):
        findings += [Finding(*_label(doc), message) for message in errors]
    return findings


def main(argv: list[str] | None = None) -> int:
    """Render and validate the given overlays (all by default); exit 1 on any finding."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", type=Path, help="kustomization directories (default: every overlay)")
    parser.add_argument("--k8s-version", default=K8S_VERSION)
    args = parser.parse_args(argv)
    failed = False
    for path in args.paths or overlays():
        docs = render(path)
        findings = validate_documents(docs, args.k8s_version)
        status = "ok" if not findings else f"{len(findings)} problem(s)"
        print(f"{path}: {len(docs)} documents, Kubernetes {args.k8s_version}: {status}")
        for finding in findings:
            print(f"  {finding}")
        failed = failed or bool(findings)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
