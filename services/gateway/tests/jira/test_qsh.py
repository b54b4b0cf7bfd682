"""The qsh canonicaliser against Atlassian's interop vectors and the reference's unit cases."""

from __future__ import annotations

import hashlib
from typing import Any

import jwt
import pytest
from yarl import URL

from dfj_common.qsh import (
    canonical_request,
    canonical_request_for_url,
    percent_encode,
    qsh,
    qsh_for_url,
)
from dfj_gateway.jira.connect_jwt import read_unverified, verify_hs256


def test_every_interop_vector_is_reproduced(qsh_vectors: dict[str, Any]) -> None:
    """All 78 cases: canonical request, the token's qsh, and its HS256 signature."""
    vectors = qsh_vectors
    assert len(vectors["tests"]) == 78
    failures = []
    for case in vectors["tests"]:
        url = case["signedUrl"]
        token = URL(url).query["jwt"]
        claims = jwt.decode(
            token, vectors["secret"].encode(), algorithms=["HS256"], options={"verify_exp": False}
        )
        from_string = canonical_request_for_url("GET", url)
        parsed = URL(url)  # what aiohttp hands the gateway: raw path, decoded query
        from_request = canonical_request("GET", parsed.raw_path, parsed.query.items())
        digest = hashlib.sha256(from_string.encode()).hexdigest()
        if not (from_string == from_request == case["canonicalUrl"] and digest == claims["qsh"]):
            failures.append(case["name"])
    assert failures == []


def test_the_interop_tokens_pass_our_verifier_at_their_own_time(
    qsh_vectors: dict[str, Any],
) -> None:
    """Each vector token verifies with verify_hs256 against the qsh we compute, at its iat."""
    vectors = qsh_vectors
    secret = vectors["secret"].encode()
    for case in vectors["tests"]:
        url = URL(case["signedUrl"])
        token = read_unverified(url.query["jwt"], expect_alg="HS256")
        claims = verify_hs256(
            token, secret, now=1466731075, expected_qsh=qsh("GET", url.raw_path, url.query.items())
        )
        assert claims.issuer == "jira:1234-5678-9000"


def test_a_changed_vector_fails(qsh_vectors: dict[str, Any]) -> None:
    """The check can fail: one changed query value changes the canonical request."""
    vectors = qsh_vectors
    case = vectors["tests"][0]
    assert canonical_request_for_url("GET", case["signedUrl"] + "&extra=1") != case["canonicalUrl"]


@pytest.mark.parametrize(
    ("method", "path", "query", "base", "expected"),
    [
        # atlassian-jwt-js unit tests (reference §2.7.2)
        (
            "GET",
            "/path/to/service",
            [
                ("zee_last", "param"),
                ("repeated", "parameter 1"),
                ("first", "param"),
                ("repeated", "parameter 2"),
                ("repeated", "Parameter 2"),
            ],
            "",
            "9ae6056cf66c00e76fa15e66fd26091fecd7356eec2f2c30629835b656799f66",
        ),
        (
            "GET",
            "/base/path/to/service",
            [
                ("zee_last", "param"),
                ("repeated", "parameter 1"),
                ("first", "param"),
                ("repeated", "parameter 2"),
                ("repeated", "Parameter 2"),
            ],
            "/base",
            "9ae6056cf66c00e76fa15e66fd26091fecd7356eec2f2c30629835b656799f66",
        ),
        (
            "GET",
            "/hello-world",
            [("a", ""), ("b", "foo"), ("c", "")],
            "",
            "05a07346264b590803b827ab297a7fcb7e250fe5fa8c66187a9131b0934496b2",
        ),
        (
            "POST",
            "/jira/rest/api/2/project/jira&a=b&c=d",
            [("x", "y")],
            "/jira",
            "70db3b47a62c471526b51481ee17407771df153801674a5002c164e87ce056ae",
        ),
        (
            "POST",
            "/rest/api/2/project&a=b",
            [("x", "y")],
            "",
            "fa48f57a98d3995f12c96664dae66fccc41a5b5dd8305ff6838d04b4b469cb17",
        ),
        (
            "GET",
            "/path",
            [],
            "",
            "799be84a7fa35570087163c0cd9af3abff7ac05c2c12ba0bb1d7eebc984b3ac2",
        ),
        ("GET", "", [], "", "c88caad15a1c1a900b8ac08aa9686f4e8184539bea1deda36e2f649430df3239"),
        ("GET", "/", [], "", "c88caad15a1c1a900b8ac08aa9686f4e8184539bea1deda36e2f649430df3239"),
        # this app's own routes (reference §2.7.5)
        (
            "POST",
            "/installed",
            [],
            "",
            "4a2e1de8ca74e6cafe8862d332fa3ac7a8e51e692bc6d798ea4dfedc14948bf4",
        ),
        (
            "POST",
            "/my-app/webhooks/issue-created",
            [("user_id", "admin"), ("user_key", "admin")],
            "/my-app/",
            "9bce279078665ab41e68e6d54ce0a5fd5bbf22a41549eabfa50a36182159c9cc",
        ),
        (
            "GET",
            "/rest/api/3/mypermissions",
            [("permissions", "BROWSE_PROJECTS,EDIT_ISSUES"), ("issueKey", "TEST-1")],
            "",
            "23397da30320af8087740dc7552eefc2c7e291b8fd136b1ed6a9f8085a0a6522",
        ),
    ],
)
def test_reference_unit_cases(
    method: str, path: str, query: list[tuple[str, str]], base: str, expected: str
) -> None:
    """Path rules (base path, empty path, '&' in path) and query rules give the known hashes."""
    assert qsh(method, path, query, base) == expected


def test_the_realistic_iframe_url_of_github_for_jira() -> None:
    """Jira's standard iframe parameters hash as in github-for-jira's test (reference §2.7.4)."""
    url = (
        "/jira/configuration?xdm_e=https%3A%2F%2Ftest.atlassian.net"
        "&xdm_c=channel-com.github.integration.test__github-post-install-page&cp="
        "&xdm_deprecated_addon_key_do_not_use=com.github.integration.test&lic=none"
        "&cv=1001.0.0-SNAPSHOT&jwt=abc"
    )
    assert qsh_for_url("GET", url) == (
        "bcb1e97709b6bcbce5b08cabffe01050e13edabb7a64efbd45ee15ee4b6494d9"
    )


def test_the_base_path_is_cut_only_at_a_segment_boundary() -> None:
    """Base path /dfj strips /dfj/x but not /dfjx."""
    assert canonical_request("GET", "/dfj/jira/x", [], "/dfj") == "GET&/jira/x&"
    assert canonical_request("GET", "/dfj", [], "/dfj") == "GET&/&"
    assert canonical_request("GET", "/dfjx/y", [], "/dfj") == "GET&/dfjx/y&"


def test_repeated_values_sort_by_utf16_code_units_like_java() -> None:
    """Astral characters sort before U+FF5E under Java's String.compareTo."""
    assert canonical_request("GET", "/t", [("k", "\uff5e"), ("k", "\U0001f600")], "") == (
        "GET&/t&k=%F0%9F%98%80,%EF%BD%9E"
    )


def test_percent_encoding_is_rfc3986_uppercase() -> None:
    """Unreserved characters stay, space is %20, '*' is %2A, '+' is %2B."""
    assert percent_encode("a-._~ *+/é") == "a-._~%20%2A%2B%2F%C3%A9"
