#!/usr/bin/env python3
"""Distill the google provider schema subset our Terraform uses into a small committed JSON.

Source of truth: the npm package ``@cdktf/provider-google`` (its ``.jsii`` file describes
every resource and data source of one exact google provider release: each argument, whether
it is required, and every nested block). The package is ~30 MB packed / ~100 MB for the
``.jsii`` alone, so tests do not read it: this script extracts only

* the names of *all* resource and data-source types (so a typo in a type is caught even
  for types we do not use yet), and
* the full argument/block schema of the types that ``infra/terraform`` actually uses,
  plus the provider block itself,

and writes ``infra/schema/google-provider-schema.json`` with the package and provider
versions recorded. Re-run it after adding a new resource type or bumping the provider:

    python infra/scripts/distill_provider_schema.py            # npm pack into infra/.cache
    python infra/scripts/distill_provider_schema.py --jsii PATH  # reuse an extracted .jsii

Needs ``npm`` (registry access) unless ``--jsii`` is given. Only the standard library.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

PACKAGE = "@cdktf/provider-google"
PACKAGE_VERSION = "16.12.1"  # ships hashicorp/google 6.50.0, the last 6.x schema on npm
INFRA = Path(__file__).resolve().parents[1]
TERRAFORM_DIR = INFRA / "terraform"
OUT = INFRA / "schema" / "google-provider-schema.json"
CACHE = INFRA / ".cache" / "provider-google"

_DOC_LINK = re.compile(
    r"Represents a \{@link https://registry\.terraform\.io/providers/hashicorp/google/"
    r"(?P<version>[\d.]+)/docs(?:/(?P<kind>resources|data-sources)/(?P<page>\w+))? "
    r"(?P<type>\w+)\}"
)
_ANCHOR = re.compile(r"#(?P<name>[a-z0-9_]+) \w+#\w+\}")
_USED_TYPE = re.compile(r'^\s*(resource|data)\s+"(google_\w+)"', re.MULTILINE)


def camel_to_snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def fetch_jsii(version: str) -> Path:
    """npm pack the package into the git-ignored cache and extract only its .jsii."""
    target = CACHE / version / ".jsii"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        packed = (
            subprocess.run(
                ["npm", "pack", f"{PACKAGE}@{version}", "--silent"],
                cwd=target.parent,
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
    except FileNotFoundError:
        sys.exit("npm not found: install Node.js/npm or pass --jsii PATH")
    tarball = target.parent / packed
    with tarfile.open(tarball) as archive:
        member = archive.getmember("package/.jsii")
        extracted = archive.extractfile(member)
        assert extracted is not None
        target.write_bytes(extracted.read())
    tarball.unlink()
    return target


def used_types(root: Path) -> tuple[set[str], set[str]]:
    resources: set[str] = set()
    data: set[str] = set()
    for path in root.rglob("*.tf"):
        if ".terraform" in path.parts:
            continue
        for kind, name in _USED_TYPE.findall(path.read_text()):
            (resources if kind == "resource" else data).add(name)
    return resources, data


class Distiller:
    def __init__(self, jsii: dict[str, Any]) -> None:
        self.types: dict[str, Any] = jsii["types"]
        self.resources: dict[str, str] = {}
        self.data_sources: dict[str, str] = {}
        self.provider_fqn = ""
        self.provider_version = ""
        for fqn, spec in self.types.items():
            if spec.get("kind") != "class":
                continue
            match = _DOC_LINK.match(spec.get("docs", {}).get("summary", ""))
            if not match:
                continue
            self.provider_version = match["version"]
            if match["kind"] == "resources":
                self.resources[match["type"]] = fqn
            elif match["kind"] == "data-sources":
                self.data_sources[match["type"]] = fqn
            elif match["type"] == "google":
                self.provider_fqn = fqn

    @staticmethod
    def _tf_name(prop: dict[str, Any]) -> str:
        docs = prop.get("docs", {})
        for text in (docs.get("remarks", ""), docs.get("summary", "")):
            found = _ANCHOR.search(text)
            if found:
                return found["name"]
        return camel_to_snake(prop["name"])

    def _struct_of(self, type_ref: dict[str, Any]) -> tuple[str | None, bool]:
        """(fqn of a nested block struct, is_list) or (None, _) for plain attributes."""
        if "fqn" in type_ref:
            fqn = type_ref["fqn"]
            if fqn.startswith(PACKAGE) and self.types[fqn].get("kind") == "interface":
                return fqn, False
            return None, False
        for member in type_ref.get("union", {}).get("types", []):
            coll = member.get("collection")
            if coll and "fqn" in coll["elementtype"]:
                fqn = coll["elementtype"]["fqn"]
                if fqn.startswith(PACKAGE):
                    return fqn, True
        return None, False

    @staticmethod
    def _kind(type_ref: dict[str, Any]) -> str:
        if "primitive" in type_ref:
            return {"boolean": "bool"}.get(type_ref["primitive"], type_ref["primitive"])
        if "collection" in type_ref:
            return "map" if type_ref["collection"]["kind"] == "map" else "list"
        for member in type_ref.get("union", {}).get("types", []):
            if "primitive" in member:
                return {"boolean": "bool"}.get(member["primitive"], member["primitive"])
            if "collection" in member:
                return "list"
        return "any"

    def block(self, fqn: str, *, config: bool = False) -> dict[str, Any]:
        attributes: dict[str, Any] = {}
        blocks: dict[str, Any] = {}
        meta = {
            "count",
            "for_each",
            "depends_on",
            "provider",
            "lifecycle",
            "provisioners",
            "connection",
        }
        for prop in self.types[fqn].get("properties", []):
            name = self._tf_name(prop)
            if config and name in meta:
                continue
            required = not prop.get("optional", False)
            struct, is_list = self._struct_of(prop["type"])
            if struct:
                blocks[name] = {"required": required, "list": is_list, **self.block(struct)}
            else:
                attributes[name] = {"required": required, "type": self._kind(prop["type"])}
        return {"attributes": attributes, "blocks": blocks}

    def exported(self, class_fqn: str) -> list[str]:
        """Every attribute the resource exposes (arguments and computed), for references."""
        names = set()
        for prop in self.types[class_fqn].get("properties", []):
            if prop.get("static") or prop["name"].endswith("Input"):
                continue
            names.add(camel_to_snake(prop["name"]))
        return sorted(
            names
            - {
                "tf_resource_type",
                "fqn",
                "friendly_unique_id",
                "node",
                "terraform_generator_metadata",
                "terraform_meta_arguments",
                "terraform_resource_type",
                "raw_overrides",
                "cdktf_stack",
                "for_each",
                "count",
                "depends_on",
                "lifecycle",
                "provider",
                "connection",
                "provisioners",
            }
        )

    def entry(self, class_fqn: str) -> dict[str, Any]:
        return {
            **self.block(class_fqn + "Config", config=True),
            "exported": self.exported(class_fqn),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jsii", type=Path, help="an extracted package/.jsii to read")
    parser.add_argument("--version", default=PACKAGE_VERSION, help="npm package version")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    jsii_path = args.jsii or fetch_jsii(args.version)
    jsii = json.loads(jsii_path.read_text())
    distiller = Distiller(jsii)
    resources, data = used_types(TERRAFORM_DIR)
    unknown = sorted(resources - distiller.resources.keys()) + sorted(
        f"data.{name}" for name in data - distiller.data_sources.keys()
    )
    if unknown:
        print(f"not in google provider {distiller.provider_version}: {unknown}", file=sys.stderr)
        return 1
    out = {
        "package": PACKAGE,
        "package_version": jsii["version"],
        "provider": "registry.terraform.io/hashicorp/google",
        "provider_version": distiller.provider_version,
        "generated_by": "infra/scripts/distill_provider_schema.py",
        "resource_types": sorted(distiller.resources),
        "data_source_types": sorted(distiller.data_sources),
        "provider_config": distiller.block(distiller.provider_fqn + "Config", config=True),
        "resources": {n: distiller.entry(distiller.resources[n]) for n in sorted(resources)},
        "data_sources": {n: distiller.entry(distiller.data_sources[n]) for n in sorted(data)},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(
        f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB): "
        f"{len(resources)} resources, {len(data)} data sources, provider "
        f"{distiller.provider_version} from {PACKAGE}@{jsii['version']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
