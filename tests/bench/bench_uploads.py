"""Upload benchmark: a script that prints figures (memory and time belong here, not in timed
tests). For each entry point — the API's JSON create, the API's multipart CSV upload and the
admin's new-bulk-change form — it sends a 100,000-line list (accepted) and a 1,000,000-line
list (refused), plus a list just over the device limit but under the byte cap (refused while
streaming), to a real server and prints the server's CPU seconds, the request's wall seconds
and the server's peak RSS growth during the request.

    .venv/bin/python tests/bench/bench_uploads.py [--root DIR] [--cases NAME,...]

The server is Django's development server (``runserver``'s, single-threaded) on a free
loopback port, in its own process, changed in one way: a body the application did not read is
discarded in 64 KB chunks, as gunicorn does (runserver reads the rest in one ``read()``, which
would put a refused 35 MB body in memory and measure the dev server, not PondOps). It runs
with a temporary SQLite database (migrated and seeded by this script) and no SQS queue (the
send after commit fails and is logged; the reaper would re-send it). Before each request the
server's peak RSS is reset (``/proc/PID/clear_refs``), so "peak RSS growth" is
VmHWM after the request minus VmRSS before it; CPU is the server's utime + stime delta.
``--root`` runs another checkout's code (e.g. ``git archive`` of main) with this venv, for
before/after figures. Every wait is bounded; the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
ACCEPTED_LINES = 100_000
REFUSED_LINES = 1_000_000
OVER_LIMIT_LINES = 150_000  # bare ICCIDs: over the device limit, under the default byte cap

SEED = """
from django.contrib.auth import get_user_model
from bulkchanges.models import IntegrationAuthentication, Tenant
from bulkchanges.services.partners import partner_token_issue
tenant = Tenant.objects.create(name="Bench IoT", approval_threshold=10**9)
pond = IntegrationAuthentication.objects.create(
    tenant=tenant, integration="POND", base_url="http://127.0.0.1:9", account="1001",
    secret="bench-pond-key", rate_limit=0, max_concurrency=4)
get_user_model().objects.create_superuser("bench-admin", "", "bench-admin-pw")
issued = partner_token_issue(
    username="bench-api", tenant=tenant, created_by="bench", create_user=True)
print("SEEDED", tenant.pk, pond.pk, issued.key)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def iccid(number: int) -> str:
    return f"8914800{number:013d}"


def widest_csv(path: Path, lines: int) -> None:
    """iccid,msisdn,eid: the widest row a device list has (22 + 15 + 32 digits)."""
    with path.open("w") as out:
        out.write("iccid,msisdn,eid\n")
        for n in range(lines):
            out.write(f"89{n:020d},{15550000000 + n},{89049032 * 10**24 + n}\n")


def bare_list(path: Path, lines: int) -> None:
    with path.open("w") as out:
        for n in range(lines):
            out.write(iccid(n) + "\n")


def json_body(path: Path, csv_path: Path) -> None:
    """The same devices as ``csv_path``, as the API's JSON create, compact (the most devices a
    body of a given size can hold)."""
    with csv_path.open() as source, path.open("w") as out:
        out.write('{"integration":"POND","target_status":"Suspended","devices":[')
        header: list[str] | None = None
        first = True
        for line in source:
            cells = line.strip().split(",")
            if header is None and cells[0] == "iccid":
                header = cells
                continue
            names = header or ["iccid"]
            device = json.dumps(dict(zip(names, cells, strict=False)), separators=(",", ":"))
            out.write(device if first else "," + device)
            first = False
        out.write("]}")


def multipart_body(path: Path, fields: dict[str, str], file_field: str, csv_path: Path) -> str:
    """A multipart/form-data body on disk; returns its boundary."""
    boundary = "benchboundary7f3a9c"
    with path.open("wb") as out:
        for name, value in fields.items():
            out.write(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                f"{value}\r\n".encode()
            )
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; '
            f'filename="devices.csv"\r\nContent-Type: text/csv\r\n\r\n'.encode()
        )
        with csv_path.open("rb") as source:
            while chunk := source.read(1 << 20):
                out.write(chunk)
        out.write(f"\r\n--{boundary}--\r\n".encode())
    return boundary


