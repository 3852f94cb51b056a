"""The README walkthrough through a client that a third-party generator made from the served
OpenAPI document (openapi-python-client): the document is complete and exact enough for clients
nobody here wrote. `cargo xtask test` runs it against a fresh ota-server with OTA_BASE_URL,
OTA_ADMIN_TOKEN, OTA_SAMPLE_IMAGE (demo-esp32c3-1.1.0.bin) and OTA_CLIENT_GENERATOR set.
Exit 0 only when the client generates without skipping anything and every step passes."""

import hashlib
import os
import subprocess
import sys
import tempfile
import urllib.request
from io import BytesIO
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

PACKAGE = "ota_generated_client"
DEVICE_ID, DEVICE_TYPE, VERSION = "dev-0001", "demo", "1.1.0"


class StepFailed(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise StepFailed(message)


def answer(what, response, status, model):
    """The parsed body of a generated `sync_detailed` call, after checking its status and that the
    generated parser produced the documented model."""
    expect(response.status_code == status,
           f"{what}: HTTP {int(response.status_code)}, expected {status}: {response.content[:500]!r}")
    expect(isinstance(response.parsed, model),
           f"{what}: parsed as {type(response.parsed).__name__}, expected {model.__name__}")
    return response.parsed


def generate(base_url, generator, tmp):
    doc = tmp / "openapi.json"
    with urllib.request.urlopen(f"{base_url}/api/ota/openapi.json", timeout=30) as r:
        doc.write_bytes(r.read())
    # The generator runs `ruff` on its output as a post-hook and warns when it is not on PATH;
    # ruff is one of its own dependencies, so its venv's bin directory provides it.
    env = dict(os.environ, PATH=f"{Path(generator).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    run = subprocess.run(
        [generator, "generate", "--path", str(doc), "--output-path", str(tmp / PACKAGE), "--meta", "none"],
        capture_output=True, text=True, env=env, timeout=300)
    output = run.stdout + run.stderr
    # A part of the document the generator cannot parse is skipped with a warning (the command
    # still exits 0): any warning means a missing endpoint or model, so it fails the test.
    if run.returncode != 0 or "Warning(s)" in output or "Error(s)" in output:
        skipped = [line for line in output.splitlines()
                   if "will not be generated" in line or line.startswith(("Unable to", "Problem creating"))]
        print(output, file=sys.stderr)
        for line in skipped:
            print(f"skipped: {line}", file=sys.stderr)
        raise StepFailed(f"openapi-python-client exited {run.returncode} with warnings or errors (above)")
    print(f"ok   generated {PACKAGE} from the served document")
    sys.path.insert(0, str(tmp))


def fetch_capability(url, expected_hash, expected_size):
    """A capability URL needs no credential: an unauthenticated generated Client on the URL's own
    origin (OTA_PUBLIC_URL may differ from OTA_BASE_URL), its query passed to `get_blob`."""
    from ota_generated_client import Client
    from ota_generated_client.api.capability_urls_ota_server_only import get_blob

    parts = urlsplit(url)
    prefix = "/api/ota/blob/firmware/"
    expect(parts.path.startswith(prefix), f"capability URL has an unexpected path: {url}")
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    with Client(base_url=f"{parts.scheme}://{parts.netloc}", raise_on_unexpected_status=True) as anon:
        r = get_blob.sync_detailed(parts.path[len(prefix):], client=anon, exp=query["exp"], sig=query["sig"])
    expect(r.status_code == 200, f"GET capability URL: HTTP {int(r.status_code)}")
    expect(len(r.content) == expected_size, f"downloaded {len(r.content)} bytes, expected {expected_size}")
    expect(hashlib.sha256(r.content).hexdigest() == expected_hash, "downloaded bytes do not match file_hash")


def walkthrough(base_url, admin_token, image_path):
    import httpx

    from ota_generated_client import AuthenticatedClient
    from ota_generated_client.api.device import check_handler, download, status_handler
    from ota_generated_client.api.device_types import put_device_type
    from ota_generated_client.api.devices import get_device, mint_device_token
    from ota_generated_client.api.firmware import upload_release
    from ota_generated_client.api.logs import list_logs
    from ota_generated_client.api.rollouts import create_rollout, get_rollout
    from ota_generated_client.models import (
        CheckRequest, CheckResponse, CreateRolloutRequest, DeviceDetail, DeviceTypePolicy,
        DownloadUrl, ListResponseLogEntry, MintedToken, MintTokenRequest, OtaStatus,
        PutDeviceTypeRequest, Release, ReleaseState, RolloutState, RolloutWithProgress,
        StatusRequest, StatusResponse, TargetType, UploadForm)
    from ota_generated_client.types import UNSET, File

    image = Path(image_path).read_bytes()
    image_hash = hashlib.sha256(image).hexdigest()
    # Every status an operation can answer is in the document: anything else raises.
    common = dict(base_url=base_url, raise_on_unexpected_status=True, timeout=httpx.Timeout(60.0))
    admin = AuthenticatedClient(token=admin_token, **common)

    policy = answer("put_device_type", put_device_type.sync_detailed(
        DEVICE_TYPE, client=admin, body=PutDeviceTypeRequest(chip="esp32c3")), 200, DeviceTypePolicy)
    expect(policy.chip == "esp32c3", f"device type chip is {policy.chip}")
    print(f"ok   device type {DEVICE_TYPE} ({policy.chip})")

    form = UploadForm(device_type=DEVICE_TYPE, version=VERSION, release_notes="Faster boot",
                      file=File(payload=BytesIO(image), file_name=Path(image_path).name,
                                mime_type="application/octet-stream"))
    release = answer("upload_release", upload_release.sync_detailed(client=admin, body=form), 201, Release)
    expect(release.state == ReleaseState.READY, f"release state {release.state}")
    expect((release.version, release.chip) == (VERSION, "esp32c3"),
           f"release {release.version} for {release.chip}")
    expect(release.file_hash == image_hash, "release file_hash is not the image's SHA-256")
    print(f"ok   uploaded release {release.id} ({release.version}, {release.state})")

    body = CreateRolloutRequest(name=f"demo {VERSION}", firmware_id=release.id, target_type=TargetType.ALL)
    rollout = answer("create_rollout", create_rollout.sync_detailed(client=admin, body=body), 201,
                     RolloutWithProgress)
    expect(rollout.state == RolloutState.ACTIVE, f"rollout state {rollout.state}")
    print(f"ok   rollout {rollout.id} ({rollout.state}, {rollout.target_type})")

    minted = answer("mint_device_token", mint_device_token.sync_detailed(
        DEVICE_ID, client=admin, body=MintTokenRequest(device_type=DEVICE_TYPE)), 200, MintedToken)
    expect((minted.device_id, minted.device_type) == (DEVICE_ID, DEVICE_TYPE), "token for the wrong device")
    device = AuthenticatedClient(token=minted.token, **common)
    print(f"ok   device token for {DEVICE_ID}")

    def check(current_version):
        return answer(f"check_handler {current_version}", check_handler.sync_detailed(
            client=device, body=CheckRequest(device_id=DEVICE_ID, device_type=DEVICE_TYPE,
                                              current_version=current_version)), 200, CheckResponse)

    offer = check("1.0.0")
    expect(offer.update_available is True, "check at 1.0.0: no update offered")
    expect((offer.firmware_id, offer.version) == (release.id, VERSION),
           f"offered {offer.firmware_id} {offer.version}")
    expect((offer.file_hash, offer.file_size) == (image_hash, len(image)),
           "the offer's hash or size is not the image's")
    expect(isinstance(offer.download_url, str), "offer has no download_url")
    print(f"ok   check at 1.0.0 offers {offer.version} (rollout {offer.rollout_id})")

    fetch_capability(offer.download_url, offer.file_hash, offer.file_size)
    print(f"ok   download_url gives {offer.file_size} bytes with the offered SHA-256")

    # The generated client does not follow redirects: the 302 is the answer, Location the URL.
    redirect = download.sync_detailed(release.id, client=device)
    expect(redirect.status_code == 302 and "location" in redirect.headers,
           f"download: HTTP {int(redirect.status_code)}, expected 302 with Location")
    fetch_capability(redirect.headers["location"], offer.file_hash, offer.file_size)
    as_json = answer("download (Accept: application/json)", download.sync_detailed(
        release.id, client=device, accept="application/json"), 200, DownloadUrl)
    fetch_capability(as_json.url, offer.file_hash, offer.file_size)
    print("ok   download redirects (302) and answers JSON (200) to a working capability URL")

    for status in (OtaStatus.DOWNLOADING, OtaStatus.INSTALLING, OtaStatus.SUCCESS):
        body = StatusRequest(device_id=DEVICE_ID, firmware_id=release.id, status=status)
        report = answer(f"status_handler {status}", status_handler.sync_detailed(client=device, body=body),
                        200, StatusResponse)
        expect(report.accepted and report.status == status, f"report {status} stored as {report.status}")
        print(f"ok   status {status} recorded at {report.recorded_at.isoformat()}")

    after = check(VERSION)
    expect(after.update_available is False, f"check at {VERSION} still offers {after.version}")
    expect(after.firmware_id is UNSET and after.download_url is UNSET, "a no-update answer carries an offer")
    print(f"ok   check at {VERSION}: no update (poll in {after.poll_interval_s} s)")

    logs = answer("list_logs", list_logs.sync_detailed(client=admin, device_id=DEVICE_ID), 200,
                  ListResponseLogEntry)
    seen = [(e.status, e.firmware_id, e.version) for e in logs.items]
    newest_first = (OtaStatus.SUCCESS, OtaStatus.INSTALLING, OtaStatus.DOWNLOADING)
    expected = [(s, release.id, VERSION) for s in newest_first]
    expect(seen == expected, f"OTA log of {DEVICE_ID}, newest first: {seen}")
    print(f"ok   OTA log: {', '.join(str(e.status) for e in logs.items)}")

    progress = answer("get_rollout", get_rollout.sync_detailed(rollout.id, client=admin), 200,
                      RolloutWithProgress).progress
    expect(progress.devices.success == 1 and progress.success_reports == 1,
           f"rollout progress: {progress.to_dict()}")
    print(f"ok   rollout progress: {progress.devices.success} device at success")

    registered = answer("get_device", get_device.sync_detailed(DEVICE_ID, client=admin), 200, DeviceDetail)
    expect((registered.current_version, registered.device_type) == (VERSION, DEVICE_TYPE),
           f"device runs {registered.current_version} ({registered.device_type})")
    print(f"ok   device {DEVICE_ID} runs {registered.current_version}")


def main():
    names = ("OTA_BASE_URL", "OTA_ADMIN_TOKEN", "OTA_SAMPLE_IMAGE", "OTA_CLIENT_GENERATOR")
    env = {k: os.environ.get(k, "") for k in names}
    missing = [k for k, v in env.items() if not v]
    if missing:
        print(f"FAIL missing environment: {', '.join(missing)}", file=sys.stderr)
        return 2
    base_url = env["OTA_BASE_URL"].rstrip("/")
    with tempfile.TemporaryDirectory(prefix="ota-generated-client-") as tmp:
        try:
            generate(base_url, env["OTA_CLIENT_GENERATOR"], Path(tmp))
            walkthrough(base_url, env["OTA_ADMIN_TOKEN"], env["OTA_SAMPLE_IMAGE"])
        except StepFailed as failure:
            print(f"FAIL {failure}", file=sys.stderr)
            return 1
    print("generated client: README walkthrough passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
