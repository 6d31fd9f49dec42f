"""deploy/: the Dockerfile and the KServe InferenceService manifests, read with KServe's own Python models and checked.

Nothing here builds an image or talks to a cluster (neither exists on these machines): the manifests
are parsed into ``kserve.V1beta1InferenceService`` objects, whose generated models refuse unknown
or missing required fields, and checked against the server and the shipped models they name.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from sentiment.commands import serve
from sentiment.serving import protocol, repository

DEPLOY = ROOT / "deploy"


def read_inference_service(path: Path):
    """A manifest as KServe's ``V1beta1InferenceService``: every object built as the model KServe (or Kubernetes) declares for it."""
    import kserve

    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    service = build_model(document, "V1beta1InferenceService")
    assert isinstance(service, kserve.V1beta1InferenceService)
    return service


def build_model(data: object, kind: str) -> object:
    """Build ``data`` as the OpenAPI model ``kind`` of KServe or the Kubernetes client, refusing a field the model does not have.

    KServe's own ``ApiClient.deserialize`` cannot do it: it looks for nested Kubernetes types in
    ``kserve.models`` only, and reads ``list[...]`` but not the Kubernetes client's ``List[...]``.
    """
    import kserve
    import kubernetes.client

    inner = re.fullmatch(r"(?:list|List)\[(.+)\]", kind)
    if inner:
        assert isinstance(data, list), f"{kind}: expected a list, got {data!r}"
        return [build_model(item, inner.group(1)) for item in data]
    inner = re.fullmatch(r"(?:dict\(str, (.+)\)|Dict\[str, (.+)\])", kind)
    if inner:
        assert isinstance(data, dict), f"{kind}: expected an object, got {data!r}"
        return {key: build_model(value, inner.group(1) or inner.group(2)) for key, value in data.items()}
    if kind in ("str", "int", "bool", "float", "object"):
        return data
    model = getattr(kserve.models, kind, None) or getattr(kubernetes.client.models, kind)
    names = {json_name: attribute for attribute, json_name in model.attribute_map.items()}
    unknown = sorted(set(data) - set(names))
    assert not unknown, f"{kind} has no field {unknown[0]!r}"
    return model(**{names[key]: build_model(value, model.openapi_types[names[key]]) for key, value in data.items()})


def pins(path: Path) -> dict[str, str]:
    """``name: version`` of every ``name==version`` line of a requirements file."""
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return dict(line.split("==") for line in lines if "==" in line)


def test_the_custom_predictor_runs_serve_py_as_its_flags_and_health_checks_expect():
    service = read_inference_service(DEPLOY / "inferenceservice.yaml")
    assert (service.api_version, service.kind) == ("serving.kserve.io/v1beta1", "InferenceService")
    container = service.spec.predictor.containers[0]
    args = serve.parse_args(container.args)
    assert args.host == "0.0.0.0" and container.ports[0].container_port == args.port
    assert container.readiness_probe.http_get.path == "/v2/health/ready" and container.readiness_probe.http_get.port == args.port
    assert container.liveness_probe.http_get.path == "/v2/health/live"


def test_the_tf_serving_manifest_points_at_a_shipped_export_with_its_signature():
    service = read_inference_service(DEPLOY / "inferenceservice-tfserving.yaml")
    model = service.spec.predictor.model
    assert model.model_format.name == "tensorflow"
    folder = ROOT / "saved_models" / model.storage_uri.rstrip("/").rsplit("/", 1)[1]  # TF Serving serves its newest version
    newest = repository.newest_version(folder)
    assert newest is not None and (newest / "saved_model.pb").is_file() and (newest / "variables").is_dir()
    assert (newest / "assets.extra" / "tf_serving_warmup_requests").is_file()
    assert protocol.SIGNATURE.encode() in (newest / "saved_model.pb").read_bytes()