@dataclass
class Figures:
    status: int
    cpu_s: float
    wall_s: float
    rss_growth_mb: float
    message: str


class Server:
    def __init__(self, root: Path, workdir: Path) -> None:
        self.root = root
        self.port = free_port()
        self.env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
            "PONDOPS_SQS_QUEUE_URL": "",
            "REDIS_URL": "",
            "PONDOPS_API_THROTTLE_RATE": "100000/min",
            "PONDOPS_LOG_LEVEL": "WARNING",
            "DJANGO_DEBUG": "false",
        }
        self.log = (workdir / "server.log").open("wb")
        self.process: subprocess.Popen[bytes] | None = None

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, str(self.root / "manage.py"), *args],
            env=self.env,
            capture_output=True,
            check=True,
            timeout=600,
        )
        return result.stdout.decode()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(self.port), "--root", str(self.root)],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(self.url("/healthz"), timeout=10)
                return
            except requests.RequestException:  # not listening yet, or slow on a busy machine
                time.sleep(0.2)
        raise RuntimeError("the server did not answer within 60 s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def url(self, path: str) -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"

    def cpu(self) -> float:
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def memory(self, name: str) -> int:
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(rf"^{name}:\s+(\d+) kB", status, re.MULTILINE)
        assert match, name
        return int(match.group(1)) * 1024

    def measure(self, send: Iterator[requests.Response]) -> Figures:
        """Run the request ``send`` yields (its set-up before the yield is not measured)."""
        assert self.process is not None
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")  # reset VmHWM
        rss_before, cpu_before, started = self.memory("VmRSS"), self.cpu(), time.monotonic()
        response = next(send)
        wall = time.monotonic() - started
        figures = Figures(
            status=response.status_code,
            cpu_s=self.cpu() - cpu_before,
            wall_s=wall,
            rss_growth_mb=(self.memory("VmHWM") - rss_before) / 1e6,
            message=summary(response),
        )
        return figures


def summary(response: requests.Response) -> str:
    if "json" in response.headers.get("Content-Type", ""):
        body = response.json()
        text = body.get("detail") or body.get("status") or ""
        if body.get("id"):
            text = f"bulk change {body['id']} {body.get('status', '')}"
        return str(text)[:90]
    html = response.text
    errors = re.findall(r'<ul class="errorlist[^"]*"[^>]*>\s*<li>(.*?)</li>', html, re.DOTALL)
    if errors:
        return re.sub(r"\s+", " ", errors[0])[:90]
    preview = re.search(r'data-count="valid"><span class="pondops-stat__value">(\d+)', html)
    if preview:
        return f"preview: {preview.group(1)} valid"
    return html[:90].replace("\n", " ")


def api_json(server: Server, key: str, body: Path) -> Iterator[requests.Response]:
    with body.open("rb") as data:
        yield requests.post(
            server.url("/api/v1/bulk-changes/"),
            data=data,
            headers={"Authorization": f"Api-Key {key}", "Content-Type": "application/json"},
            timeout=600,
        )


def api_multipart(server: Server, key: str, body: Path, boundary: str) -> Iterator[Any]:
    with body.open("rb") as data:
        yield requests.post(
            server.url("/api/v1/bulk-changes/"),
            data=data,
            headers={
                "Authorization": f"Api-Key {key}",
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
            timeout=600,
        )


def admin_form(
    server: Server, session: requests.Session, new_url: str, body: Path, boundary: str
) -> Iterator[requests.Response]:
    with body.open("rb") as data:
        yield session.post(
            new_url,
            data=data,
            headers={
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Referer": new_url,
            },
            timeout=600,
        )


def csrf_token(session: requests.Session, url: str) -> str:
    html = session.get(url, timeout=30).text
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    if not match:
        raise RuntimeError(f"no CSRF token on {url}")
    return match.group(1)


def admin_session(server: Server) -> requests.Session:
    session = requests.Session()
    login = server.url("/admin/login/")
    token = csrf_token(session, login)
    response = session.post(
        login,
        data={
            "csrfmiddlewaretoken": token,
            "username": "bench-admin",
            "password": "bench-admin-pw",
            "next": "/admin/",
        },
        headers={"Referer": login},
        timeout=30,
    )
    response.raise_for_status()
    return session


def serve(root: Path, port: int) -> None:
    """The bench's server process (see the module docstring)."""
    sys.path.insert(0, str(root))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pondops.settings")
    from wsgiref import simple_server

    from django.core.servers import basehttp
    from django.core.wsgi import get_wsgi_application

    def close(handler: Any) -> None:
        stdin = handler.get_stdin()
        while stdin.read(1 << 16):
            pass
        simple_server.ServerHandler.close(handler)

    basehttp.ServerHandler.close = close  # type: ignore[method-assign,assignment]
    basehttp.run(LOOPBACK, port, get_wsgi_application(), threading=False)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to run")
    parser.add_argument(
        "--cases",
        default="accepted,over_limit,refused",
        help="which lists: accepted (100,000 widest rows), over_limit (150,000 bare ICCIDs), "
        "refused (1,000,000 bare ICCIDs)",
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    root = options.root.resolve()
    if options.serve:
        serve(root, options.serve)
        return 0
    with tempfile.TemporaryDirectory(prefix="pondops-bench-uploads-") as tmp:
        workdir = Path(tmp)
        server = Server(root, workdir)
        server.manage("migrate", "--verbosity", "0")
        server.manage("createcachetable")
        seeded = server.manage("shell", "-c", SEED).split()
        tenant_id, credentials_id, api_key = seeded[seeded.index("SEEDED") + 1 :][:3]
        lists = {
            "accepted": (ACCEPTED_LINES, widest_csv),
            "over_limit": (OVER_LIMIT_LINES, bare_list),
            "refused": (REFUSED_LINES, bare_list),
        }
        rows: list[tuple[str, str, Figures]] = []
        try:
            server.start()
            session = admin_session(server)
        finally:
            server.stop()
        new_url = server.url(f"/admin/bulkchanges/bulkchange/new/?tenant={tenant_id}")
        new_url += "&integration=POND"
        requests_of = {
            "API JSON": lambda body, _: api_json(server, api_key, body),
            "API multipart": lambda body, boundary: api_multipart(server, api_key, body, boundary),
            "admin form": lambda body, boundary: admin_form(
                server, session, new_url, body, boundary
            ),
        }

        def body_of(entry: str, csv_path: Path, path: Path) -> str:
            if entry == "API JSON":
                json_body(path, csv_path)
                return ""
            if entry == "API multipart":
                fields = {"integration": "POND", "target_status": "Suspended"}
                return multipart_body(path, fields, "file", csv_path)
            fields = {
                "csrfmiddlewaretoken": csrf_token(session, new_url),
                "credentials": credentials_id,
                "update_status": "SUSPENDED",
            }
            return multipart_body(path, fields, "devices_file", csv_path)

        warm_csv = workdir / "warm-up.csv"
        bare_list(warm_csv, 10)
        for case in options.cases.split(","):
            lines, write = lists[case]
            csv_path = workdir / f"{case}.csv"
            write(csv_path, lines)
            label = f"{lines:,} lines ({csv_path.stat().st_size / 1e6:.1f} MB CSV)"
            for entry, send in requests_of.items():
                # A fresh server per figure, warmed up by a 10-line request of the same kind:
                # freed memory of an earlier request would otherwise hide this one's growth.
                try:
                    server.start()
                    warm_body, body = workdir / "warm-up.body", workdir / "request.body"
                    for _ in send(warm_body, body_of(entry, warm_csv, warm_body)):
                        pass
                    boundary = body_of(entry, csv_path, body)
                    rows.append((label, entry, server.measure(send(body, boundary))))
                finally:
                    server.stop()
            csv_path.unlink()
    print(f"code: {root}")
    print("| list | entry point | HTTP | server CPU s | wall s | peak RSS growth MB | answer |")
    print("|---|---|---|---|---|---|---|")
    for label, entry, figures in rows:
        print(
            f"| {label} | {entry} | {figures.status} | {figures.cpu_s:.2f} | "
            f"{figures.wall_s:.2f} | {figures.rss_growth_mb:.0f} | {figures.message} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
