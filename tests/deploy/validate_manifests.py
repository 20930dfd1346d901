#!/usr/bin/env python3
"""Validate rendered manifests against Kubernetes and KEDA schemas, offline.

Built-in kinds are checked in strict mode (unknown fields are errors) with
the schemas that the kubernetes-validate package ships, once per Kubernetes
version given. KEDA kinds are checked with jsonschema against the
openAPIV3Schema of KEDA's CustomResourceDefinitions, also rejecting unknown
fields. Kinds with no schema
at hand (the Prometheus Operator's monitors) are listed as skipped.

Prints one line per failure and a closing "N passed, N failed" line, where
each object and version pair counts once. Exits 1 when anything failed.
"""

import argparse
import pathlib
import re
import sys

import jsonschema
import kubernetes_validate
import yaml

# Kinds whose CustomResourceDefinition is not available offline. They are
# reported, not validated, so a typo in them shows up only on a cluster.
SKIPPED_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
}


def make_strict(schema):
    """Return a copy of schema in which objects with listed properties reject unknown ones.

    The API server silently prunes unknown fields of a custom resource, unless
    the client requests strict field validation (kubectl's default,
    --validate=strict), which rejects them. This check does the same, so a
    misspelt field fails here.
    """
    if isinstance(schema, list):
        return [make_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: make_strict(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        strict["additionalProperties"] = False
    return strict


def load_crd_schemas(keda_dir):
    """Map (apiVersion, kind) to the openAPIV3Schema of every CRD file in keda_dir."""
    schemas = {}
    for path in sorted(pathlib.Path(keda_dir).glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group = crd["spec"]["group"]
            kind = crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                api_version = f"{group}/{version['name']}"
                schemas[(api_version, kind)] = make_strict(version["schema"]["openAPIV3Schema"])
    return schemas


def object_name(obj):
    metadata = obj.get("metadata", {})
    namespace = metadata.get("namespace")
    name = metadata.get("name", "<no name>")
    return f"{obj.get('kind')} {namespace + '/' if namespace else ''}{name}"


def validate_crd_object(obj, schema):
    """Return the messages of every schema violation in obj, sorted by path."""
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(obj), key=lambda error: list(error.absolute_path))
    return [f"{'.'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}" for error in errors]


def yaml_blocks(markdown_path):
    """Return the objects in the ```yaml code blocks of a Markdown file."""
    text = pathlib.Path(markdown_path).read_text()
    objects = []
    for block in re.findall(r"^```yaml\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL):
        objects.extend(obj for obj in yaml.safe_load_all(block) if obj)
    return objects


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifests", nargs="+", help="multi-document YAML files, as kubectl kustomize writes them")
    parser.add_argument("--kubernetes-version", action="append", required=True,
                        help="Kubernetes version to validate built-in kinds against, such as 1.33.0. Repeat for more versions")
    parser.add_argument("--keda-schemas", required=True, help="folder with KEDA's CRD YAML files")
    parser.add_argument("--markdown", action="append", default=[],
                        help="Markdown file whose ```yaml blocks are validated too, such as the README. Repeat for more files")
    args = parser.parse_args()

    crd_schemas = load_crd_schemas(args.keda_schemas)
    if not crd_schemas:
        print(f"FAIL no CustomResourceDefinition found in {args.keda_schemas}")
        return 1

    sources = [(manifest, yaml.safe_load_all(pathlib.Path(manifest).read_text())) for manifest in args.manifests]
    sources += [(markdown, yaml_blocks(markdown)) for markdown in args.markdown]

    passed = failed = 0
    for manifest, objects in sources:
        for obj in objects:
            if not obj:
                continue
            key = (obj.get("apiVersion"), obj.get("kind"))
            name = f"{manifest}: {object_name(obj)}"

            if key in SKIPPED_KINDS:
                print(f"SKIP {name}: no schema available offline for {key[0]} {key[1]}")
                continue

            if key in crd_schemas:
                messages = validate_crd_object(obj, crd_schemas[key])
                if messages:
                    failed += 1
                    for message in messages:
                        print(f"FAIL {name} (CRD schema): {message}")
                else:
                    passed += 1
                continue

            if key[0] and key[0].startswith("keda.sh/"):
                failed += 1
                print(f"FAIL {name}: no KEDA CRD schema for {key[0]} {key[1]} in {args.keda_schemas}")
                continue

            for version in args.kubernetes_version:
                try:
                    kubernetes_validate.validate(obj, version, strict=True)
                    passed += 1
                except kubernetes_validate.ValidationError as error:
                    failed += 1
                    path = ".".join(str(p) for p in error.path) or "<root>"
                    print(f"FAIL {name} (Kubernetes {version}, strict): {path}: {error.message}")
                except kubernetes_validate.SchemaNotFoundError as error:
                    failed += 1
                    print(f"FAIL {name} (Kubernetes {version}): {error}")

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