def test_the_dockerfile_copies_what_exists_and_installs_requirements_pins():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    copied = re.findall(r"^COPY (\S+) ", dockerfile, flags=re.MULTILINE)
    assert copied and all((ROOT / source).exists() for source in copied)
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")}
    assert not ignored & {source.rstrip("/") for source in copied}
    serving, project = pins(DEPLOY / "requirements-serve.txt"), pins(ROOT / "requirements.txt")
    assert {"kserve", "ai-edge-litert", "numpy"} <= set(serving) and all(project.get(name) == version for name, version in serving.items())
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (.+)$", dockerfile, flags=re.MULTILINE).group(1))
    command = json.loads(re.search(r"^CMD (.+)$", dockerfile, flags=re.MULTILINE).group(1))
    assert entrypoint[-1] == "serve.py" and serve.parse_args(command).host == "0.0.0.0"


@pytest.mark.parametrize("name", ["inferenceservice.yaml", "inferenceservice-tfserving.yaml"])
def test_a_manifest_with_an_unknown_field_is_caught(name, tmp_path):
    document = yaml.safe_load((DEPLOY / name).read_text())
    document["spec"]["predictor"]["replicas"] = 2  # not a field of KServe's PredictorSpec
    broken = tmp_path / name
    broken.write_text(yaml.safe_dump(document))
    with pytest.raises(AssertionError, match="has no field 'replicas'"):
        read_inference_service(broken)


def test_the_tf_serving_runtime_is_the_release_of_the_tensorflow_that_writes_the_exports():
    service = read_inference_service(DEPLOY / "inferenceservice-tfserving.yaml")
    project = pins(ROOT / "requirements.txt")
    runtime = service.spec.predictor.model.runtime_version
    assert runtime == project["tensorflow-serving-api"] == project["tensorflow"]


def test_the_tf_serving_manifest_says_which_version_it_serves_and_its_volume_is_made():
    text = (DEPLOY / "inferenceservice-tfserving.yaml").read_text()
    service = read_inference_service(DEPLOY / "inferenceservice-tfserving.yaml")
    claim, model = re.fullmatch(r"pvc://([^/]+)/(.+)", service.spec.predictor.model.storage_uri).groups()
    newest = repository.newest_version(ROOT / "saved_models" / model)
    assert f"newest version ({newest.name} today" in text
    documents = list(yaml.safe_load_all((DEPLOY / "saved-models-pvc.yaml").read_text()))
    kinds = {d["kind"]: d for d in documents}
    assert kinds["PersistentVolumeClaim"]["metadata"]["name"] == claim
    assert kinds["Pod"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim
    mount = kinds["Pod"]["spec"]["containers"][0]["volumeMounts"][0]["mountPath"]
    assert f"kubectl cp saved_models/{model} saved-models-loader:{mount}/{model}" in (DEPLOY / "saved-models-pvc.yaml").read_text()


def test_the_image_carries_only_the_versions_served_and_a_lock_of_every_version():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    copied = {source for source in re.findall(r"^COPY (\S+) ", dockerfile, flags=re.MULTILINE) if source.startswith("saved_models")}
    served = {f"saved_models/{folder.name}/{repository.newest_version(folder).name}"
              for folder in (ROOT / "saved_models").iterdir() if folder.is_dir()}
    assert copied == served
    lock = pins(DEPLOY / "requirements-serve.lock")
    assert all(lock[name.lower()] == version for name, version in pins(DEPLOY / "requirements-serve.txt").items())
    assert "tensorflow" not in lock and len(lock) > 20  # every transitive version, and no TensorFlow


def test_the_lock_holds_every_pin_of_requirements_txt():
    lock, project = pins(ROOT / "requirements.lock"), pins(ROOT / "requirements.txt")
    normal = {name.lower().replace("_", "-"): version for name, version in lock.items()}
    assert all(normal[name.lower().replace("_", "-")] == version for name, version in project.items())
    assert len(lock) > 100  # the transitive versions too
