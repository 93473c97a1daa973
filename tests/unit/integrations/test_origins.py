"""Each integration's known origins (docs/carriers/*.md): a credentials row's base_url must be
https and one of them, or an origin the deployment lists as extra; the refusal names the
integration and lists what it may be."""

from __future__ import annotations

import pytest

from integrations.base import Origin, base_url_problems
from integrations.base.origins import origins_parse

POND_PATH = "/ds/u/distributorPPUService/v1"
LOOPBACK = origins_parse(["http://127.0.0.1:*"])


@pytest.mark.parametrize(
    ("integration", "base_url"),
    [
        ("POND", f"https://www.mydashboard.pondmobile.com{POND_PATH}"),
        ("POND", f"https://www.mydashboard.pondmobile.com{POND_PATH}/"),
        ("POND", f"https://ws.telna.com{POND_PATH}"),
        ("POND", f"https://WS.Telna.com:443{POND_PATH}"),
        ("THINGSPACE", "https://thingspace.verizon.com"),
        ("JASPER", "https://rws-jpotest.jasper.com"),
        ("JASPER", "https://restapi3.jasper.com"),
        ("JASPER", "https://restapi12.jasper.com/"),
        ("TELEGENCE", "https://apsapi.att.com:8082"),
        ("TEAL", "https://integrationapi.teal.global"),
        ("REV", "https://restapi.rev.io"),
        ("REV", "https://api.revioapi.com"),
    ],
)
def test_each_known_origin_is_accepted(integration: str, base_url: str) -> None:
    assert base_url_problems(integration, base_url) == []


POND_ALLOWED = (
    "POND base_url must be https and one of its known origins: "
    "https://www.mydashboard.pondmobile.com, https://ws.telna.com "
    f"(each followed by {POND_PATH})"
)


@pytest.mark.parametrize(
    ("integration", "base_url", "problem"),
    [
        ("POND", "https://listener.attacker.example/ds", POND_ALLOWED),
        ("POND", f"http://www.mydashboard.pondmobile.com{POND_PATH}", POND_ALLOWED),
        ("POND", f"https://www.mydashboard.pondmobile.com:8443{POND_PATH}", POND_ALLOWED),
        ("POND", f"https://mydashboard.pondmobile.com{POND_PATH}", POND_ALLOWED),
        (
            "POND",
            "https://ws.telna.com/",
            f"POND base_url on https://ws.telna.com must be https://ws.telna.com{POND_PATH}",
        ),
        (
            "POND",
            f"https://key@ws.telna.com{POND_PATH}",
            "POND base_url must not contain credentials",
        ),
        (
            "POND",
            f"https://evil.example\\@ws.telna.com{POND_PATH}",
            "POND base_url must not contain credentials",
        ),
        (
            "POND",
            f"https://ws.telna.com{POND_PATH}?to=evil",
            "POND base_url must not have a query or a fragment",
        ),
        (
            "THINGSPACE",
            "http://169.254.169.254/latest/meta-data/",
            "ThingSpace base_url must be https and one of its known origins: "
            "https://thingspace.verizon.com",
        ),
        (
            "THINGSPACE",
            "https://staging.thingspace.verizon.com",
            "ThingSpace base_url must be https and one of its known origins: "
            "https://thingspace.verizon.com",
        ),
        (
            "JASPER",
            "https://restapi.jasper.com",
            "Jasper base_url must be https and one of its known origins: "
            "https://rws-jpotest.jasper.com, https://restapi<N>.jasper.com",
        ),
        (
            "JASPER",
            "https://restapi3.jasper.com.attacker.example",
            "Jasper base_url must be https and one of its known origins: "
            "https://rws-jpotest.jasper.com, https://restapi<N>.jasper.com",
        ),
        (
            "JASPER",
            "https://restapi3xjasper.com",
            "Jasper base_url must be https and one of its known origins: "
            "https://rws-jpotest.jasper.com, https://restapi<N>.jasper.com",
        ),
        (
            "TELEGENCE",
            "https://apsapi.att.com",
            "Telegence base_url must be https and one of its known origins: "
            "https://apsapi.att.com:8082",
        ),
        (
            "TEAL",
            "https://integrationapi.teal.global.example",
            "Teal base_url must be https and one of its known origins: "
            "https://integrationapi.teal.global",
        ),
        (
            "REV",
            "https://rev.io",
            "Rev.io base_url must be https and one of its known origins: "
            "https://restapi.rev.io, https://api.revioapi.com",
        ),
        # A known origin still obeys the carrier's own rule.
        (
            "REV",
            "https://restapi.rev.io/v1",
            "Rev.io base_url must be the host only; PondOps adds /v1",
        ),
    ],
)
def test_anything_else_is_refused_naming_the_integration_and_its_origins(
    integration: str, base_url: str, problem: str
) -> None:
    assert base_url_problems(integration, base_url) == [problem]


def test_the_refusal_lists_the_deployments_extra_origins_too() -> None:
    extra = origins_parse(["http://127.0.0.1:*", "https://pond-staging.internal:8443"])
    assert base_url_problems("TEAL", "https://evil.example", extra_origins=extra) == [
        "Teal base_url must be https and one of its known origins: "
        "https://integrationapi.teal.global; this deployment also allows http://127.0.0.1:*, "
        "https://pond-staging.internal:8443"
    ]


@pytest.mark.parametrize(
    ("base_url", "allowed"),
    [
        ("http://127.0.0.1:54321/pond", True),  # any path: the simulators mount each carrier
        ("http://127.0.0.1/pond", True),  # * is any port, the default one included
        ("https://127.0.0.1:54321/pond", False),  # the scheme is part of the origin
        ("http://127.0.0.2:54321/pond", False),
        ("http://localhost:54321/pond", False),
    ],
)
def test_an_extra_origin_allows_exactly_its_scheme_host_and_ports(
    base_url: str, allowed: bool
) -> None:
    assert (base_url_problems("POND", base_url, extra_origins=LOOPBACK) == []) is allowed


def test_an_extra_origin_with_a_port_allows_that_port_only() -> None:
    extra = origins_parse(["https://pond-staging.internal:8443"])
    assert (
        base_url_problems("POND", "https://pond-staging.internal:8443/x", extra_origins=extra) == []
    )
    assert base_url_problems("POND", "https://pond-staging.internal/x", extra_origins=extra) != []


@pytest.mark.parametrize(
    ("text", "origin"),
    [
        ("http://127.0.0.1:*", Origin(scheme="http", host="127.0.0.1", port=None)),
        ("https://example.test", Origin(scheme="https", host="example.test", port=443)),
        ("https://Example.test:8443/", Origin(scheme="https", host="example.test", port=8443)),
        ("http://[::1]:*", Origin(scheme="http", host="::1", port=None)),
    ],
)
def test_extra_origins_parse(text: str, origin: Origin) -> None:
    parsed = Origin.parse(text)
    assert (parsed.scheme, parsed.host, parsed.port) == (origin.scheme, origin.host, origin.port)


@pytest.mark.parametrize(
    "text",
    ["127.0.0.1:*", "ftp://example.test", "https://example.test/path", "https://u@example.test"],
)
def test_an_extra_origin_that_is_not_an_origin_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not an origin"):
        Origin.parse(text)
